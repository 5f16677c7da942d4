import { describe, expect } from 'vitest';
import { it } from './helpers/harness.js';

type Raw = Record<string, unknown>;

/*
 * cpq.user_changes reads an insert's diff from cpq.insert_diff_row (migrations/0027), a function
 * Postgres inlines into the query, where it called the scalar cpq.insert_diff once per row before
 * (a statement set up again for each insert: a first load's export took twice as long). The rows
 * must be those of the view before it, to the byte: the old form is rebuilt here from the body the
 * database holds (0020's scalar function, which 0027 moved unchanged), so that it follows the user
 * columns as they change, and compared with the view for every change of runs that insert users
 * with and without groups, permissions and custom fields, update, delete and restore them.
 */
describe('insert diffs of cpq.user_changes', () => {
  it("are the old per-row function's, byte for byte, and read without a function call per row", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 40, integrationUsers: 2 });
    await h.sync();
    const logins = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', logins[0]!, { lastName: 'Renamed' });
    h.sim.addUser('_host', { login: 'plain-new', groups: { items: [] }, accessPermissions: { items: [] } });
    h.sim.addUser('_host', { login: 'custom-new', customAttr9: 'x', nickname: null });
    const gone = h.sim.user('_host', logins[1]!)!;
    h.sim.deleteUser('_host', logins[1]!);
    await h.sync({ full: true });
    const { dateModified: _old, ...fields } = gone;
    h.sim.addUser('_host', { ...fields, login: logins[1] });
    h.sim.addUser('_host', { login: 'third-run' });
    await h.sync();

    const client = await h.t.pool.connect();
    try {
      const [fn] = (
        await client.query<{ body: string }>(`SELECT prosrc AS body FROM pg_proc WHERE oid = 'cpq.insert_diff_row(bigint, timestamptz)'::regprocedure`)
      ).rows;
      await client.query(
        `CREATE FUNCTION pg_temp.insert_diff_before(p_user_id bigint, p_valid_from timestamptz) RETURNS jsonb LANGUAGE sql STABLE AS $body$${fn!.body}$body$`,
      );
      // The view as 0010 defined it (its last form before 0027), with the function as it was.
      const before = await client.query<{ id: string; diff: string | null }>(
        `SELECT id::text, (CASE WHEN diff IS NULL AND change = 'insert' THEN pg_temp.insert_diff_before(user_id, detected_at) ELSE diff END)::text AS diff
         FROM cpq.user_change_log ORDER BY user_change_log.id`,
      );
      const now = await client.query<{ id: string; diff: string | null }>(`SELECT id::text, diff::text FROM cpq.user_changes ORDER BY user_changes.id`);
      expect(now.rows).toEqual(before.rows);
      const scalar = await client.query<{ id: string; diff: string | null }>(
        `SELECT id::text, (CASE WHEN diff IS NULL AND change = 'insert' THEN cpq.insert_diff(user_id, detected_at) ELSE diff END)::text AS diff
         FROM cpq.user_change_log ORDER BY user_change_log.id`,
      );
      expect(scalar.rows).toEqual(before.rows);

      // The comparison covered every part of an insert's diff, and the other kinds of change.
      const kinds = await client.query<{ change: string; diff: Raw | null; login: string }>(`SELECT change, diff, login FROM cpq.user_changes ORDER BY id`);
      const inserts = kinds.rows.filter((r) => r.change === 'insert');
      expect(inserts.length).toBeGreaterThan(40);
      expect(inserts.every((r) => r.diff !== null && typeof r.diff === 'object')).toBe(true);
      expect(inserts.some((r) => 'groups' in r.diff! && 'accessPermissions' in r.diff)).toBe(true);
      expect(inserts.find((r) => r.login === 'plain-new')!.diff).not.toHaveProperty('groups');
      expect(inserts.find((r) => r.login === 'custom-new')!.diff).toMatchObject({ 'raw.customAttr9': { old: null, new: 'x' } });
      expect(inserts.find((r) => r.login === 'third-run')).toBeDefined();
      expect(new Set(kinds.rows.map((r) => r.change))).toEqual(new Set(['insert', 'update', 'delete', 'restore']));

      // Inlined: the plan reads the history tables itself, with no call of a function per row.
      const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (VERBOSE, COSTS OFF) SELECT diff FROM cpq.user_changes`)).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(plan).toContain('cpq.user_versions');
      expect(plan).toContain('cpq.user_group_versions');
      expect(plan).not.toMatch(/insert_diff/);
    } finally {
      client.release();
    }
  });
});
