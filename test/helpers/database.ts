import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { createDb, createPool, type Db } from '../../src/db/database.js';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { SITE_LOCK_CLASS } from '../../src/db/site-lock-key.js';
import { registerSite, withSyncLock } from '../../src/db/sql/with-sync-lock.js';
import type { Logger } from '../../src/logger.js';
import { gate } from './cli-process.js';

/**
 * The tables about runs rather than users, as an SQL list: those a run writes outside its
 * transaction, failed or not (the run record, the site it registers on its first run, the
 * scheduled ticks workers claim), and what a successful run records of itself (its per-company
 * counts and its seal, which name the run and differ between two runs of the same data).
 * Comparisons of "the data" leave them out.
 */
export const RUN_BOOKKEEPING_TABLES = `'sync_runs', 'sites', 'scheduled_ticks', 'run_company_counts', 'run_seals'`;

/** The names of every migration of this release, in order: what migrating an empty database applies. */
export const ALL_MIGRATIONS = readdirSync(MIGRATIONS_DIR)
  .filter((f) => f.endsWith('.sql'))
  .sort()
  .map((f) => f.replace(/\.sql$/, ''));

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  db: Db;
  /** Runs SQL and returns the rows. */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** Runs `work` on a connection to the test server with the rights to create databases and roles. */
export async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** How a test's database differs from the template's. */
export interface TestDatabaseOptions {
  /**
   * The database's default collation an ICU locale's (`tr-TR`: lower('I') is 'ı'), made from
   * template0, so not migrated: the first run migrates it. Unset: C, cloned from the migrated template.
   */
  icuLocale?: string;
}

/** A fresh database cloned from the migrated template: each test gets its own, so tests never see each other's rows. */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const name = `cpq_test_${randomBytes(6).toString('hex')}`;
  const { icuLocale } = options;
  await admin((c) =>
    c.query(
      icuLocale === undefined
        ? `CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`
        : `CREATE DATABASE ${name} ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE ${pg.escapeLiteral(icuLocale)} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
    ),
  );
  const url = new URL(inject('adminDatabaseUrl'));
  url.pathname = `/${name}`;
  const pool = createPool(url.toString());
  const db = createDb(pool);
  return {
    url: url.toString(),
    pool,
    db,
    query: async <T extends pg.QueryResultRow>(text: string, params?: unknown[]) => (await pool.query<T>(text, params)).rows,
    drop: async () => {
      await db.destroy();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/**
 * Waits until `backends` backends of this database wait for a lock (statements the test holds up),
 * at most 30 s: a loaded CI can take seconds to get a statement that far. Returns those waiting.
 */
export async function untilWaitingForLock(t: TestDatabase, backends = 1): Promise<{ pid: number }[]> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const rows = await t.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    if (rows.length >= backends) return rows;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${backends === 1 ? 'no backend' : `not ${backends} backends`} started waiting for a lock within 30 s`);
}

/**
 * `work`, run while a session of `pool` holds site default's sync lock as a run does
 * (withSyncLock), from once it is held (not while its request is on the way); the lock is let go
 * of and the session released after.
 */
export async function whileRunHoldsSyncLock<T>(pool: pg.Pool, log: Logger, work: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const release = gate();
  const locked = gate();
  const holding = withSyncLock(
    client,
    'default',
    () => {
      locked.open();
      return release.promise;
    },
    { log },
  );
  try {
    // Or its failure (the lock held by another session), not a wait until the test's timeout.
    await Promise.race([locked.promise, holding]);
    return await work();
  } finally {
    release.open();
    await holding;
    client.release();
  }
}

/**
 * Takes `site`'s sync lock on `client` as another run would (session-level); returns what
 * releases it.
 */
export async function holdSyncLock(client: pg.ClientBase, site = 'default'): Promise<() => Promise<void>> {
  const lockId = await registerSite(client, site);
  await client.query('SELECT pg_advisory_lock($1, $2)', [SITE_LOCK_CLASS, lockId]);
  return async () => {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [SITE_LOCK_CLASS, lockId]);
  };
}

/**
 * Rebuilds `t`'s schema as an earlier release left it: empty, with the migrations named before
 * `first` applied (`0010` for the release before sites), for tests of the migrations after it.
 */
export async function migrateBefore(t: TestDatabase, first: string): Promise<void> {
  const earlier = mkdtempSync(join(tmpdir(), 'cpq-migrations-'));
  try {
    for (const file of readdirSync(MIGRATIONS_DIR).filter((f) => f < first)) cpSync(join(MIGRATIONS_DIR, file), join(earlier, file));
    await t.query('DROP SCHEMA cpq CASCADE');
    await migrate(t.db, { dir: earlier });
  } finally {
    rmSync(earlier, { recursive: true, force: true });
  }
}

/**
 * A database of the release before 0021 (which adds a column to cpq.sites: ACCESS EXCLUSIVE), and a
 * report reading cpq.sites in a transaction on `report` (open, left to the caller to end): every
 * attempt at the migrations waits for it. `applied()`: how many migrations the database records
 * (`before`: as the report began).
 */
export async function migrationsHeldByReport(t: TestDatabase, report: pg.ClientBase): Promise<{ applied: () => Promise<number>; before: number }> {
  await migrateBefore(t, '0021');
  const applied = async () => (await t.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.kysely_migration`))[0]!.n;
  const before = await applied();
  await report.query('BEGIN');
  await report.query('SELECT count(*) FROM cpq.sites');
  return { applied, before };
}

/**
 * Whether the server at `url` lets a wrong password in (initdb --auth=trust, as reviewers'
 * clusters are): there a test of a refused or missing password cannot happen.
 */
export async function acceptsAnyPassword(url: string): Promise<boolean> {
  const wrong = new URL(url);
  wrong.password = 'not-the-password';
  const probe = new pg.Client({ connectionString: wrong.toString() });
  const accepted = await probe.connect().then(
    () => true,
    () => false,
  );
  await probe.end().catch(() => undefined);
  return accepted;
}
