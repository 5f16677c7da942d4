import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect } from 'vitest';
import { createDb, createPool } from '../src/db/database.js';
import { runSync } from '../src/sync/run.js';
import { ALL_MIGRATIONS, admin, migrateBefore, type TestDatabase } from './helpers/database.js';
import { Cleanups, cli, type CliProcess } from './helpers/cli-process.js';
import { holdRequests } from './helpers/scripted-pages.js';
import { it, snapshotTables } from './helpers/harness.js';
import { runCheck } from '../src/check/index.js';

/*
 * node-postgres reads timestamptz only from ISO text: under a database's (or role's) DateStyle of
 * German, SQL or Postgres every time read back was null, and every run failed with "Cannot read
 * properties of null (reading 'getTime')" while `check` passed (review CJ).
 */
describe('a database whose DateStyle and IntervalStyle are not the defaults', () => {
  it('runs, snapshots, lists its runs and its changes, every time read back exact', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const name = `cpq_datestyle_${randomBytes(5).toString('hex')}`;
    await admin(async (c) => {
      await c.query(`CREATE DATABASE ${name}`);
      await c.query(`ALTER DATABASE ${name} SET datestyle = 'German, DMY'`);
      await c.query(`ALTER DATABASE ${name} SET intervalstyle = 'iso_8601'`);
    });
    const url = new URL(h.t.url);
    url.pathname = `/${name}`;
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() };
    expect(await cli(['run'], env)).toMatchObject({ code: 0, stderr: '' });
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { lastName: 'Changed' });
    expect(await cli(['run'], env)).toMatchObject({ code: 0, stderr: '' });

    const snapshot = await cli(['snapshot', '--format', 'jsonl'], env);
    expect(snapshot.code).toBe(0);
    const rows = snapshot.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { date_modified: string; snapshot_as_of: string });
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row.snapshot_as_of).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const status = await cli(['status', '--json'], env);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as { sites: { runs: { status: string; startedAt: string; durationSeconds: number }[] }[] };
    expect(report.sites[0]!.runs.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    for (const run of report.sites[0]!.runs) {
      expect(run.startedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(run.durationSeconds).toBeGreaterThan(0);
    }
    const changes = await cli(['changes', '--after', '0'], env);
    expect(changes.code).toBe(0);
    expect(changes.stdout.trim().split('\n')).toHaveLength(4); // three inserts, one update
  });
});

/*
 * Limits a DBA sets on a role or database for interactive sessions (ALTER ROLE ... SET): a run's
 * transaction is idle while it waits on CPQ, and its statements, like a migration's, may wait for
 * locks as long as SYNC_LOCK_TIMEOUT allows. Each such limit failed every run against a slow CPQ,
 * or behind another site's commit, or a migration behind a run (review DE). The sessions of
 * cpq-sync that hold something set them off for themselves; the database keeps them for others.
 */
describe('a database whose sessions are limited (idle_in_transaction_session_timeout, statement_timeout)', () => {
  const cleanups = new Cleanups();
  afterEach(() => cleanups.run());

  /** Sets `setting` for every session of `t`'s database that starts from now on. */
  const limit = (t: TestDatabase, setting: string) => t.query(`ALTER DATABASE ${new URL(t.url).pathname.slice(1)} SET ${setting} = '1s'`);

  /**
   * Waits until a cpq-sync session of `t`'s database has been in `state` (a condition on
   * pg_stat_activity) for 3 s by the server's clock, three times the limit; or until `proc` ends
   * (the limit ended its session). At most 30 s.
   */
  async function outlasted(t: TestDatabase, proc: CliProcess, state: string): Promise<void> {
    for (const until = Date.now() + 30_000; Date.now() < until;) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      const rows = await t.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cpq-user-sync' AND pid <> pg_backend_pid() AND ${state}`,
      );
      if (rows.length > 0) return;
      await new Promise((wake) => setTimeout(wake, 50));
    }
    throw new Error(`no cpq-sync session was ${state} for long within 30 s`);
  }

  it('a run whose transaction waits on a slow CPQ longer than idle_in_transaction_session_timeout succeeds', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 });
    await limit(h.t, 'idle_in_transaction_session_timeout');
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_PAGE_SIZE: '10', CPQ_KEY_RANGES: '1' };
    // CPQ answers a page, then holds the next requests: the run's transaction is idle meanwhile.
    const held = holdRequests(h.sim, 2);
    cleanups.push(held.release);
    const run = cleanups.spawn(['run'], env);
    await held.reached;
    await run.waitForLine((l) => l.msg === 'page read');
    await outlasted(h.t, run, `state = 'idle in transaction' AND now() - state_change > interval '3 s'`);
    held.release();
    const out = await run.exited;
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(await h.t.query(`SELECT status, users_inserted FROM cpq.sync_runs`)).toEqual([{ status: 'succeeded', users_inserted: 30 }]);
  }, 90_000);

  it('a run whose transaction lasts longer than transaction_timeout (Postgres 17 and later) succeeds', async ({ startHarness, skip }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 });
    const version = (await h.t.query<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`))[0]!.version;
    skip(version < 170000, `transaction_timeout came with Postgres 17; this server is ${String(version)}`);
    await limit(h.t, 'transaction_timeout');
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_PAGE_SIZE: '10', CPQ_KEY_RANGES: '1' };
    const held = holdRequests(h.sim, 2);
    cleanups.push(held.release);
    const run = cleanups.spawn(['run'], env);
    await held.reached;
    await run.waitForLine((l) => l.msg === 'page read');
    await outlasted(h.t, run, `xact_start IS NOT NULL AND now() - xact_start > interval '3 s'`);
    held.release();
    const out = await run.exited;
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(await h.t.query(`SELECT status, users_inserted FROM cpq.sync_runs`)).toEqual([{ status: 'succeeded', users_inserted: 30 }]);
  }, 90_000);

  it("a run whose commit waits for another site's longer than statement_timeout succeeds", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    await limit(h.t, 'statement_timeout');
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    // Another site's run committing holds the commit order (the lock under which runs take their commit_seq).
    const other = new pg.Client({ connectionString: h.t.url });
    await other.connect();
    cleanups.push(() => other.end());
    await other.query('BEGIN');
    await other.query('LOCK TABLE cpq.commit_order IN EXCLUSIVE MODE');
    const run = cleanups.spawn(['run'], env);
    await outlasted(h.t, run, `wait_event_type = 'Lock' AND now() - query_start > interval '3 s'`);
    await other.query('COMMIT');
    const out = await run.exited;
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
  }, 90_000);

  it('a failed run whose record waits longer than statement_timeout (its row locked by another session) is recorded failed once it can be', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    await limit(h.t, 'statement_timeout');
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_RETRY_MAX: '0' };
    // CPQ holds the run's first request; meanwhile another session locks the run's record.
    const held = holdRequests(h.sim, 0);
    cleanups.push(held.release);
    const run = cleanups.spawn(['run'], env);
    await held.reached;
    const locker = new pg.Client({ connectionString: h.t.url });
    await locker.connect();
    cleanups.push(() => locker.end());
    await locker.query('BEGIN');
    const locked = await locker.query(`SELECT id FROM cpq.sync_runs WHERE status = 'running' FOR UPDATE`);
    expect(locked.rowCount, "the run's record").toBe(1);
    // The site refuses the credentials: the run fails, and its record waits on the lock past the limit.
    h.sim.addFault({ status: 401, times: Infinity });
    held.release();
    // Thrice the limit: the record's statement is not bound by a limit meant for reporting queries.
    await outlasted(h.t, run, `wait_event_type = 'Lock' AND query LIKE 'update "cpq"."sync_runs"%' AND now() - query_start > interval '3 s'`);
    await locker.query('COMMIT');
    const out = await run.exited;
    expect(out.stderr).toMatch(/^cpq-sync: [^\n]*\n$/);
    expect(out.code).toBe(4);
    expect(await h.t.query(`SELECT status, error IS NOT NULL AS has_error FROM cpq.sync_runs`)).toEqual([{ status: 'failed', has_error: true }]);
    expect(run.lines().filter((l) => /could not record/.test(String(l.msg)))).toEqual([]);
  }, 90_000);

  it('a migration that waits for a transaction in progress longer than statement_timeout is applied', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    // A database of the release before 0021, which adds a column to cpq.sites (ACCESS EXCLUSIVE).
    await migrateBefore(h.t, '0021');
    await limit(h.t, 'statement_timeout');
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    const report = new pg.Client({ connectionString: h.t.url });
    await report.connect();
    cleanups.push(() => report.end());
    await report.query('BEGIN');
    await report.query('SELECT count(*) FROM cpq.sites');
    const migrating = cleanups.spawn(['migrate'], env);
    // Twice the limit: each attempt of the migration waits up to 3 s for its locks (then tries again).
    await outlasted(h.t, migrating, `wait_event_type = 'Lock' AND now() - query_start > interval '2 s'`);
    await report.query('COMMIT');
    const out = await migrating.exited;
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.kysely_migration`)).toEqual([{ n: ALL_MIGRATIONS.length }]);
  }, 90_000);

  it('a run puts them back before its connection returns to the pool: each connection of the pool has them after', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await limit(h.t, 'statement_timeout');
    await limit(h.t, 'idle_in_transaction_session_timeout');
    const pool = createPool(h.t.url, 3);
    const clients: pg.PoolClient[] = [];
    try {
      expect((await runSync({ pool, db: createDb(pool), config: h.config, log: h.log })).status).toBe('succeeded');
      const kept = pool.idleCount;
      expect(kept, 'connections the run left in the pool').toBeGreaterThan(0);
      // Every connection the pool holds at once: those the run used (its own session among them), then new ones.
      for (let i = 0; i < 3; i++) clients.push(await pool.connect());
      const settings = await Promise.all(
        clients.map(
          async (c) =>
            (
              await c.query<{ st: string; it: string }>(
                `SELECT current_setting('statement_timeout') AS st, current_setting('idle_in_transaction_session_timeout') AS it`,
              )
            ).rows[0],
        ),
      );
      expect(settings).toEqual(Array(3).fill({ st: '1s', it: '1s' }));
    } finally {
      for (const c of clients) c.release();
      await pool.end();
    }
  });

  it("a run takes them off for its own sessions only: a new connection of the tool's pool has them still", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await limit(h.t, 'statement_timeout');
    await limit(h.t, 'idle_in_transaction_session_timeout');
    expect(await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url })).toMatchObject({ code: 0, stderr: '' });
    const pool = createPool(h.t.url, 1);
    try {
      const { rows } = await pool.query(`SELECT current_setting('statement_timeout') AS st, current_setting('idle_in_transaction_session_timeout') AS it`);
      expect(rows).toEqual([{ st: '1s', it: '1s' }]);
    } finally {
      await pool.end();
    }
  });
});

describe('a database that is read-only to the sync (a standby given by mistake, default_transaction_read_only set by a DBA)', () => {
  it('every command that writes fails before anything, in one line saying why and what to do; check fails its database step; the next run once writable succeeds', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    expect(await cli(['run'], env)).toMatchObject({ code: 0, stderr: '' });
    const before = await snapshotTables(h.t);
    const runs = await h.t.query('SELECT * FROM cpq.sync_runs ORDER BY id');
    const database = new URL(h.t.url).pathname.slice(1);
    // From the admin database: a session of this one opened from now on would be read-only itself.
    await admin((c) => c.query(`ALTER DATABASE ${database} SET default_transaction_read_only = on`));
    const line =
      /^cpq-sync: the database is read-only: sessions of role \w+ start read-only \(default_transaction_read_only is on for the database, the role or DATABASE_URL's options\), so nothing can be written: turn it off for this role \(ALTER ROLE \w+ SET default_transaction_read_only = off\) or its database, or point DATABASE_URL at a database the runs may write\n$/;
    for (const command of [['run'], ['migrate'], ['forget', '--company', '_host', '--login', 'nosuch', '--reason', 'test']]) {
      const out = await cli(command, env);
      expect(out.code, command[0]).toBe(6);
      // Before: "database error: cannot execute UPDATE in a read-only transaction" (SELECT FOR UPDATE for forget), no cause named.
      expect(out.stderr, command[0]).toMatch(line);
    }
    const report = await runCheck({ ...env, LOG_LEVEL: 'silent' });
    expect(report.ok).toBe(false);
    const step = report.database?.steps.find((s) => s.step === 'database');
    expect(step?.status).toBe('fail');
    expect(step?.detail).toMatch(/; the database is read-only: sessions of role \w+ start read-only/);
    expect(step?.fix).toMatch(/^turn it off for this role \(ALTER ROLE \w+ SET default_transaction_read_only = off\)/);
    await admin((c) => c.query(`ALTER DATABASE ${database} RESET default_transaction_read_only`));
    expect(await snapshotTables(h.t)).toEqual(before);
    expect(await h.t.query('SELECT * FROM cpq.sync_runs ORDER BY id')).toEqual(runs);
    expect(await cli(['run'], env)).toMatchObject({ code: 0, stderr: '' });
  }, 90_000);
});
