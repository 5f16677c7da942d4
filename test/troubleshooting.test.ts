import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it as plainIt } from 'vitest';
import { loadConfig } from '../src/config.js';
import { authHint, hintFor, tlsHint, unreachableHint } from '../src/error-hints.js';
import { SyncError } from '../src/errors.js';
import { cli } from './helpers/cli-process.js';
import { acceptsAnyPassword, admin, whileRunHoldsSyncLock } from './helpers/database.js';
import { freePort } from './helpers/free-port.js';
import { it, type Harness } from './helpers/harness.js';
import { frontUrl, postgresTlsFront, tlsFront } from './helpers/tls-front.js';

/*
 * The README's Troubleshooting section lists each error a user meets first, as the one line
 * `cpq-sync` prints, with <placeholders> for what varies (URLs, ports, bodies). This test makes
 * each of those failures for real and requires every line printed to match an entry, and every
 * entry to be met: a message that changes without its README entry fails here.
 */

const README = fileURLToPath(new URL('../README.md', import.meta.url));

/** The `cpq-sync: …` code spans of the Troubleshooting section. */
function readmeEntries(): string[] {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf('\n## Troubleshooting\n');
  expect(start, 'README has a Troubleshooting section').toBeGreaterThan(0);
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/`(cpq-sync: [^`]+)`/g)].map((m) => m[1]!);
}

/** An entry as a pattern: literal text, each <placeholder> any text. */
function pattern(entry: string): RegExp {
  const parts = entry.split(/<[^<>]+>/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.+?')}$`);
}

const servers: NetServer[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

async function listen(server: NetServer): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** The one line `cpq-sync run` printed on stderr, and its exit code. */
async function runLine(h: Harness, env: Record<string, string>): Promise<{ code: number | null; line: string }> {
  const out = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_RETRY_BASE_DELAY: '5ms', ...env });
  const lines = out.stderr.split('\n').filter((l) => l !== '');
  expect(lines, out.stderr).toHaveLength(1);
  return { code: out.code, line: lines[0]! };
}

describe('the README lists every error a user meets first, as printed, with its fix', () => {
  it('each real failure matches one entry, with the hint the entry shows; each entry is met', async ({ startHarness }) => {
    const fusion = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2 });
    const classic = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, auth: { basic: { username: 'sync', password: 'right' } } });
    const open = await startHarness({ partnerCompanies: 0, usersPerCompany: 2 });
    const basic = { CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'right' };

    const notCpq = await listen(createHttpServer((_req, res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('not here')));
    // A site that fails every request with a status worth retrying, until the retries run out.
    const failing = (status: number) => listen(createHttpServer((_req, res) => res.writeHead(status, { 'content-type': 'text/plain' }).end('try later')));
    const front = await tlsFront(Number(new URL(open.sim.baseUrl).port));
    servers.push(front);
    const wrongPassword = new URL(open.t.url);
    wrongPassword.password = 'not-the-password';
    // A server that trusts every local connection (initdb --auth=trust) takes any password, or none:
    // those two cases cannot happen there, and their entries are not required. npm test's servers
    // ask for one.
    const trustsAnyPassword = await acceptsAnyPassword(open.t.url);
    const noPassword = new URL(open.t.url);
    noPassword.password = '';

    const cases: Record<string, { code: number; run: () => Promise<{ code: number | null; line: string }> }> = {
      'classic prefix on a Fusion site': { code: 3, run: () => runLine(fusion, {}) },
      'Fusion prefix on a classic site': { code: 3, run: () => runLine(classic, { ...basic, CPQ_PATH_PREFIX: '/cpq' }) },
      'a company the site does not have': { code: 3, run: () => runLine(classic, { ...basic, CPQ_COMPANIES: 'nosuch' }) },
      'not a CPQ site': { code: 3, run: () => runLine(open, { CPQ_BASE_URL: `http://127.0.0.1:${notCpq}` }) },
      'wrong password': { code: 4, run: () => runLine(classic, { CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'wrong-secret-value' }) },
      'no credentials': { code: 4, run: () => runLine(classic, {}) },
      'unknown CA': { code: 3, run: () => runLine(open, { CPQ_BASE_URL: frontUrl(front), CPQ_MAX_RETRIES: '0' }) },
      'nothing listens': { code: 3, run: async () => runLine(open, { CPQ_BASE_URL: `http://127.0.0.1:${await freePort()}`, CPQ_MAX_RETRIES: '0' }) },
      'CPQ keeps failing': { code: 3, run: async () => runLine(open, { CPQ_BASE_URL: `http://127.0.0.1:${await failing(503)}`, CPQ_MAX_RETRIES: '1' }) },
      'CPQ keeps throttling': { code: 3, run: async () => runLine(open, { CPQ_BASE_URL: `http://127.0.0.1:${await failing(429)}`, CPQ_MAX_RETRIES: '1' }) },
      'host does not resolve': { code: 3, run: () => runLine(open, { CPQ_BASE_URL: 'https://nosuch.invalid', CPQ_MAX_RETRIES: '0' }) },
      'database down': { code: 6, run: async () => runLine(open, { DATABASE_URL: `postgres://sync:pw-not-shown@127.0.0.1:${await freePort()}/warehouse` }) },
      ...(trustsAnyPassword
        ? {}
        : {
            'database password': { code: 6, run: () => runLine(open, { DATABASE_URL: wrongPassword.toString() }) },
            'database URL without a password': { code: 6, run: () => runLine(open, { DATABASE_URL: noPassword.toString() }) },
            'database URL without a password, PGPASSWORD wrong': {
              code: 6,
              run: () => runLine(open, { DATABASE_URL: noPassword.toString(), PGPASSWORD: 'not-the-password' }),
            },
            'database URL without a password, the password file wrong': {
              code: 6,
              run: () => {
                const file = join(mkdtempSync(join(tmpdir(), 'cpq-pgpass-')), 'pgpass');
                writeFileSync(file, `${noPassword.hostname}:${noPassword.port}:*:${noPassword.username}:not-the-password\n`, { mode: 0o600 });
                return runLine(open, { DATABASE_URL: noPassword.toString(), PGPASSFILE: file });
              },
            },
          }),
      'database certificate of an unknown CA': {
        code: 6,
        run: async () => {
          const tls = await postgresTlsFront('S');
          servers.push(tls);
          return runLine(open, { DATABASE_URL: `postgres://sync:pw-not-shown@127.0.0.1:${(tls.address() as AddressInfo).port}/warehouse?sslmode=require` });
        },
      },
      'database does not answer': {
        code: 6,
        run: async () => {
          const silent = await listen(createTcpServer((socket) => void sockets.push(socket.on('data', () => undefined))));
          return runLine(open, { DATABASE_URL: `postgres://sync:pw-not-shown@127.0.0.1:${silent}/warehouse`, DATABASE_CONNECT_TIMEOUT: '1s' });
        },
      },
      'no such database': {
        code: 6,
        run: () => {
          const url = new URL(open.t.url);
          url.pathname = '/no_such_database';
          return runLine(open, { DATABASE_URL: url.toString() });
        },
      },
      'no CONNECT on the database': {
        code: 6,
        run: async () => {
          // A hardened database (CONNECT taken from PUBLIC) and a login of the server not given it.
          const name = `cpq_noconnect_${randomBytes(4).toString('hex')}`;
          await admin(async (c) => {
            await c.query(`CREATE DATABASE ${name}`);
            await c.query(`REVOKE CONNECT ON DATABASE ${name} FROM PUBLIC`);
            await c.query(`CREATE ROLE ${name} LOGIN PASSWORD 'pw-not-shown'`);
          });
          try {
            const url = new URL(open.t.url);
            url.username = name;
            url.password = 'pw-not-shown';
            url.pathname = `/${name}`;
            return await runLine(open, { DATABASE_URL: url.toString() });
          } finally {
            await admin(async (c) => {
              await c.query(`DROP DATABASE ${name}`);
              await c.query(`DROP ROLE ${name}`);
            });
          }
        },
      },
      ...(trustsAnyPassword
        ? {
            // Only such a server says so: one that asks for a password says it failed (above).
            'no such role': {
              code: 6,
              run: () => {
                const url = new URL(open.t.url);
                url.username = `cpq_no_such_role_${randomBytes(4).toString('hex')}`;
                return runLine(open, { DATABASE_URL: url.toString() });
              },
            },
          }
        : {}),
      'bad configuration': { code: 2, run: () => runLine(open, { CPQ_PAGE_SIZE: 'lots' }) },
      'no site': { code: 2, run: () => runLine(open, { CPQ_BASE_URL: '' }) },
      'a run holds the lock': {
        code: 7,
        run: () => whileRunHoldsSyncLock(open.t.pool, open.log, () => runLine(open, {})),
      },
    };

    const entries = readmeEntries();
    const met = new Set<string>();
    for (const [name, c] of Object.entries(cases)) {
      const { code, line } = await c.run();
      expect(code, `${name}: ${line}`).toBe(c.code);
      expect(line, name).not.toMatch(/wrong-secret-value|pw-not-shown|not-the-password/);
      const matching = entries.filter((e) => pattern(e).test(line));
      expect(matching, `${name}: no README entry matches\n${line}`).toHaveLength(1);
      met.add(matching[0]!);
    }
    const excused = (e: string) =>
      trustsAnyPassword
        ? e.includes('the database refused the user or password') ||
          e.includes('DATABASE_URL names no password') ||
          e.includes('the password of PGPASSWORD') ||
          e.includes('(password from <file>)')
        : e.includes('the server has no role');
    expect(entries.filter((e) => !met.has(e) && !excused(e))).toEqual([]);
    // Twenty-odd cpq-sync processes one after another: 67 s on a loaded machine, past the default 120 s at load 12.
  }, 300_000);

  it('an entry matches its own text with the placeholders filled, and nothing else (the check itself can fail)', () => {
    const p = pattern('cpq-sync: GET <url>: CPQ answered 404 with <body>; hint: set CPQ_PATH_PREFIX=/cpq');
    expect(p.test('cpq-sync: GET http://h/rest/x?y=1: CPQ answered 404 with "nope"; hint: set CPQ_PATH_PREFIX=/cpq')).toBe(true);
    expect(p.test('cpq-sync: GET http://h/rest/x?y=1: CPQ answered 404 with "nope"; hint: set CPQ_PATH_PREFIX=')).toBe(false);
    expect(p.test('cpq-sync: GET http://h/rest/x?y=1: CPQ answered 404 with "nope"')).toBe(false);
  });

  plainIt('the hints of the variants not made above: 403, a token, OAuth, a CA file that does not help, expiry, host names, timeouts, database TLS', () => {
    const cpq = (env: Record<string, string>) => loadConfig({ CPQ_BASE_URL: 'https://cpq.example.com', ...env }).cpq!;
    const basic = cpq({ CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'secret-value' });
    expect(
      authHint(basic.auth, "GET x: CPQ refused the credentials (403); check the auth settings (the CPQ_* variables, or the site's keys in CPQ_SITES_FILE)"),
    ).toMatch(/^tried Basic auth as user "sync" .*: accepted as someone, but refused this resource/);
    expect(authHint(cpq({ CPQ_TOKEN: 'tok-value' }).auth, 'refused (401)')).toMatch(
      /^tried a bearer token \(CPQ_TOKEN or CPQ_TOKEN_FILE\): check those settings/,
    );
    const oauth = cpq({ CPQ_OAUTH_TOKEN_URL: 'https://idp.example.com/token', CPQ_OAUTH_CLIENT_ID: 'cid', CPQ_OAUTH_CLIENT_SECRET: 'oauth-secret-value' });
    const refused = new SyncError(
      'auth',
      "POST https://idp.example.com/token: OAuth token request refused (401): check the client id, the client secret and the scope (CPQ_OAUTH_*, or the site's oauth keys in CPQ_SITES_FILE)",
    );
    expect(hintFor(refused, { cpq: oauth })).toBe(
      'tried an OAuth token for client "cid" from https://idp.example.com/token (CPQ_OAUTH_*): check CPQ_OAUTH_TOKEN_URL, the client id and secret, and CPQ_OAUTH_SCOPE',
    );
    expect(JSON.stringify([authHint(basic.auth, '(401)'), hintFor(refused, { cpq: oauth })])).not.toMatch(/secret-value|tok-value/);
    const withCa = { ...basic, ca: '-----BEGIN CERTIFICATE-----' };
    expect(tlsHint('SELF_SIGNED_CERT_IN_CHAIN self-signed certificate in certificate chain', withCa)).toMatch(
      /^the certificate did not verify against the system's CAs and CPQ_CA_FILE/,
    );
    expect(tlsHint('CERT_HAS_EXPIRED certificate has expired', basic)).toMatch(/outside its validity dates/);
    expect(tlsHint("ERR_TLS_CERT_ALTNAME_INVALID Hostname/IP does not match certificate's altnames", basic)).toMatch(/does not name the host of CPQ_BASE_URL/);
    expect(tlsHint('ECONNREFUSED connect ECONNREFUSED 127.0.0.1:1', basic)).toBeUndefined();
    // A handshake refused before any certificate was judged: no CA file helps (review CO).
    for (const message of [
      'EPROTO write EPROTO 40F7:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure',
      'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION tlsv1 alert protocol version',
      'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED tlsv13 alert certificate required',
    ]) {
      expect(tlsHint(message, basic), message).toMatch(/^the TLS handshake with the site failed before its certificate was judged/);
    }
    expect(tlsHint('UNABLE_TO_VERIFY_LEAF_SIGNATURE unable to verify the first certificate', basic)).toMatch(/set CPQ_CA_FILE/);
    expect(unreachableHint('no response within the request timeout')).toMatch(/raise CPQ_REQUEST_TIMEOUT$/);
    expect(hintFor(new SyncError('data', 'GET x: expected JSON'), { cpq: basic })).toBeUndefined();
    // The database's TLS variants not made above: an expired certificate, a sslrootcert that holds another CA.
    const database = (message: string) => hintFor(new SyncError('database', `cannot connect to Postgres at ${message}`));
    expect(database('postgres://sync:***@db.example.com/cpq?sslmode=verify-full: certificate has expired')).toMatch(
      /^the database server's certificate is outside its validity dates/,
    );
    expect(
      database('postgres://sync:***@db.example.com/cpq?sslmode=verify-full&sslrootcert=/etc/ca.crt: self-signed certificate in certificate chain'),
    ).toMatch(/^the database server's certificate did not verify against the sslrootcert of DATABASE_URL/);
  });
});
