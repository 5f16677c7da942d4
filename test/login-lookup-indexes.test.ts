import type pg from 'pg';
import { describe, expect } from 'vitest';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

/*
 * Migration 0026: one user's history and as-of state asked for by site, company and login (the
 * key a warehouse knows) are read through an index, not by reading every ended version; its change
 * log through the user's id, as the README shows. An index changes no answer: each question is
 * asked twice, once as the planner must answer it with the index (sequential scans off, so that it
 * is taken on these few rows), once by login with every index scan off (what the answer was before
 * the migration), and the rows compared.
 */

/** The rows of `text`, and its plan, with the planner settings given, in a transaction of their own. */
async function askWith(h: Harness, settings: string[], text: string, params: unknown[]): Promise<{ rows: unknown[]; plan: string }> {
  const client: pg.PoolClient = await h.t.pool.connect();
  try {
    await client.query('BEGIN');
    for (const setting of settings) await client.query(`SET LOCAL ${setting}`);
    const rows = (await client.query(text, params)).rows;
    const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
    return { rows, plan };
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

const WITH_INDEX = ['enable_seqscan = off'];
const WITHOUT_INDEX = ['enable_indexscan = off', 'enable_bitmapscan = off', 'enable_indexonlyscan = off'];

describe('lookups of one user by login (migration 0026)', () => {
  it('read the history, the change log and the as-of state through an index, with the same answers', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 });
    const [login, other] = h.sim.users('_host').map((u) => String(u.login)) as [string, string];
    const full = async () => expect((await h.sync({ full: true })).status).toBe('succeeded');
    await full();
    h.sim.updateUser('_host', login, { lastName: 'Second' });
    h.sim.updateUser('_host', other, { lastName: 'Other' });
    await full();
    h.sim.addGroup('_host', login, { variableName: 'siteAdmins', label: 'Site admins', type: 'Administrator' });
    await full();
    const record = h.sim.user('_host', login)!;
    h.sim.deleteUser('_host', login);
    await full();
    h.sim.addUser('_host', { ...record, lastName: 'Back', dateModified: new Date().toISOString() }, { exact: true });
    await full();

    const key = ['default', '_host', login];
    const history = `SELECT id, valid_from, valid_to, last_name, deleted_at FROM cpq.user_history
                     WHERE site = $1 AND company_login = $2 AND login = $3 ORDER BY valid_from`;
    const changes = `SELECT id, run_id, change, diff FROM cpq.user_changes WHERE site = $1 AND company_login = $2 AND login = $3 ORDER BY id`;
    // The README's form: the change log through the user's id (no login index on it: see migration 0026).
    const changesById = `SELECT id, run_id, change, diff FROM cpq.user_changes
                         WHERE user_id = (SELECT id FROM cpq.users WHERE site = $1 AND company_login = $2 AND login = $3) ORDER BY id`;

    const historyWith = await askWith(h, WITH_INDEX, history, key);
    expect(historyWith.plan).toContain('user_versions_login_idx');
    expect(historyWith.rows).toEqual((await askWith(h, WITHOUT_INDEX, history, key)).rows);
    // Four ended versions (first load, renamed, a group joined, deleted) and the current one (restored).
    expect((historyWith.rows as { last_name: string; deleted_at: Date | null }[]).map((r) => `${r.last_name}${r.deleted_at ? ' (deleted)' : ''}`)).toEqual([
      expect.any(String),
      'Second',
      'Second',
      'Second (deleted)',
      'Back',
    ]);

    const changesWith = await askWith(h, WITH_INDEX, changesById, key);
    expect(changesWith.plan).toContain('user_changes_user_idx');
    expect(changesWith.rows).toEqual((await askWith(h, WITHOUT_INDEX, changes, key)).rows);
    expect((changesWith.rows as { change: string }[]).map((r) => r.change)).toEqual(['insert', 'update', 'update', 'delete', 'restore']);

    const runs = await h.t.query<{ effective_at: Date }>(`SELECT effective_at FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY commit_seq`);
    expect(runs).toHaveLength(5);
    const asOf = `SELECT id, last_name, deleted_at, valid_from FROM cpq.users_as_of($4::timestamptz, $1) WHERE company_login = $2 AND login = $3`;
    const lastNames: unknown[] = [];
    for (const { effective_at } of runs) {
      const withIndex = await askWith(h, WITH_INDEX, asOf, [...key, effective_at]);
      expect(withIndex.plan).toContain('user_versions_login_idx');
      expect(withIndex.rows).toEqual((await askWith(h, WITHOUT_INDEX, asOf, [...key, effective_at])).rows);
      lastNames.push(...(withIndex.rows as { last_name: string; deleted_at: Date | null }[]).map((r) => `${r.last_name}${r.deleted_at ? ' (deleted)' : ''}`));
    }
    expect(lastNames.slice(1)).toEqual(['Second', 'Second', 'Second (deleted)', 'Back']);
  });
});
