import { readdirSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { migrate, MIGRATIONS_DIR } from '../src/db/migrate.js';
import { runSync } from '../src/sync/run.js';
import { migrateBefore, type TestDatabase } from './helpers/database.js';
import { it } from './helpers/fixtures.js';

/*
 * Migration 0010 on a database of the previous release: the data a release before sites wrote
 * (several runs: inserts, updates, a deletion, group changes) is copied, without its site
 * column, into a database migrated to 0009 only; migrating it must make it the database the sync
 * wrote, site `default` in every row, with the same history and as-of answers.
 */

/** The tables of 0009 in an order their foreign keys allow. */
const TABLES = [
  'sync_runs',
  'sync_state',
  'users',
  'user_versions',
  'groups',
  'group_versions',
  'group_changes',
  'user_groups',
  'user_group_versions',
  'user_access_permissions',
  'user_access_permission_versions',
  'user_change_log',
];

/**
 * Columns a run writes that no migration can fill in for the runs of an earlier release: 0031's
 * progress and 0044's commit_seq_at_start, null for those runs (as the README says), written by
 * every run since.
 */
const WRITTEN_BY_RUNS_SINCE: Record<string, string[]> = { sync_runs: ['progress', 'progress_at', 'commit_seq_at_start'] };

async function columnsOf(t: TestDatabase, table: string): Promise<string[]> {
  const rows = await t.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((r) => r.column_name);
}

/** Every row of `table` as JSON text with `columns` only, sorted. */
async function rowsOf(t: TestDatabase, table: string, columns: string[]): Promise<string[]> {
  const rows = await t.query<{ row: string }>(
    `SELECT (SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(x)) WHERE key = ANY($1::text[]))::text AS row FROM cpq."${table}" x ORDER BY 1`,
    [columns],
  );
  return rows.map((r) => r.row);
}

describe('migration 0010 on a database of the release before sites', () => {
  it('every row becomes site default, nothing lost; history and as-of answers unchanged; the next run changes nothing', async ({
    startHarness,
    createDatabase,
  }) => {
    // The data: written by the sync, over several runs with changes of every kind.
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 6, integrationUsers: 0 });
    const first = await h.sync();
    const [a, b, c] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', a!, { lastName: 'Renamed' });
    h.sim.deleteUser('_host', b!);
    h.sim.addGroup('partner1', String(h.sim.users('partner1')[0]!.login), { variableName: 'auditors', label: 'Auditors', type: 'Administrator' });
    const second = await h.sync({ full: true });
    h.sim.updateUser('_host', c!, { email: 'c@example.com' });
    await h.sync();
    expect(second.deleted).toBe(1);

    // The previous release's schema (migrations up to 0009), holding the same rows without site.
    const old = await createDatabase();
    await migrateBefore(old, '0010');
    const client = await old.pool.connect();
    try {
      // Rows copied as stored: no trigger renumbers the runs' commit order.
      await client.query(`SET session_replication_role = replica`);
      for (const table of TABLES) {
        const columns = await columnsOf(old, table);
        expect(columns, table).not.toContain('site');
        const rows = await rowsOf(h.t, table, columns);
        const list = columns.map((col) => `"${col}"`).join(', ');
        await client.query(
          `INSERT INTO cpq."${table}" (${list}) OVERRIDING SYSTEM VALUE
           SELECT ${list} FROM jsonb_populate_recordset(NULL::cpq."${table}", $1::jsonb)`,
          [`[${rows.join(',')}]`],
        );
      }
      // The identity sequences where the sync left them.
      await client.query(`DO $$
        DECLARE r record;
        BEGIN
          FOR r IN SELECT c.relname AS tbl, a.attname AS col FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cpq' AND a.attidentity <> '' LOOP
            EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L), (SELECT coalesce(max(%I), 0) + 1 FROM cpq.%I), false)',
                           'cpq.' || r.tbl, r.col, r.col, r.tbl);
          END LOOP;
        END $$`);
    } finally {
      await client.query(`SET session_replication_role = DEFAULT`);
      client.release();
    }
    const asOf = async (t: TestDatabase, at: Date) => ({
      users: await t.query(`SELECT id, login, last_name, email, deleted_at FROM cpq.users_as_of($1) ORDER BY id`, [at]),
      groups: await t.query(`SELECT user_id, group_variable_name FROM cpq.user_groups_as_of($1) ORDER BY 1, 2`, [at]),
      permissions: await t.query(`SELECT user_id, type, variable_name, has_access FROM cpq.user_access_permissions_as_of($1) ORDER BY 1, 2, 3`, [at]),
      labels: await t.query(`SELECT variable_name, label, type FROM cpq.groups_as_of($1) ORDER BY 1`, [at]),
    });
    const runs = await h.t.query<{ effective_at: Date }>(`SELECT effective_at FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY id`);
    const moments = [...runs.map((r) => r.effective_at), new Date()];
    const answersBefore = [];
    for (const at of moments) answersBefore.push(await asOf(old, at));
    const changesBefore = await old.query(`SELECT id, run_id, change, user_id, login, diff FROM cpq.user_changes ORDER BY id`);

    // Reports a warehouse built on the views and functions of the previous release.
    await old.query(`CREATE VIEW public.weekly_changes AS SELECT id, login, days_ago FROM cpq.recent_changes`);
    await old.query(`CREATE VIEW public.admins_then AS SELECT login FROM cpq.users_as_of('2030-01-01') WHERE is_user_admin_perm_enabled`);
    await old.query(`CREATE VIEW public.history_rows AS SELECT id, valid_to FROM cpq.user_history`);

    // The upgrade.
    expect(await migrate(old.db)).toEqual(
      readdirSync(MIGRATIONS_DIR)
        .filter((f) => f >= '0010')
        .map((f) => f.replace(/\.sql$/, '')),
    );

    // Every row is site default, and the database is the one the sync wrote, table by table.
    for (const table of TABLES) {
      const later = WRITTEN_BY_RUNS_SINCE[table] ?? [];
      const columns = (await columnsOf(h.t, table)).filter((column) => !later.includes(column));
      expect(await rowsOf(old, table, columns), table).toEqual(await rowsOf(h.t, table, columns));
      for (const column of later) expect(await old.query(`SELECT DISTINCT "${column}" AS value FROM cpq."${table}"`), column).toEqual([{ value: null }]);
      expect(await old.query(`SELECT DISTINCT site FROM cpq."${table}"`), table).toEqual(
        (await old.query(`SELECT 1 FROM cpq."${table}" LIMIT 1`)).length ? [{ site: 'default' }] : [],
      );
    }
    expect(await old.query(`SELECT name FROM cpq.sites`)).toEqual([{ name: 'default' }]);
    // The reports built on the previous release still answer.
    expect((await old.query(`SELECT count(*)::int AS n FROM public.weekly_changes`))[0]).toEqual({ n: changesBefore.length });
    await old.query(`SELECT * FROM public.admins_then`);
    await old.query(`SELECT * FROM public.history_rows`);
    // History: the same answers at every moment, and the same change log.
    for (const [i, at] of moments.entries()) expect(await asOf(old, at), at.toISOString()).toEqual(answersBefore[i]);
    for (const at of moments) expect(await asOf(old, at)).toEqual(await asOf(h.t, at));
    expect(await old.query(`SELECT id, run_id, change, user_id, login, diff FROM cpq.user_changes ORDER BY id`)).toEqual(changesBefore);

    // The next run on the upgraded database: incremental from the copied cursors, nothing changed.
    const next = await h.sync();
    const upgraded = await runSync({ pool: old.pool, db: old.db, config: h.config, log: h.log });
    expect(upgraded).toMatchObject({ site: 'default', mode: 'incremental', inserted: 0, updated: 0, deleted: 0, restored: 0 });
    expect(next).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    expect(first.inserted).toBeGreaterThan(0);
  });
});
