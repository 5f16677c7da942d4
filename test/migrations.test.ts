import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { createDb, createPool } from '../src/db/database.js';
import { checkSchema } from '../src/check/database.js';
import type { Database } from '../src/db/connect.js';
import { MIGRATIONS_DIR, migrate } from '../src/db/migrate.js';
import { SyncError } from '../src/errors.js';
import { cli, until } from './helpers/cli-process.js';
import { ALL_MIGRATIONS, migrateBefore, untilWaitingForLock } from './helpers/database.js';
import { it } from './helpers/fixtures.js';
import { dumpSchema } from './helpers/schema-dump.js';

describe('migrations', () => {
  it('creates every table in schema cpq', async ({ fileDatabase: t }) => {
    const rows = await t.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'cpq' ORDER BY 1`);
    expect(rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['groups', 'sync_runs', 'sync_state', 'user_access_permissions', 'user_groups', 'users']),
    );
  });

  it('is idempotent: migrating an up-to-date database applies nothing', async ({ fileDatabase: t }) => {
    expect(await migrate(t.db)).toEqual([]);
  });

  it('leaves no per-row foreign key on the tables a run bulk-writes, and keeps those of the history tables', async ({ fileDatabase: t }) => {
    const rows = await t.query<{ table_name: string; n: number }>(
      `SELECT conrelid::regclass::text AS table_name, count(*)::int AS n FROM pg_constraint
       WHERE contype = 'f' AND connamespace = 'cpq'::regnamespace GROUP BY 1 ORDER BY 1`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.table_name, r.n]))).toEqual({
      'cpq.sync_state': 1,
      'cpq.user_versions': 1,
      'cpq.user_group_versions': 1,
      'cpq.user_access_permission_versions': 1,
      // A few hundred groups at most: a row per changed group and run.
      'cpq.group_versions': 1,
      'cpq.group_changes': 1,
      // A row per scheduled tick claimed.
      'cpq.scheduled_ticks': 1,
      // A row per company and run, and per run: written once by each run.
      'cpq.run_company_counts': 1,
      'cpq.run_seals': 2,
      // A row per privileged change: a handful per run, not one per user read.
      'cpq.alert_outbox': 1,
    });
  });

  it('gives cpq.users a typed column for the documented fields', async ({ fileDatabase: t }) => {
    const rows = await t.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = 'users'`,
    );
    const types = Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
    expect(types).toMatchObject({
      party_id: 'bigint',
      cpq_id: 'bigint',
      party_number: 'text',
      last_name: 'text',
      is_user_admin_perm_enabled: 'boolean',
      status: 'integer',
      status_display: 'text',
      time_zone: 'text',
      bill_state_province: 'text',
      ship_company2: 'text',
      date_modified: 'timestamp with time zone',
      raw: 'jsonb',
      deleted_at: 'timestamp with time zone',
    });
  });
});

describe('a migration and SYNC_LOCK_TIMEOUT', () => {
  it('a migration waits for a run in progress to commit, however short SYNC_LOCK_TIMEOUT is', async ({ createDatabase }) => {
    const t = await createDatabase();
    // 0015 indexes cpq.users, which a run holds (ROW EXCLUSIVE) until it commits.
    await migrateBefore(t, '0015');
    const run = await t.pool.connect();
    const pool = createPool(t.url, 2, 300);
    try {
      await run.query('BEGIN');
      await run.query('LOCK TABLE cpq.users IN ROW EXCLUSIVE MODE');
      const migrated = migrate(createDb(pool));
      migrated.catch(() => undefined);
      // The run goes on for longer than the pool's 300 ms lock_timeout once the migration waits for
      // it: counted from a fixed start, the pause could end, on a loaded CI, before the migration
      // had asked for its lock, and the test pass without a wait.
      await untilWaitingForLock(t);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await run.query('COMMIT');
      expect(await migrated).toContain('0015_integration_users_index');
    } finally {
      run.release();
      await pool.end();
    }
  });
});

describe("a migration behind a reporting session's open transaction", () => {
  it('does not hold every later reader of the table behind its queued lock while it waits, names the session it waits for, and is applied once it ends', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    // 0019 replaces cpq.administrators (ACCESS EXCLUSIVE on the view), which a report is reading.
    await migrateBefore(t, '0019');
    const report = await t.pool.connect();
    const later = await t.pool.connect();
    const pool = createPool(t.url, 2);
    try {
      await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await report.query('SELECT count(*) FROM cpq.administrators');
      const reportPid = (await report.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const waits: string[] = [];
      const migrated = migrate(createDb(pool), { lockWaitMs: 200, onLockWait: (holders) => waits.push(holders) });
      migrated.catch(() => undefined);
      // The migration has met the report's lock at least once: a fixed 1.5 s could end, on a
      // loaded CI, before the migration had got that far, and the test failed (no wait seen).
      await until('the migration to wait for the report', () => waits.length > 0);
      // Another report of the same view: held behind the migration's queued ACCESS EXCLUSIVE request,
      // it waited for as long as the first report stayed open (here, its own statement_timeout).
      await later.query(`SET statement_timeout = '1s'`);
      expect((await later.query<{ n: number }>('SELECT count(*)::int AS n FROM cpq.administrators')).rows).toEqual([{ n: 0 }]);
      expect(waits.length).toBeGreaterThan(0);
      expect(waits[0]).toContain(`pid ${reportPid}`);
      await report.query('COMMIT');
      expect(await migrated).toContain('0019_administrators_with_proxy');
    } finally {
      report.release();
      later.release();
      await pool.end();
    }
  });
});

describe('a migration whose session the server ends', () => {
  it("fails with one line naming the migration and the server's reason, as a database error; nothing is applied, and the next migrate applies it", async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    await migrateBefore(t, '0019');
    const report = await t.pool.connect();
    const pool = createPool(t.url, 2);
    try {
      await report.query('BEGIN');
      await report.query('SELECT count(*) FROM cpq.administrators');
      const migrated = migrate(createDb(pool), { lockWaitMs: 20_000 });
      migrated.catch(() => undefined);
      let ended = false;
      for (const until = Date.now() + 10_000; !ended && Date.now() < until;) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const rows = await t.query<{ ended: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'cpq-user-sync' AND wait_event_type = 'Lock'`,
        );
        ended = rows.some((r) => r.ended);
      }
      expect(ended).toBe(true);
      // Before: "Postgres connection has been discarded", an internal error (exit code 1), naming no migration.
      const failure = await migrated.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(SyncError);
      expect((failure as SyncError).kind).toBe('database');
      expect((failure as SyncError).message).toMatch(
        /^migration 0019_administrators_with_proxy failed: terminating connection due to administrator command; rolled back: no migration of this release was applied$/,
      );
      await report.query('COMMIT');
      expect(await t.query(`SELECT max(name) AS last FROM cpq.kysely_migration`)).toEqual([{ last: '0018_insert_diffs_name_custom_fields' }]);
      expect(await migrate(t.db)).toContain('0019_administrators_with_proxy');
    } finally {
      report.release();
      await pool.end();
    }
  });
});

describe("a new release's migration that a reporting team's view is in the way of", () => {
  /** This release's migrations and one more, `0999_next.sql` holding `text`: a later release's. */
  function nextRelease(text: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'cpq-migrations-'));
    for (const file of readdirSync(MIGRATIONS_DIR)) cpSync(join(MIGRATIONS_DIR, file), join(dir, file));
    writeFileSync(join(dir, '0999_next.sql'), text);
    return dir;
  }

  it('fails in one line naming the objects that depend on what it changes, and applies nothing', async ({ createDatabase }) => {
    const t = await createDatabase();
    await t.query(`CREATE SCHEMA reporting`);
    await t.query(`CREATE VIEW reporting.admin_emails AS SELECT u.email FROM cpq.administrators a JOIN cpq.users u ON u.id = a.user_id`);
    await t.query(`CREATE VIEW reporting.site_urls AS SELECT name, cpq_url FROM cpq.sites`);
    const cases = [
      {
        sql: 'ALTER TABLE cpq.sites ALTER COLUMN cpq_url TYPE varchar(2000);',
        message:
          /^migration 0999_next failed: cannot alter type of a column used by a view or rule \(rule _RETURN on view reporting\.site_urls depends on column "cpq_url"\); rolled back: no migration of this release was applied$/,
      },
      {
        sql: 'DROP VIEW cpq.administrators;',
        message:
          /^migration 0999_next failed: cannot drop view cpq\.administrators because other objects depend on it \(view reporting\.admin_emails depends on view cpq\.administrators\); rolled back: no migration of this release was applied$/,
      },
    ];
    for (const { sql, message } of cases) {
      const dir = nextRelease(sql);
      try {
        await expect(migrate(t.db, { dir })).rejects.toThrow(message);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      expect(await t.query(`SELECT count(*)::int AS n FROM cpq.kysely_migration`)).toEqual([{ n: ALL_MIGRATIONS.length }]);
    }
  });

  it("names no other DETAIL: a unique index's names the duplicated key values, users' logins among them", async ({ createDatabase }) => {
    const t = await createDatabase();
    await t.query(`CREATE TABLE cpq.logins_seen (login text)`);
    await t.query(`INSERT INTO cpq.logins_seen VALUES ('jane.doe@example.com'), ('jane.doe@example.com')`);
    const dir = nextRelease('CREATE UNIQUE INDEX logins_seen_login ON cpq.logins_seen (login);');
    try {
      await expect(migrate(t.db, { dir })).rejects.toThrow(
        /^migration 0999_next failed: could not create unique index "logins_seen_login"; rolled back: no migration of this release was applied$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a migration behind sessions that never all let go at once', () => {
  it('tries in short turns for its patience, then waits in the queue and is applied while they go on', async ({ createDatabase }) => {
    const t = await createDatabase();
    await migrateBefore(t, '0019');
    // Two reports taking turns on the view 0019 replaces, each open 1.2 s and begun before the
    // other ends (an older release's runs of two sites, back to back): some session always holds
    // it, so an attempt that gives up after a short wait never gets it.
    const reports = [await t.pool.connect(), await t.pool.connect()];
    const pids = await Promise.all(reports.map(async (r) => (await r.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid));
    const pool = createPool(t.url, 2);
    let stop = false;
    const holding = [false, false];
    const nexts: string[] = [];
    // A report ends its turn once the other holds the view, or, once the migration waits in the
    // queue, waits behind its request: with fixed pauses alone, a loaded CI's late timer could leave
    // a moment with neither, a short turn take the lock, and the test fail with nothing wrong.
    const otherHolds = async (k: number) =>
      stop ||
      holding[1 - k]! ||
      (nexts.includes('queue') && (await t.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [pids[1 - k]])).length > 0);
    const turns = reports.map(async (report, k) => {
      if (k === 1) {
        await until('the first report to hold the view', () => stop || holding[0]!);
        await new Promise((resolve) => setTimeout(resolve, 600));
      }
      while (!stop) {
        await report.query('BEGIN');
        await report.query('SELECT count(*) FROM cpq.administrators');
        holding[k] = true;
        await new Promise((resolve) => setTimeout(resolve, 1200));
        await until('the other report to take its turn', () => otherHolds(k));
        holding[k] = false;
        await report.query('COMMIT');
      }
    });
    try {
      // The first attempt finds the view held.
      await until('the first report to hold the view', () => holding[0]!);
      const started = Date.now();
      const migrated = await Promise.race([
        migrate(createDb(pool), { lockWaitMs: 100, patienceMs: 2000, onLockWait: (_, next) => nexts.push(next) }),
        new Promise<never>((_, fail) => setTimeout(() => fail(new Error(`still not migrated after 60 s (tries: ${nexts.join(', ')})`)), 60_000)),
      ]);
      expect(migrated).toContain('0019_administrators_with_proxy');
      expect(nexts[0]).toBe('retry');
      expect(nexts.at(-1)).toBe('queue');
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    } finally {
      stop = true;
      await Promise.all(turns);
      for (const report of reports) report.release();
      await pool.end();
    }
  });
});

describe('a migration lock held by a session that can write the tables (another worker of this release migrating)', () => {
  it('is waited for, not refused as a reader would be: the migrations are applied once it lets go', async ({ createDatabase }) => {
    const t = await createDatabase();
    await migrateBefore(t, '0019');
    const holder = await t.pool.connect();
    try {
      // Kysely's migration lock, as its Migrator takes it; this role owns schema cpq.
      await holder.query('SELECT pg_advisory_lock(3853314791062309107)');
      const migrated = migrate(t.db, { lockWaitMs: 200 });
      const outcome = migrated.then(
        () => 'applied',
        (err: unknown) => `failed: ${err instanceof Error ? err.message : String(err)}`,
      );
      // Still waiting 1.5 s (attempts of 200 ms, tried again) after it is seen waiting for the lock:
      // counted from its start, a loaded CI's pause could end before it had even looked at the lock.
      await untilWaitingForLock(t);
      const waited = await Promise.race([outcome, new Promise((resolve) => setTimeout(() => resolve('waiting'), 1500))]);
      expect(waited).toBe('waiting');
      await holder.query('SELECT pg_advisory_unlock(3853314791062309107)');
      expect(await migrated).toContain('0019_administrators_with_proxy');
    } finally {
      holder.release();
    }
  });
});

describe('migrating an empty database from several processes at once', () => {
  it("succeeds in each (two sites' first runs): creating schema cpq at once is no failure", async ({ createDatabase }) => {
    const t = await createDatabase();
    const pools = Array.from({ length: 4 }, () => createPool(t.url, 1));
    try {
      for (let round = 0; round < 5; round++) {
        await t.query('DROP SCHEMA cpq CASCADE');
        const results = await Promise.allSettled(pools.map((pool) => migrate(createDb(pool))));
        expect(results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
        expect(await t.query(`SELECT count(*)::int AS n FROM cpq.kysely_migration`)).toEqual([{ n: ALL_MIGRATIONS.length }]);
      }
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });
});

describe('a database migrated by a newer release', () => {
  it('is used as it is, with a warning, instead of failing', async ({ createDatabase }) => {
    const t = await createDatabase();
    await t.query(`INSERT INTO cpq.kysely_migration (name, timestamp) VALUES ('9999_from_the_future', now())`);
    const ahead: string[][] = [];
    expect(await migrate(t.db, { onAhead: (names) => ahead.push(names) })).toEqual([]);
    expect(ahead).toEqual([['9999_from_the_future']]);
  });
});

describe('a database migrated by another build of an older release', () => {
  // Migration 0017 was renamed before release (0017_commit_order_row_lock, then _table_lock): a
  // database a build between the two migrated records the first name, which sorts before this
  // release's last migration, so no newer release wrote it. Taken for one, it was never migrated
  // again (`migrate` exited 0) and every run failed on a column a later migration adds.
  it('is refused, naming the migration, not taken for a newer one', async ({ createDatabase }) => {
    const t = await createDatabase();
    await migrateBefore(t, '0017');
    await t.query(`INSERT INTO cpq.kysely_migration (name, timestamp) VALUES ('0017_commit_order_row_lock', now())`);
    const ahead: string[][] = [];
    await expect(migrate(t.db, { onAhead: (names) => ahead.push(names) })).rejects.toThrow(
      /records migration 0017_commit_order_row_lock, which this release does not have and which sorts before its last \(\d{4}_[\w]+\): not a newer release's/,
    );
    expect(ahead).toEqual([]);
    const { status, detail } = await checkSchema({ pool: t.pool } as Database);
    expect(status).toBe('fail');
    expect(detail).toContain('0017_commit_order_row_lock');
  });
});

describe('a database migrated by a build that had a migration before the one named ahead of it', () => {
  // Three times a migration was committed after one named later: a build between had 0009 but
  // not 0008, 0011 but not 0010, 0032 but not 0031. Kysely refused such a database ("corrupted
  // migrations: expected previously executed migration 0032_seal_company_counts to be at index 30
  // but 0031_run_progress was found"), so it could never be upgraded. Each state is made as that
  // build's migrate made it: its files (this release's, unchanged since: released-migrations),
  // applied in name order by Kysely, which records them in cpq.kysely_migration.
  for (const [missing, later] of [
    ['0008_group_history', '0009_commit_order'],
    ['0010_sites', '0011_alert_outbox'],
    ['0031_run_progress', '0032_seal_company_counts'],
  ] as const) {
    it(`upgrades one with ${later} but not ${missing} to the schema a fresh database gets`, async ({ createDatabase }) => {
      const fresh = await createDatabase();
      const t = await createDatabase();
      const build = mkdtempSync(join(tmpdir(), 'cpq-migrations-'));
      try {
        for (const file of readdirSync(MIGRATIONS_DIR).filter((f) => f < missing || f === `${later}.sql`)) {
          cpSync(join(MIGRATIONS_DIR, file), join(build, file));
        }
        await t.query('DROP SCHEMA cpq CASCADE');
        await migrate(t.db, { dir: build });
      } finally {
        rmSync(build, { recursive: true, force: true });
      }
      expect(await t.query(`SELECT max(name) AS last FROM cpq.kysely_migration`)).toEqual([{ last: later }]);
      // This release's migrate, as a user runs it.
      const out = await cli(['migrate'], { DATABASE_URL: t.url });
      expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
      expect((await t.query<{ name: string }>(`SELECT name FROM cpq.kysely_migration ORDER BY name`)).map((r) => r.name)).toEqual(ALL_MIGRATIONS);
      expect(await dumpSchema(t.pool)).toBe(await dumpSchema(fresh.pool));
      // And the grants the dump leaves out (cpq_reader's): both databases are on this one server.
      const grants = `SELECT c.relname AS name, c.relacl::text AS acl FROM pg_class c WHERE c.relnamespace = 'cpq'::regnamespace
        UNION ALL SELECT p.oid::regprocedure::text, p.proacl::text FROM pg_proc p WHERE p.pronamespace = 'cpq'::regnamespace ORDER BY 1`;
      expect(await t.query(grants)).toEqual(await fresh.query(grants));
      expect((await checkSchema({ pool: t.pool } as Database)).status).toBe('pass');
    });
  }
});
