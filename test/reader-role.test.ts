import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterEach, describe, expect, inject } from 'vitest';
import { createDb, createPool, withOptions } from '../src/db/database.js';
import { checkSchema } from '../src/check/database.js';
import type { Database } from '../src/db/connect.js';
import { MIGRATIONS_DIR, migrate } from '../src/db/migrate.js';
import { SITE_LOCK_CLASS } from '../src/db/site-lock-key.js';
import { SyncError } from '../src/errors.js';
import { runSync } from '../src/sync/run.js';
import { readRunHealth } from '../src/worker/run-health.js';
import { ALL_MIGRATIONS } from './helpers/database.js';
import { it } from './helpers/harness.js';
import { Cleanups } from './helpers/cli-process.js';
import { connectReaderLogin } from './helpers/reader-login.js';

/*
 * cpq_reader (migrations/0003_reader_role.sql): a login role that is granted cpq_reader reads
 * every reporting table and view and the as-of functions, and can do nothing else. Roles are
 * cluster-wide and the test databases are clones on one server: cpq_reader already exists when
 * these tests run, and each test makes login roles of its own, dropped afterwards.
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

const REPORTING = [
  'users',
  'groups',
  'user_groups',
  'user_access_permissions',
  'sync_runs',
  'sync_state',
  'user_changes',
  'user_change_log',
  'user_versions',
  'user_group_versions',
  'user_access_permission_versions',
  'user_changes_flat',
  'user_history',
  'user_group_history',
  'user_access_permission_history',
  'active_users_by_company',
  'users_per_group',
  'group_members',
  'administrators',
  'integration_users',
  'user_logins',
  'recent_changes',
  'group_versions',
  'group_history',
  'group_changes',
  'sites',
  'scheduled_ticks',
  'run_company_counts',
  'run_seals',
  'retention_state',
  'erasures',
  'alert_outbox',
  'commit_order',
  // Which fields each feed gave each integration user (migration 0035): names only.
  'user_feed_fields',
  // The dateAdded and CPQ id last known of a login's holder (migration 0036): not personal.
  'user_known_identity',
];

async function admin<T>(work: (c: pg.Client) => Promise<T>, database?: string): Promise<T> {
  const url = new URL(inject('adminDatabaseUrl'));
  if (database) url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A new database and an ordinary login role (no superuser, CREATEROLE or CREATEDB), the role its
 * owner or not; both dropped after the test. The URL logs in to it as the role.
 */
async function databaseWithRole(owned: boolean): Promise<{ url: URL; role: string; database: string }> {
  const role = `cpq_owner_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const database = `cpq_rr_db_${randomBytes(5).toString('hex')}`;
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD '${password}'`);
    await c.query(`CREATE DATABASE ${database}${owned ? ` OWNER ${role}` : ''}`);
  });
  cleanups.push(() =>
    admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS ${role}`);
    }),
  );
  const url = new URL(inject('adminDatabaseUrl'));
  url.pathname = `/${database}`;
  url.username = role;
  url.password = password;
  return { url, role, database };
}

/** A login role of this test, member of cpq_reader (or another role), connected to `databaseUrl`. */
async function loginAs(databaseUrl: string, memberOf = 'cpq_reader'): Promise<pg.Client> {
  const { reader, end } = await connectReaderLogin(databaseUrl, memberOf);
  cleanups.push(end);
  return reader;
}

/** The error `migrate` fails with on `db`, or undefined when it migrated. */
const migrationRefusal = (db: Parameters<typeof migrate>[0]): Promise<unknown> =>
  migrate(db).then(
    () => undefined,
    (err: unknown) => err,
  );

const denied = async (client: pg.Client, sql: string) => {
  await expect(client.query(sql), sql).rejects.toThrow(/permission denied|must be owner/);
};

describe('cpq_reader', () => {
  it('reads every reporting table and view and the as-of functions; writes, DDL and the migration tables are refused', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0 });
    await h.sync();
    const reader = await loginAs(h.t.url);

    // A refused read rejects; each one must answer (with some count).
    for (const name of REPORTING) {
      await expect(reader.query(`SELECT count(*)::int AS n FROM cpq."${name}"`), name).resolves.toMatchObject({ rows: [{ n: expect.any(Number) as unknown }] });
    }
    expect((await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.users`)).rows[0]!.n).toBe(6);
    // The 6 users as synced a moment ago: their memberships, permissions and groups.
    const asOfNow = { users_as_of: 6, user_groups_as_of: 27, user_access_permissions_as_of: 8, groups_as_of: 15 };
    for (const [fn, count] of Object.entries(asOfNow)) {
      const { rows } = await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.${fn}(now())`);
      expect(rows[0]!.n, fn).toBe(count);
    }
    // The auditor's function: the reader gets what the owner gets.
    const rights = `SELECT login, admin_right, group_variable_name, since FROM cpq.admin_rights_as_of(now(), 'default') ORDER BY 1, 2, 3`;
    const owned = await h.t.query(rights);
    expect(owned.length, 'admin rights of the simulated users').toBeGreaterThan(0);
    expect((await reader.query(rights)).rows).toEqual(owned);

    await denied(reader, `INSERT INTO cpq.groups (variable_name) VALUES ('x')`);
    await denied(reader, `UPDATE cpq.users SET last_name = 'x'`);
    await denied(reader, `DELETE FROM cpq.user_changes`);
    await denied(reader, `TRUNCATE cpq.sync_runs`);
    await denied(reader, `UPDATE cpq.sync_state SET cursor = now()`);
    await denied(reader, `CREATE TABLE cpq.mine (x int)`);
    await denied(reader, `CREATE VIEW cpq.mine AS SELECT 1`);
    await denied(reader, `SELECT * FROM cpq.kysely_migration`);
    await denied(reader, `SELECT * FROM cpq.kysely_migration_lock`);
    await denied(reader, `SELECT cpq.grant_reader_access()`);
    await denied(reader, `ALTER TABLE cpq.users ADD COLUMN x int`);

    // Nothing but SELECT on any relation of cpq, and no CREATE on the schema, in the catalog too.
    const extra = await h.t.query<{ relname: string; privilege: string }>(
      `SELECT c.relname, p.privilege FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(privilege)
       WHERE n.nspname = 'cpq' AND c.relkind IN ('r', 'p', 'v', 'm') AND has_table_privilege('cpq_reader', c.oid, p.privilege)`,
    );
    expect(extra).toEqual([]);
    const [schema] = await h.t.query<{ usage: boolean; create: boolean }>(
      `SELECT has_schema_privilege('cpq_reader', 'cpq', 'USAGE') AS usage, has_schema_privilege('cpq_reader', 'cpq', 'CREATE') AS create`,
    );
    expect(schema).toEqual({ usage: true, create: false });
    const readable = await h.t.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'cpq' AND c.relkind IN ('r', 'p', 'v', 'm') AND has_table_privilege('cpq_reader', c.oid, 'SELECT') ORDER BY 1`,
    );
    expect(readable.map((r) => r.relname).sort()).toEqual([...REPORTING].sort());
  });

  it("holding a site's sync lock (any role may take an advisory lock) makes runs fail loudly, naming the session, instead of each being skipped", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const reader = await loginAs(h.t.url);
    const { rows } = await reader.query<{ lock_id: number; pid: number }>(`SELECT lock_id, pg_backend_pid() AS pid FROM cpq.sites WHERE name = 'default'`);
    await reader.query(`SELECT pg_advisory_lock($1, $2)`, [SITE_LOCK_CLASS, rows[0]!.lock_id]);
    const error = await h.syncError();
    expect(error).toBeInstanceOf(SyncError);
    expect((error as { kind?: string }).kind).toBe('database');
    expect(error.message).toMatch(
      new RegExp(
        `^the sync lock of site default is held by a session of role cpq_rr_[0-9a-f]+ \\(pid ${rows[0]!.pid}\\), which cannot write the cpq tables, so it is no cpq-sync run`,
      ),
    );
    // Recorded as a failed run, which status, /readyz and the run metrics go by.
    const runs = async () => h.t.query<{ status: string; error: string | null }>(`SELECT status, error FROM cpq.sync_runs ORDER BY id`);
    expect(await runs()).toEqual([
      { status: 'succeeded', error: null },
      { status: 'failed', error: error.message },
    ]);
    expect(await readRunHealth(h.t.pool, 'default')).toMatchObject({ lastRunFailed: true, lastRun: { status: 'failed' } });
    // A run's own session holding it (the sync role can write) is the usual case: skipped, with no record.
    await reader.query(`SELECT pg_advisory_unlock($1, $2)`, [SITE_LOCK_CLASS, rows[0]!.lock_id]);
    const writer = await h.t.pool.connect();
    try {
      await writer.query(`SELECT pg_advisory_lock($1, $2)`, [SITE_LOCK_CLASS, rows[0]!.lock_id]);
      expect(await h.syncError()).toMatchObject({ kind: 'lock' });
      expect(await runs()).toHaveLength(2);
    } finally {
      await writer.query(`SELECT pg_advisory_unlock_all()`);
      writer.release();
    }
  });

  it("cannot hold up a run at its commit: the commit number is taken under a table lock a reader may not take (advisory keys are anyone's)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const reader = await loginAs(h.t.url);
    await denied(reader, 'SELECT * FROM cpq.commit_order FOR UPDATE');
    await denied(reader, 'SELECT * FROM cpq.commit_order FOR KEY SHARE');
    for (const mode of ['ROW SHARE', 'EXCLUSIVE']) {
      await reader.query('BEGIN');
      await denied(reader, `LOCK TABLE cpq.commit_order IN ${mode} MODE`);
      await reader.query('ROLLBACK');
    }
    // Held for the whole run: the key schema 9 took its commit number under.
    await reader.query('BEGIN');
    await reader.query('SELECT pg_advisory_lock(109334590874993), * FROM cpq.commit_order');
    const run = await h.sync();
    expect(run.status).toBe('succeeded');
    const [row] = await h.t.query<{ commit_seq: string | null }>(`SELECT commit_seq FROM cpq.sync_runs WHERE id = $1`, [run.runId]);
    expect(row!.commit_seq).not.toBeNull();
    await reader.query('ROLLBACK');
  });

  it('queueing a lock it will be refused (CREATE RULE behind its own open read) fails a run after SYNC_LOCK_TIMEOUT, loudly, instead of holding it', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const [holding, queueing] = [await loginAs(h.t.url), await loginAs(h.t.url)];
    await holding.query('BEGIN');
    await holding.query('SELECT count(*) FROM cpq.commit_order');
    // Postgres takes ACCESS EXCLUSIVE before it checks ownership: queued behind the open read, refused later.
    const refused = queueing.query('CREATE RULE r AS ON INSERT TO cpq.commit_order DO INSTEAD NOTHING').catch((e: unknown) => e);
    const pool = createPool(h.t.url, 4, 1500);
    try {
      const error = await runSync({ pool, db: createDb(pool), config: h.config, log: h.log }).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'database' });
      expect((error as Error).message).toMatch(/lock timeout.*SYNC_LOCK_TIMEOUT/);
      const [run] = await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
      expect(run).toEqual({ status: 'failed' });
    } finally {
      await pool.end();
    }
    await holding.query('ROLLBACK');
    expect(String(await refused)).toMatch(/must be owner/);
    expect((await h.sync()).status).toBe('succeeded');
  });

  it("cannot hold up runs by holding Kysely's migration lock (a fixed advisory key): a run with nothing to migrate does not take it", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const reader = await loginAs(h.t.url);
    await reader.query('SELECT pg_advisory_lock(3853314791062309107)');
    const run = await h.sync();
    expect(run.status).toBe('succeeded');
    // With a migration to apply (here: one marked not applied), the run fails naming the holder rather than wait.
    await h.t.query(`DELETE FROM cpq.kysely_migration WHERE name = (SELECT max(name) FROM cpq.kysely_migration)`);
    const error = await h.syncError();
    expect(error.message).toMatch(/^the migration lock is held by a session of role cpq_rr_[0-9a-f]+ \(pid \d+\), which cannot write the cpq tables/);
    await reader.query('SELECT pg_advisory_unlock_all()');
  });

  it("cannot put its own code in the sync's way: functions and operators it creates in a writable public schema (Postgres 14 and older) are not on the sync's search path", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    await h.sync();
    const database = new URL(h.t.url).pathname.slice(1);
    await admin((c) => c.query(`GRANT CREATE ON SCHEMA public TO PUBLIC`), database);
    const reader = await loginAs(h.t.url);
    // Closer matches than the built-ins for the calls in cpq.login_hash (convert_to(login, 'UTF8'))
    // and isoUtcSql (extract(...) % 1000): found first on a search path that holds public.
    await reader.query(`CREATE FUNCTION public.convert_to(text, text) RETURNS bytea LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'reader code ran'; END $$`);
    await reader.query(
      `CREATE FUNCTION public.reader_mod(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'reader operator ran'; END $$`,
    );
    await reader.query(`CREATE OPERATOR public.% (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.reader_mod)`);
    cleanups.push(() =>
      admin(async (c) => {
        await c.query(`DROP OPERATOR IF EXISTS public.% (numeric, integer); DROP FUNCTION IF EXISTS public.reader_mod(numeric, integer)`);
        await c.query(`DROP FUNCTION IF EXISTS public.convert_to(text, text); REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
      }, database),
    );
    const login = String(h.sim.users('_host')[0]!.login);
    h.sim.updateUser('_host', login, { lastName: 'Changed' });
    const run = await h.sync({ full: true });
    expect(run.status).toBe('succeeded');
    expect(await h.t.query(`SELECT login, change FROM cpq.user_changes WHERE run_id = $1`, [run.runId])).toEqual([{ login, change: 'update' }]);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.run_seals WHERE run_id = $1`, [run.runId])).toEqual([{ n: 1 }]);
  });

  it("keeps the sync's search_path and lock_timeout when DATABASE_URL carries options of its own (node-postgres let those replace them), and keeps those too", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 });
    const url = new URL(h.t.url);
    url.searchParams.set('options', '-c statement_timeout=12345 -c search_path=public');
    const pool = createPool(url.toString(), 1, 4000);
    try {
      const { rows } = await pool.query(
        `SELECT current_setting('search_path') AS sp, current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st`,
      );
      expect(rows).toEqual([{ sp: 'pg_catalog,pg_temp', lt: '4s', st: '12345ms' }]);
    } finally {
      await pool.end();
    }
    // Every form node-postgres takes, a socket path with credentials (no URL host) among them; every options= kept.
    expect(withOptions('postgres://u:50%off@/db?host=/run/postgresql&options=-c%20a%3D1&options=-c+b%3D2&sslmode=disable#note', '-c c=3')).toEqual({
      connectionString: 'postgres://u:50%off@/db?host=/run/postgresql&sslmode=disable#note',
      options: '-c a=1 -c b=2 -c c=3',
    });
    expect(withOptions('postgres:///db?host=/tmp', '-c c=3')).toEqual({ connectionString: 'postgres:///db?host=/tmp', options: '-c c=3' });
    expect(withOptions('postgres:///db?opt%69ons=-c%20a%3D1', '-c c=3')).toEqual({ connectionString: 'postgres:///db', options: '-c a=1 -c c=3' });
  });

  it('reads tables that later migrations create (default privileges)', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    // As the role that runs the migrations, like a later migration would.
    await h.t.query(`CREATE TABLE cpq.later_report (id int); INSERT INTO cpq.later_report VALUES (1)`);
    await h.t.query(`CREATE VIEW cpq.later_view AS SELECT id FROM cpq.later_report`);
    const reader = await loginAs(h.t.url);
    expect((await reader.query(`SELECT id FROM cpq.later_report`)).rows).toEqual([{ id: 1 }]);
    expect((await reader.query(`SELECT id FROM cpq.later_view`)).rows).toEqual([{ id: 1 }]);
    await denied(reader, `INSERT INTO cpq.later_report VALUES (2)`);
  });

  it('the migration is idempotent: again in the same database, and in a new database of a cluster where cpq_reader exists, migrated by a non-superuser owner', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    // 0003's role creation and grants, run again on the migrated database (its function
    // definition is older than the as-of functions' signatures; later migrations replace it).
    const migration = readFileSync(`${MIGRATIONS_DIR}/0003_reader_role.sql`, 'utf8');
    const sql = migration.slice(migration.lastIndexOf('DO $$'));
    await h.t.query(sql);
    await h.t.query(sql);
    expect((await h.t.query(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'cpq_reader'`))[0]).toEqual({ n: 1 });

    // A database owned by an ordinary role (no superuser, no CREATEROLE), migrated by it.
    const { url } = await databaseWithRole(true);
    const pool = createPool(url.toString());
    const db = createDb(pool);
    try {
      expect(await migrate(db)).toEqual(ALL_MIGRATIONS);
      expect(await migrate(db)).toEqual([]);
    } finally {
      await db.destroy();
    }
    const reader = await loginAs(url.toString());
    expect((await reader.query(`SELECT count(*)::int AS n FROM cpq.users`)).rows).toEqual([{ n: 0 }]);
    await denied(reader, `INSERT INTO cpq.groups (variable_name) VALUES ('x')`);
  });

  it('a schema cpq the role may use but not create tables in: a run (or migrate) fails with the fix check gives, exit code 6', async () => {
    const { url, role, database } = await databaseWithRole(false);
    await admin((c) => c.query(`CREATE SCHEMA cpq; GRANT USAGE ON SCHEMA cpq TO ${role}`), database);
    const db = createDb(createPool(url.toString()));
    try {
      const refused = await migrationRefusal(db);
      expect(refused).toBeInstanceOf(SyncError);
      // It said only `the migrations failed: permission denied for schema cpq; rolled back: …`.
      expect(refused).toMatchObject({
        kind: 'database',
        message: `the migrations failed: permission denied for schema cpq; rolled back: no migration of this release was applied; role ${role} may not create tables in schema cpq: run cpq-sync as the role that owns schema cpq, or have a DBA run GRANT CREATE, USAGE ON SCHEMA cpq TO ${role}`,
      });
    } finally {
      await db.destroy();
    }
  });

  it('a schema cpq a DBA made for the role, in a database where it may not create schemas, is migrated (review CM: every run failed, permission denied for database)', async () => {
    const { url, role: owner, database } = await databaseWithRole(false);
    await admin((c) => c.query(`REVOKE CREATE ON DATABASE ${database} FROM PUBLIC`), database);
    const pool = createPool(url.toString());
    const db = createDb(pool);
    const schemaStep = async (on: pg.Pool) => {
      const { status, detail, fix } = await checkSchema({ pool: on } as Database);
      return { status, detail, fix };
    };
    try {
      // check says what the first run will meet, before the DBA made the schema and after.
      expect(await schemaStep(pool)).toEqual({
        status: 'fail',
        detail: `no cpq schema, and role ${owner} may not create one in database ${database}`,
        fix: `have a DBA run CREATE SCHEMA cpq AUTHORIZATION ${owner} (or GRANT CREATE ON DATABASE ${database} TO ${owner})`,
      });
      // A run (or cpq-sync migrate) says the same, as a database failure (exit code 6): it said
      // `permission denied for database …` alone, and migrate exited 1, an internal error.
      const refused = await migrationRefusal(db);
      expect(refused).toBeInstanceOf(SyncError);
      expect(refused).toMatchObject({
        kind: 'database',
        message: `no cpq schema, and role ${owner} may not create one in database ${database}: have a DBA run CREATE SCHEMA cpq AUTHORIZATION ${owner} (or GRANT CREATE ON DATABASE ${database} TO ${owner})`,
      });
      await admin((c) => c.query(`CREATE SCHEMA cpq AUTHORIZATION ${owner}`), database);
      expect(await schemaStep(pool)).toEqual({
        status: 'warn',
        detail: 'schema cpq exists, not migrated yet',
        fix: 'the first run (or cpq-sync migrate) migrates it',
      });
      // CREATE SCHEMA IF NOT EXISTS checks the database's CREATE privilege before it looks: every run failed.
      expect(await migrate(db)).toEqual(ALL_MIGRATIONS);
      expect(await migrate(db)).toEqual([]);
      expect((await schemaStep(pool)).status).toBe('pass');
    } finally {
      await db.destroy();
    }
    // A reporting login: it reads, and check says a run as it would fail (it passed, and every run failed).
    await admin((c) => c.query(`GRANT CONNECT ON DATABASE ${database} TO cpq_reader`));
    const readerName = `cpq_rr_${randomBytes(5).toString('hex')}`;
    const readerPassword = randomBytes(12).toString('hex');
    await admin((c) => c.query(`CREATE ROLE ${readerName} LOGIN PASSWORD '${readerPassword}' IN ROLE cpq_reader`));
    cleanups.push(() => admin((c) => c.query(`DROP ROLE IF EXISTS ${readerName}`)));
    url.username = readerName;
    url.password = readerPassword;
    const readerPool = createPool(url.toString());
    try {
      expect(await schemaStep(readerPool)).toEqual({
        status: 'fail',
        detail: expect.stringMatching(new RegExp(`^version \\S+, but role ${readerName} may not write the cpq tables`)) as unknown,
        fix: 'run cpq-sync as the role that owns schema cpq (the one that migrated it)',
      });
    } finally {
      await readerPool.end();
    }
  });
});

/** Names followed by `(` that are SQL syntax, not a function looked up in the search_path. */
const SQL_SYNTAX = new Set([
  'select',
  // EXTRACT(field FROM source): the grammar calls pg_catalog's, whatever the search_path.
  'extract',
  'any',
  'all',
  'array',
  'coalesce',
  'nullif',
  'exists',
  'in',
  'values',
  'and',
  'or',
  'not',
  'then',
  'else',
  'when',
  'from',
  'where',
  'as',
]);

/** The functions a cpq function's body calls without naming their schema. */
function unqualifiedCalls(body: string): string[] {
  const code = body.replace(/'(?:[^']|'')*'/g, "''").replace(/"(?:[^"]|"")*"/g, '""');
  return [...code.matchAll(/(?<![\w.:$"])([a-z_][a-z0-9_]*)\s*\(/gi)].map((m) => m[1]!.toLowerCase()).filter((name) => !SQL_SYNTAX.has(name));
}

describe('cpq functions and a reporting login that may create functions in public', () => {
  it('every cpq function has a search_path of its own, or names the schema of every function it calls', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 });
    const functions = await h.t.query<{ name: string; body: string; config: string[] }>(
      `SELECT p.oid::regprocedure::text AS name, p.prosrc AS body, coalesce(p.proconfig, '{}') AS config
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'cpq' ORDER BY 1`,
    );
    expect(functions.length).toBeGreaterThan(20);
    const exposed = functions
      .filter((f) => !f.config.some((c) => /^search_path=pg_catalog(, pg_temp)?$/.test(c)))
      .map((f) => ({ name: f.name, unqualified: unqualifiedCalls(f.body) }))
      .filter((f) => f.unqualified.length > 0);
    expect(exposed).toEqual([]);
    // The check finds what it looks for.
    expect(unqualifiedCalls(`SELECT lower(pg_catalog.replace(k, '(x', 'y')) = ANY (cpq.keys()) FROM jsonb_each(j) AS e(key)`)).toEqual([
      'lower',
      'jsonb_each',
      'e',
    ]);
  });

  it("a function a reporting login puts in public is never run by cpq's functions, called with the default search_path", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const database = new URL(h.t.url).pathname.slice(1);
    // As in a database made by Postgres 14 or older: anyone may create in public.
    await admin(async (c) => {
      await c.query(`GRANT CREATE ON SCHEMA public TO PUBLIC`);
      await c.query(`CREATE TABLE public.hijacked (fn text, by_role text)`);
      await c.query(`GRANT INSERT ON public.hijacked TO PUBLIC`);
    }, database);
    const reader = await loginAs(h.t.url);
    // Its functions go before the role does (cleanups run last first).
    cleanups.push(() => admin((c) => c.query(`DROP OWNED BY ${reader.user!}`), database));
    // Overloads that match the calls in cpq's functions more closely than pg_catalog's own; each notes who ran it.
    const hijacks: Array<[signature: string, returns: string, result: string]> = [
      ['format(text, name)', 'text', 'pg_catalog.format($1, $2)'],
      ['to_json(text)', 'json', 'pg_catalog.to_json($1)'],
      ['convert_to(text, text)', 'bytea', 'pg_catalog.convert_to($1, $2::name)'],
      ['jsonb_build_object(text, jsonb, text, jsonb)', 'jsonb', 'pg_catalog.jsonb_build_object($1, $2, $3, $4)'],
      ['jsonb_object_agg(text, jsonb)', 'jsonb', 'NULL'],
      ['concat_ws(text, text, text, text, text, text)', 'text', 'pg_catalog.concat_ws($1, $2, $3, $4, $5, $6)'],
    ];
    for (const [signature, returns, result] of hijacks) {
      const fn = signature.slice(0, signature.indexOf('('));
      await reader.query(
        `CREATE FUNCTION public.${signature} RETURNS ${returns} LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.hijacked VALUES ('${fn}', current_user); RETURN ${result}; END $$`,
      );
    }
    // Operators: pg_catalog's are looked up first, so one of the reader's is taken only where
    // pg_catalog has no exact match for the argument types (numeric % integer). One of each
    // operator the functions use, for each pair of two different number types or string types.
    const families = [
      { types: ['smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision'], as: 'numeric' },
      { types: ['text', 'name', 'character varying', 'character'], as: 'text' },
    ];
    const operators = { '%': 'mod', '=': 'eq', '<>': 'ne', '<': 'lt', '>': 'gt', '<=': 'le', '>=': 'ge', '+': 'add', '-': 'sub', '*': 'mul', '||': 'cat' };
    const statements: string[] = [];
    for (const { types, as } of families)
      for (const left of types)
        for (const right of types) {
          if (left === right) continue;
          for (const [op, name] of Object.entries(operators)) {
            if ((as === 'text') !== (op === '||' || ['=', '<>', '<', '>', '<=', '>='].includes(op))) continue;
            const fn = `public.hijack_${name}_${left}_${right}`.replace(/ /g, '_');
            const returns = ['=', '<>', '<', '>', '<=', '>='].includes(op) ? 'boolean' : as;
            statements.push(
              `CREATE FUNCTION ${fn}(${left}, ${right}) RETURNS ${returns} LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO public.hijacked VALUES ('${op}(${left}, ${right})', current_user); RETURN $1::${as} OPERATOR(pg_catalog.${op}) $2::${as}; END $$`,
              `CREATE OPERATOR public.${op} (LEFTARG = ${left}, RIGHTARG = ${right}, FUNCTION = ${fn})`,
            );
          }
        }
    await reader.query(statements.join(';\n'));
    // The reader's own calls show the overloads would be picked.
    await reader.query(`SELECT convert_to('a', 'UTF8'), extract(microseconds FROM now()) % 1000`);
    const ran = () =>
      admin(async (c) => (await c.query<{ fn: string; by_role: string }>(`SELECT fn, by_role FROM public.hijacked ORDER BY fn`)).rows, database);
    expect(await ran()).toEqual([
      { fn: '%(numeric, integer)', by_role: expect.stringMatching(/^cpq_rr_/) as unknown },
      { fn: 'convert_to', by_role: expect.stringMatching(/^cpq_rr_/) as unknown },
    ]);
    await admin((c) => c.query(`TRUNCATE public.hijacked`), database);

    // What a DBA's psql session runs: the README's grant and checksum, the change log's diffs, the seal and redaction functions.
    await admin(async (c) => {
      await c.query(`SELECT cpq.grant_reader_access()`);
      await c.query(`SELECT diff FROM cpq.user_changes`);
      await c.query(`SELECT count(*) FROM cpq.user_changes_flat`);
      await c.query(`SELECT cpq.login_checksum(sum(cpq.login_hash(login))) FROM cpq.users`);
      await c.query(`SELECT cpq.run_content_sha256(id), cpq.run_content_sha256(id, 4::smallint), cpq.run_chain_sha256(site, id, NULL, 'x') FROM cpq.sync_runs`);
      await c.query(
        `SELECT cpq.redact_personal_fields(raw), cpq.without_personal_fields(raw), cpq.without_personal_keys(raw), cpq.is_personal_key('Email') FROM cpq.users`,
      );
      await c.query(`SELECT count(*) FROM cpq.users_as_of(now()) u, cpq.user_groups_as_of(now()) g, cpq.groups_as_of(now()) gr`);
    }, database);
    expect(await ran()).toEqual([]);
  });
});

describe('connectReaderLogin (the helper that makes these logins)', () => {
  it('drops the login it made when its connect fails, and throws the connect error', async () => {
    // The logins it makes are members of this role alone: counted without another test's in the way.
    const group = `cpq_rg_${randomBytes(5).toString('hex')}`;
    await admin((c) => c.query(`CREATE ROLE ${group} NOLOGIN`));
    try {
      // A database the server does not have: the connect fails once the login exists.
      const nowhere = new URL(inject('adminDatabaseUrl'));
      nowhere.pathname = `/cpq_no_such_db_${randomBytes(5).toString('hex')}`;
      await expect(connectReaderLogin(nowhere.href, group)).rejects.toThrow(/database "cpq_no_such_db_[0-9a-f]+" does not exist/);
      // Before: the login stayed, a member of the group, on the server for good.
      const members = await admin(
        async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_auth_members WHERE roleid = $1::regrole`, [group])).rows[0]!.n,
      );
      expect(members).toBe(0);
    } finally {
      await admin((c) => c.query(`DROP ROLE ${group}`));
    }
  });
});
