import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { SyncWorker } from '../src/worker/sync-worker.js';
import { Cleanups, CliProcess, cli } from './helpers/cli-process.js';
import type { TestDatabase } from './helpers/database.js';
import { type Harness, it } from './helpers/harness.js';

/*
 * Secrets never reach logs (at debug level), error messages, metrics, health answers or any
 * table of schema cpq: full syncs with known secrets for each auth method, read from files,
 * including failing runs, and the worker's /metrics and /readyz; then every line and every row
 * (as text) is searched for each secret in every form it travels in.
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

const HOST_USERS = '/rest/v16/companies/_host/users';

async function secretFile(name: string, value: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-secrets-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  await writeFile(path, `${value}\n`, { mode: 0o600 });
  return path;
}

/** Every form a secret travels in: as is, URL-encoded, and inside Basic credentials. */
function forms(secrets: string[], basicPairs: [string, string][] = []): string[] {
  const out = new Set<string>();
  for (const s of secrets) {
    out.add(s);
    out.add(encodeURIComponent(s));
    out.add(Buffer.from(s).toString('base64'));
  }
  for (const [user, secret] of basicPairs) out.add(Buffer.from(`${user}:${secret}`).toString('base64'));
  return [...out];
}

/** Every row of every table and view in schema cpq, as text. */
async function everyRow(t: TestDatabase): Promise<string[]> {
  const relations = await t.query<{ name: string }>(`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'cpq' ORDER BY 1`);
  expect(relations.map((r) => r.name)).toEqual(expect.arrayContaining(['users', 'sync_runs', 'user_changes', 'user_versions', 'kysely_migration']));
  const out: string[] = [];
  for (const { name } of relations) {
    for (const row of await t.query<{ row: string }>(`SELECT x::text AS row FROM cpq."${name}" x`)) out.push(`${name}: ${row.row}`);
  }
  return out;
}

function expectNoSecret(where: string, texts: string[], secrets: string[]) {
  for (const secret of secrets) {
    const hits = texts.filter((t) => t.includes(secret));
    expect(hits, `${where} holds "${secret}"`).toEqual([]);
  }
}

/** An OAuth token URL in front of the simulator's, which notes the access tokens it hands out. */
async function tokenRelay(simTokenUrl: () => string): Promise<{ url: string; tokens: string[] }> {
  const tokens: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void fetch(simTokenUrl(), {
        method: 'POST',
        headers: { authorization: req.headers.authorization ?? '', 'content-type': req.headers['content-type'] ?? '' },
        body: Buffer.concat(chunks),
      }).then(async (r) => {
        const text = await r.text();
        try {
          const token = (JSON.parse(text) as { access_token?: string }).access_token;
          if (token) tokens.push(token);
        } catch {
          // not JSON: passed on as it is
        }
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(text);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/v1/token`, tokens };
}

/** A good full sync, failing runs of each kind, and a worker run with /metrics and /readyz; everything said and stored, as text. */
async function exercise(h: Harness, echoedCredential: () => string): Promise<string[]> {
  const said: string[] = [];
  const failing = async (setup: () => void) => {
    h.sim.clearFaults();
    setup();
    const err = await h.syncError({ full: true });
    said.push(err.message, err.stack ?? '', JSON.stringify(err));
  };
  expect((await h.sync()).status).toBe('succeeded');
  await failing(() => h.sim.addFault({ match: { path: HOST_USERS }, times: Infinity, status: 503 }));
  await failing(() => h.sim.addFault({ match: { path: HOST_USERS }, times: Infinity, status: 401 }));
  await failing(() => h.sim.addFault({ match: { path: HOST_USERS }, times: 1, status: 200, body: '{"items":[{"login":"x","status":"yes"}]}' }));
  await failing(() =>
    h.sim.addFault({ match: { path: HOST_USERS }, times: 1, status: 200, headers: { 'content-type': 'text/html' }, body: '<html>Login</html>' }),
  );
  // A gateway whose error page echoes the request's Authorization header back.
  await failing(() => {
    h.sim.onRequest = (req) => {
      if (req.path !== HOST_USERS) return;
      h.sim.onRequest = undefined;
      h.sim.addFault({ match: { path: req.path, query: req.query }, times: 1, status: 400, body: echoedCredential() });
    };
  });
  h.sim.clearFaults();

  const worker = new SyncWorker({ pool: h.t.pool, db: h.t.db, config: { ...h.config, worker: { ...h.config.worker, httpPort: 0 } }, log: h.log });
  await worker.start();
  try {
    await worker.runOnce();
    h.sim.addFault({ match: { path: HOST_USERS }, times: Infinity, status: 500 });
    await worker.runOnce();
    h.sim.clearFaults();
    const base = `http://127.0.0.1:${worker.httpPort}`;
    for (const path of ['/metrics', '/readyz', '/healthz']) said.push(await (await fetch(base + path)).text());
  } finally {
    await worker.stop();
  }
  return [...said, ...h.logLines, ...(await everyRow(h.t))];
}

describe('secrets in logs, errors, metrics and tables', () => {
  it('basic auth: the password (from CPQ_PASSWORD_FILE) appears nowhere', async ({ startHarness }) => {
    const password = 'Pw-7f3a91-Basic-Secret';
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0, auth: { basic: { username: 'sec-user', password } } },
      { CPQ_USERNAME: 'sec-user', CPQ_PASSWORD_FILE: await secretFile('cpq-password', password), CPQ_PAGE_SIZE: '5', CPQ_MAX_RETRIES: '1' },
    );
    const header = `Basic ${Buffer.from(`sec-user:${password}`).toString('base64')}`;
    const texts = await exercise(h, () => header);
    expect(h.log.level).toBe('debug');
    expectNoSecret('basic', texts, forms([password], [['sec-user', password]]));
  });

  it('bearer token (from CPQ_TOKEN_FILE) appears nowhere', async ({ startHarness }) => {
    const token = 'Tok-91c2d4-Bearer-Secret';
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0, auth: { bearerTokens: [token] } },
      { CPQ_TOKEN_FILE: await secretFile('cpq-token', token), CPQ_PAGE_SIZE: '5', CPQ_MAX_RETRIES: '1' },
    );
    const texts = await exercise(h, () => `Bearer ${token}`);
    expectNoSecret('bearer', texts, forms([token]));
  });

  it('OAuth: the client secret (from CPQ_OAUTH_CLIENT_SECRET_FILE) and the access tokens appear nowhere, token failures included', async ({ startHarness }) => {
    const clientSecret = 'Cs-55d0e8-OAuth-Secret';
    const file = await secretFile('oauth-client-secret', clientSecret);
    let simUrl = '';
    const relay = await tokenRelay(() => `${simUrl}/oauth2/v1/token`);
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0, auth: { oauth: { clientId: 'sec-client', clientSecret } } },
      (baseUrl) => {
        simUrl = baseUrl;
        return {
          CPQ_OAUTH_TOKEN_URL: relay.url,
          CPQ_OAUTH_CLIENT_ID: 'sec-client',
          CPQ_OAUTH_CLIENT_SECRET_FILE: file,
          CPQ_PAGE_SIZE: '5',
          CPQ_MAX_RETRIES: '1',
        };
      },
    );
    const texts = await exercise(h, () => `Bearer ${relay.tokens.at(-1)}`);
    // The token service refusing the client, failing, or echoing the request in its error.
    const tokenPath = '/oauth2/v1/token';
    for (const fault of [
      { status: 401, body: '{"error":"invalid_client"}' },
      // A 500 is retried (CPQ_MAX_RETRIES=1), so it is sent twice to fail the run.
      { status: 500, body: 'internal error', times: 2 },
      { status: 400, body: `{"error":"invalid_request","error_description":"client_secret=${clientSecret}"}` },
    ]) {
      h.sim.addFault({ match: { path: tokenPath }, times: 1, ...fault });
      const err = await h.syncError();
      texts.push(err.message, err.stack ?? '');
    }
    texts.push(...h.logLines, ...(await everyRow(h.t)));
    expect(relay.tokens.length).toBeGreaterThan(2);
    expectNoSecret('oauth', texts, forms([clientSecret, ...relay.tokens], [['sec-client', clientSecret]]));
  });
});

describe('secrets in a worker process', () => {
  it('schedule at LOG_LEVEL=debug with the password from a file: not in stdout, stderr, /metrics, /readyz, status or any table', async ({ startHarness }) => {
    const password = 'Pw-3e8b27-Worker-Secret';
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0, auth: { basic: { username: 'sec-worker', password } } },
      { CPQ_PAGE_SIZE: '5' },
    );
    const env = {
      CPQ_BASE_URL: h.sim.baseUrl,
      DATABASE_URL: h.t.url,
      CPQ_USERNAME: 'sec-worker',
      CPQ_PASSWORD_FILE: await secretFile('cpq-password', password),
      CPQ_PAGE_SIZE: '5',
      CPQ_MAX_RETRIES: '1',
      CPQ_RETRY_BASE_DELAY: '5ms',
      LOG_LEVEL: 'debug',
      SYNC_CRON: '*/1 * * * * *',
      HTTP_PORT: '0',
    };
    // The first run fails (CPQ answers 500), a later one succeeds.
    h.sim.addFault({ match: { path: HOST_USERS }, times: 2, status: 500 });
    const worker = new CliProcess(['schedule'], env);
    cleanups.push(async () => {
      if (worker.child.exitCode === null) worker.kill('SIGKILL');
      await worker.exited;
    });
    const listening = await worker.waitForLine((l) => l.msg === 'health and metrics listening (/healthz, /readyz, /metrics)');
    await worker.waitForLine((l) => l.msg === 'scheduled run failed; the worker keeps its schedule');
    await worker.waitForLine((l) => l.msg === 'scheduled run succeeded');
    const base = `http://127.0.0.1:${String(listening.port)}`;
    const answers = await Promise.all(['/metrics', '/readyz', '/healthz'].map(async (p) => (await fetch(base + p)).text()));
    expect(answers[0]).toContain('cpq_sync_runs_total{site="default",status="failed"} 1');
    worker.kill('SIGTERM');
    const out = await worker.exited;
    expect(out.code).toBe(0);

    const status = await cli(['status', '--json'], env);
    const wrong = await cli(['run'], { ...env, CPQ_PASSWORD_FILE: await secretFile('wrong-password', 'Wrong-Pw-0a1b2c') });
    expect(wrong.code).toBe(4);
    const texts = [out.stdout, out.stderr, ...answers, status.stdout, status.stderr, wrong.stdout, wrong.stderr, ...(await everyRow(h.t))];
    expectNoSecret(
      'worker',
      texts,
      forms(
        [password, 'Wrong-Pw-0a1b2c'],
        [
          ['sec-worker', password],
          ['sec-worker', 'Wrong-Pw-0a1b2c'],
        ],
      ),
    );
  });
});
