import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect } from 'vitest';
import { SyncError } from '../src/errors.js';
import { formatStatus, readStatus } from '../src/worker/status.js';
import { it, snapshotTables } from './helpers/harness.js';
import { holdSyncLock } from './helpers/database.js';

type Raw = Record<string, unknown>;

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

describe('failures', () => {
  it('retries 503 and 429, obeying Retry-After in seconds and as an HTTP date', async ({ startHarness }) => {
    // A Retry-After longer than CPQ_RETRY_MAX_DELAY (the harness's 50ms) fails the run: test/request-budget.test.ts.
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 }, { CPQ_RETRY_MAX_DELAY: '5s' });
    const path = '/rest/v16/companies/_host/users';
    const retryAt = new Date(Date.now() + 3000).toUTCString();
    h.sim.addFault({ match: { path }, times: 1, status: 503, headers: { 'retry-after': '1' } });
    h.sim.addFault({ match: { path }, times: 1, status: 429, headers: { 'retry-after': retryAt } });
    const at: number[] = [];
    h.sim.onRequest = () => void at.push(Date.now());
    const result = await h.sync();
    expect(result.inserted).toBe(5);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(990);
    expect(at[2]!).toBeGreaterThanOrEqual(Date.parse(retryAt) - 10);
    const statuses = h.sim.requests.filter((r) => r.path === path).map((r) => r.status);
    expect(statuses).toEqual([503, 429, 200]);
    const [run] = await h.t.query<{ http_retries: Record<string, number> }>(`SELECT http_retries FROM cpq.sync_runs`);
    expect(run!.http_retries).toEqual({ '503': 1, '429': 1 });
  });

  it('retries each status the client names: 408, 429, 500, 502, 503 and 504 (review EK: 408 and 504 were in no test)', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 }, { CPQ_MAX_RETRIES: '6' });
    const path = '/rest/v16/companies/_host/users';
    for (const status of [408, 429, 500, 502, 503, 504]) h.sim.addFault({ match: { path }, times: 1, status });
    expect((await h.sync()).inserted).toBe(5);
    expect(h.sim.requests.filter((r) => r.path === path).map((r) => r.status)).toEqual([408, 429, 500, 502, 503, 504, 200]);
  });

  it('gives up after the configured retries with a clear error', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5 }, { CPQ_MAX_RETRIES: '2' });
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, times: Infinity, status: 502 });
    const err = await h.syncError();
    expect(err).toBeInstanceOf(SyncError);
    expect(err.message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?.* still answered 502 after 3 attempts/);
  });

  it('401 is a clear auth error, not retried', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 5, auth: { basic: { username: 'sync', password: 'right-password' } } },
      { CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'wrong-password' },
    );
    const err = await h.syncError();
    expect(err).toHaveProperty('kind', 'auth');
    expect(err.message).toMatch(/CPQ refused the credentials \(401\)/);
    expect(err.message).not.toContain('wrong-password');
    expect(h.sim.requests).toHaveLength(1);
  });

  it('OAuth: gets a token, reuses it, and renews it after a 401', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0, auth: { oauth: { clientId: 'client-1', clientSecret: 'oauth-secret-xyz' } } },
      (baseUrl) => ({
        CPQ_PAGE_SIZE: '10',
        CPQ_OAUTH_TOKEN_URL: `${baseUrl}/oauth2/v1/token`,
        CPQ_OAUTH_CLIENT_ID: 'client-1',
        CPQ_OAUTH_CLIENT_SECRET: 'oauth-secret-xyz',
      }),
    );
    let pages = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++pages === 2) h.sim.revokeTokens();
    };
    const result = await h.sync();
    expect(result.inserted).toBe(30);
    expect(h.sim.tokenRequests).toBe(2);
    expect(h.sim.requests.filter((r) => r.status === 401)).toHaveLength(1);
  });

  it('a malformed page fails the run, names the URL, and leaves the database as the last good run left it', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    await h.sync();
    const before = await snapshotTables(h.t);
    for (const u of h.sim.users('_host').slice(0, 25)) h.sim.updateUser('_host', String(u.login), { lastName: 'ShouldNotLand' });
    let n = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++n === 2) {
        h.sim.addFault({ match: { path: req.path }, times: 1, status: 200, headers: { 'content-type': 'application/json' }, body: '{"items":[{"login":"x"' });
      }
    };
    const err = await h.syncError();
    expect(err.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?\S+: response is not valid JSON/);
    expect(err.message).not.toContain('\n');
    expect(await snapshotTables(h.t)).toEqual(before);
    const runs = await h.t.query<Raw>(`SELECT status, error, warnings FROM cpq.sync_runs ORDER BY id`);
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'failed']);
    expect(runs[1]!.error).toBe(err.message);
    expect(JSON.stringify(runs[1]!.warnings)).toMatch(/rolled back/);
  });

  it('an HTML page with status 200 and a body of the wrong shape are clear errors', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const path = '/rest/v16/companies/_host/users';
    h.sim.addFault({ match: { path }, times: 1, status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Maintenance</body></html>' });
    expect((await h.syncError()).message).toMatch(/expected JSON, got an HTML page/);
    h.sim.addFault({ match: { path }, times: 1, status: 200, body: '[1,2,3]' });
    expect((await h.syncError()).message).toMatch(/expected a JSON object with items\[\], got an array/);
    h.sim.addFault({ match: { path }, times: 1, status: 200, body: '' });
    expect((await h.syncError()).message).toMatch(/expected JSON, got an empty body/);
  });

  it('a record with a bad field fails the run naming the record and the field', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const login = String(h.sim.users('_host')[1]!.login);
    h.sim.updateUser('_host', login, { status: { value: 'yes', displayValue: 'Yes' } });
    const err = await h.syncError();
    expect(err.message).toMatch(new RegExp(`user "_host/${login}" \\(record 1 of http.*\\): field "status.value" must be a whole number, got "yes"`));
    expect(err).toHaveProperty('kind', 'data');
  });

  it("a failure inside a DBA's trigger on a cpq table names the trigger's function, not only Postgres's message, and changes nothing", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    // An audit trigger written for the default search_path: the sync's (pg_catalog, pg_temp) finds no "log".
    await h.t.query(`CREATE SCHEMA audit; CREATE TABLE audit.log (login text)`);
    await h.t.query(`CREATE FUNCTION audit.record() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO log VALUES (NEW.login); RETURN NEW; END $$`);
    await h.t.query(`CREATE TRIGGER audit_users AFTER UPDATE ON cpq.users FOR EACH ROW EXECUTE FUNCTION audit.record()`);
    const before = await snapshotTables(h.t);
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { firstName: 'Changed' });
    const err = await h.syncError();
    // Before: 'database error: relation "log" does not exist', which no cpq table or view is.
    const expected = `database error: relation "log" does not exist (in function audit.record(), which is not cpq-sync's: a trigger or rule added to a cpq table?)`;
    expect(err.message).toBe(expected);
    expect(err).toHaveProperty('kind', 'database');
    expect(await h.t.query(`SELECT error FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`)).toEqual([{ error: expected }]);
    expect(await snapshotTables(h.t)).toEqual(before);
  });

  it('records a short read (fewer rows than totalResults) as a warning', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    let n = 0;
    h.sim.onRequest = (req) => {
      // The page after the first lies: hasMore false.
      if (req.path.endsWith('/users') && ++n === 2) {
        const items = h.sim
          .users('_host')
          .map((u) => String(u.login))
          .sort(byCodeUnit)
          .slice(10, 12);
        h.sim.addFault({
          match: { path: req.path },
          times: 1,
          status: 200,
          body: JSON.stringify({ items: items.map((login) => ({ login })), hasMore: false, count: 2 }),
        });
      }
    };
    const result = await h.sync();
    expect(result.warnings).toEqual([
      expect.stringMatching(/companies\/_host: read 12 of 30 users .*short/),
      // The lying page's two records say no more than their logins.
      expect.stringMatching(/companies\/_host: 2 of the records read carry no dateModified/),
      expect.stringMatching(/deletion skipped for companies\/_host: the read was short/),
    ]);
    expect(result.streams[0]!.shortRead).toBe(true);
  });
});

describe('secrets', () => {
  it('never writes the password or token to logs, errors or the database', async ({ startHarness }) => {
    const password = 'S3cr3t-Pa55word-Do-Not-Leak';
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, auth: { basic: { username: 'sync-user', password } } },
      { CPQ_USERNAME: 'sync-user', CPQ_PASSWORD: password, CPQ_PAGE_SIZE: '5' },
    );
    await h.sync();
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, times: Infinity, status: 500 });
    const err = await h.syncError({ full: true });
    const basic = Buffer.from(`sync-user:${password}`).toString('base64');
    const everything = [
      ...h.logLines,
      err.message,
      err.stack ?? '',
      JSON.stringify(await h.t.query(`SELECT * FROM cpq.sync_runs`)),
      JSON.stringify(await h.t.query(`SELECT * FROM cpq.sync_state`)),
      JSON.stringify(await h.t.query(`SELECT * FROM cpq.users`)),
    ].join('\n');
    expect(h.logLines.length).toBeGreaterThan(5);
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(basic);
  });
});

describe('transport', () => {
  it('accepts a static bearer token', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0, auth: { bearerTokens: ['static-token-1'] } },
      { CPQ_TOKEN: 'static-token-1' },
    );
    expect((await h.sync()).inserted).toBe(4);
    expect(h.sim.requests.every((r) => r.authorization === 'bearer')).toBe(true);
  });

  it('retries a request that stalls past the timeout and one whose connection is reset mid-body', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 }, { CPQ_REQUEST_TIMEOUT: '300ms', CPQ_PAGE_SIZE: '5' });
    const path = '/rest/v16/companies/_host/users';
    h.sim.addFault({ match: { path }, times: 1, action: 'stall' });
    h.sim.addFault({ match: { path }, times: 1, action: 'reset' });
    const result = await h.sync();
    expect(result.inserted).toBe(12);
    const [run] = await h.t.query<{ http_retries: Record<string, number> }>(`SELECT http_retries FROM cpq.sync_runs`);
    // The stall and the reset, each retried. Counted from the log, not as exactly two: on a loaded
    // machine a page answered in time can still miss the 300 ms (its timer run before its answer
    // is read), and is retried too (review GU saw 3, once in 21 runs); so can the reset page,
    // logged then as a timeout (review GW).
    const retried = h.logLines.filter((line) => line.includes('"msg":"request failed; retrying"')).length;
    const timedOut = h.logLines.some((line) => line.includes('no response within the request timeout'));
    expect({ retries: run!.http_retries, bothRetried: retried >= 2, timedOut }).toEqual({ retries: { network: retried }, bothRetried: true, timedOut: true });
  });

  it('renews the OAuth token before it expires', async ({ startHarness }) => {
    let clock = Date.parse('2025-06-01T00:00:00Z');
    const now = () => clock;
    const h = await startHarness({
      partnerCompanies: 0,
      usersPerCompany: 3,
      integrationUsers: 0,
      now: () => new Date(clock),
      auth: { oauth: { clientId: 'c', clientSecret: 's', tokenTtlSeconds: 600 } },
    });
    const { OAuthClientCredentials } = await import('../src/cpq/auth.js');
    const auth = new OAuthClientCredentials({ kind: 'oauth', tokenUrl: `${h.sim.baseUrl}/oauth2/v1/token`, clientId: 'c', clientSecret: 's' }, 5000, now);
    const first = await auth.authorization();
    clock += 500_000; // 500 of 600 seconds: still inside the lifetime less the renewal margin
    expect(await auth.authorization()).toBe(first);
    clock += 50_000; // 550 s: within the last minute, renewed early
    const second = await auth.authorization();
    expect(second).not.toBe(first);
    expect(h.sim.tokenRequests).toBe(2);
  });
});

describe('run lifecycle', () => {
  it('skips with a lock error while another run holds the lock, recording no run', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const holder = await h.t.pool.connect();
    try {
      await holdSyncLock(holder);
      const err = await h.syncError();
      expect(err).toHaveProperty('kind', 'lock');
      expect(await h.t.query(`SELECT * FROM cpq.sync_runs`)).toEqual([]);
    } finally {
      await holder.query('SELECT pg_advisory_unlock_all()');
      holder.release();
    }
    expect((await h.sync()).inserted).toBe(3);
  });

  it('marks a dead run (left running, ended without recording how) as abandoned', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    // Started a day ago: the next run finds it now, but when it ended is not known.
    await h.t.query(`INSERT INTO cpq.sync_runs (site, status, mode, started_at) VALUES ('default', 'running', 'incremental', now() - interval '1 day')`);
    await h.sync();
    const runs = await h.t.query<{ status: string; finished_at: Date | null }>(`SELECT status, finished_at FROM cpq.sync_runs ORDER BY id`);
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'abandoned', 'succeeded']);
    expect(runs[1]!.finished_at).toBeNull();
    const report = await readStatus(h.t.pool);
    expect(report.sites[0]!.runs[1]).toMatchObject({ status: 'abandoned', finishedAt: null, durationSeconds: null });
    expect(formatStatus(report)).toMatch(/\n +2 +[\d-]+ [\d:]+ +\? +incremental +abandoned /);
  });

  it('an interrupted run rolls back and is recorded as interrupted', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    const controller = new AbortController();
    let pages = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++pages === 2) controller.abort();
    };
    const err = await h.syncError({ signal: controller.signal });
    expect(err).toHaveProperty('kind', 'interrupted');
    expect(await h.t.query(`SELECT 1 FROM cpq.users`)).toEqual([]);
    const runs = await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs`);
    expect(runs).toEqual([{ status: 'interrupted' }]);
  });

  it('a signal while the run waits for its OAuth token ends the run at once, recorded as interrupted (review DL)', async ({ startHarness }) => {
    // A token service that never answers: the token request did not hear the run's signal, so a
    // SIGTERM waited for CPQ_REQUEST_TIMEOUT (60 s), past SHUTDOWN_TIMEOUT's 30 s: exit 1 by force,
    // the run left "running".
    const asked: ServerResponse[] = [];
    const tokenService = createServer((_req, res) => void asked.push(res));
    await new Promise<void>((resolve) => tokenService.listen(0, '127.0.0.1', resolve));
    try {
      const h = await startHarness(
        { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 },
        {
          CPQ_OAUTH_TOKEN_URL: `http://127.0.0.1:${(tokenService.address() as AddressInfo).port}/token`,
          CPQ_OAUTH_CLIENT_ID: 'client',
          CPQ_OAUTH_CLIENT_SECRET: 'client-secret',
          CPQ_REQUEST_TIMEOUT: '20s',
        },
      );
      const controller = new AbortController();
      const failed = h.syncError({ signal: controller.signal });
      while (asked.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      const abortedAt = performance.now();
      controller.abort();
      expect(await failed).toHaveProperty('kind', 'interrupted');
      expect(performance.now() - abortedAt).toBeLessThan(5_000);
      expect(await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs`)).toEqual([{ status: 'interrupted' }]);
    } finally {
      tokenService.closeAllConnections();
      await new Promise((resolve) => tokenService.close(resolve));
    }
  }, 60_000);

  it('a signal while the run waits at its commit (another run holds the commit order) still rolls it back', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const holder = await h.t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE cpq.commit_order IN EXCLUSIVE MODE');
      const controller = new AbortController();
      const failed = h.syncError({ signal: controller.signal });
      // Until the run waits for the table lock at its last statement.
      for (let waiting = 0; waiting === 0;) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const [row] = await h.t.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%sync_runs%' AND datname = current_database()`,
        );
        waiting = row!.n;
      }
      controller.abort();
      await holder.query('ROLLBACK');
      expect(await failed).toHaveProperty('kind', 'interrupted');
    } finally {
      holder.release();
    }
    expect(await h.t.query(`SELECT 1 FROM cpq.users`)).toEqual([]);
    expect(await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs`)).toEqual([{ status: 'interrupted' }]);
  });
});
