import { describe, expect } from 'vitest';
import type { CpqSimulator } from '../src/simulator/index.js';
import { expectChangeLogConsistent, expectReferencesResolve, snapshotEverything } from './helpers/db-equals-simulator.js';
import type { TestDatabase } from './helpers/database.js';
import { type Harness, it, type StartHarness } from './helpers/harness.js';
import { repeatOnSecondPage, scriptRequests } from './helpers/scripted-pages.js';

/**
 * Direct first loads (SYNC_DIRECT_FIRST_LOAD: a company the database holds no user of is copied
 * straight into the final tables) and merge batches (SYNC_MERGE_BATCH_USERS: new users are merged
 * while the read goes on): whatever the settings, a run must leave exactly what staging every row
 * and one merge at the end leave.
 */

type Raw = Record<string, unknown>;

async function harness(
  startHarness: StartHarness,
  batchUsers: number,
  env: Record<string, string> = {},
  integrationUsers = 3,
  direct = true,
): Promise<Harness> {
  // A clock of its own, so that two sites given the same edits date them the same.
  let tick = Date.parse('2026-03-03T09:00:00.000Z');
  return startHarness(
    { seed: 7, partnerCompanies: 1, usersPerCompany: 25, integrationUsers, now: () => new Date((tick += 1000)) },
    { CPQ_COMPANIES: '_host,partner1', CPQ_PAGE_SIZE: '5', SYNC_MERGE_BATCH_USERS: String(batchUsers), SYNC_DIRECT_FIRST_LOAD: String(direct), ...env },
  );
}

/**
 * What a run leaves, without what differs between two databases anyway (ids, run ids, times):
 * users, memberships, permissions, groups, versions and the change log, by login.
 */
async function state(t: TestDatabase) {
  // Links in raw name the simulator's port, which differs between the two sites.
  const q = async (sql: string) => JSON.parse(JSON.stringify(await t.query<Raw>(sql)).replace(/127\.0\.0\.1:\d+/g, 'cpq')) as Raw[];
  return {
    users: await q(`SELECT company_login, login, content_hash, raw, is_integration_user, deleted_at IS NOT NULL AS deleted
                    FROM cpq.users ORDER BY 1, 2`),
    groups: await q(`SELECT variable_name, label, type FROM cpq.groups ORDER BY 1`),
    memberships: await q(`SELECT u.company_login, u.login, g.group_variable_name FROM cpq.user_groups g JOIN cpq.users u ON u.id = g.user_id ORDER BY 1, 2, 3`),
    permissions: await q(`SELECT u.company_login, u.login, p.type, p.variable_name, p.name, p.has_access
                          FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id ORDER BY 1, 2, 3, 4`),
    versions: await q(`SELECT u.company_login, u.login, v.content_hash FROM cpq.user_versions v JOIN cpq.users u ON u.id = v.id ORDER BY 1, 2, 3`),
    membershipVersions: await q(
      `SELECT u.company_login, u.login, v.group_variable_name FROM cpq.user_group_versions v JOIN cpq.users u ON u.id = v.user_id ORDER BY 1, 2, 3`,
    ),
    // deleted_at in a diff is the run's own time.
    changes: await q(`SELECT dense_rank() OVER (ORDER BY c.run_id) AS run, c.change, c.company_login, c.login,
                             c.diff - 'deleted_at' AS diff, c.diff ? 'deleted_at' AS deleted_at_changed
                      FROM cpq.user_changes c ORDER BY run, c.company_login, c.login`),
    runs: await q(`SELECT status, users_seen, users_inserted, users_updated, users_unchanged, users_deleted, users_restored,
                          (SELECT jsonb_agg(s->>'deletion' ORDER BY s->>'stream') FROM jsonb_array_elements(streams) s) AS deletions
                   FROM cpq.sync_runs ORDER BY id`),
  };
}

/**
 * The same edits to a site, between runs: updates, memberships, permissions, a deletion, a
 * newcomer, then the deleted user back (a restore) and another one gone.
 */
async function scenario(h: Harness, step: number) {
  const sim: CpqSimulator = h.sim;
  const logins = sim.users('_host').map((u) => String(u.login));
  if (step === 1) {
    sim.updateUser('_host', logins[0]!, { lastName: 'Second' });
    sim.addGroup('_host', logins[1]!, { variableName: 'later', label: 'Later', type: 'Sales' });
    sim.setAccessPermission('_host', logins[2]!, { type: 'Commerce', variableName: 'quote', name: 'Quote', hasAccess: false });
    deleted = sim.user('_host', logins[3]!)!;
    sim.deleteUser('_host', logins[3]!);
    sim.addUser('_host', { login: 'newcomer', firstName: 'New' });
  }
  if (step === 2) {
    const { dateModified: _old, ...fields } = deleted!;
    sim.addUser('_host', { ...fields, lastName: 'Back' });
    sim.deleteUser('_host', logins[4]!);
    sim.removeGroup('_host', logins[1]!, 'later');
  }
}
let deleted: Raw | undefined;

describe('direct first loads and merge batches', () => {
  it('leave exactly what staging everything and a single merge at the end leave, run after run', async ({ startHarness }) => {
    const results = [];
    const settings = [
      { direct: false, batch: 0 },
      { direct: false, batch: 3 },
      { direct: true, batch: 0 },
      { direct: true, batch: 7 },
    ];
    for (const { direct, batch } of settings) {
      const h = await harness(startHarness, batch, {}, 3, direct);
      await h.sync();
      await scenario(h, 1);
      await h.sync({ full: true });
      await scenario(h, 2);
      await h.sync();
      await h.sync({ full: true });
      await expectReferencesResolve(h.t);
      await expectChangeLogConsistent(h.t);
      results.push(await state(h.t));
    }
    expect(results[0]!.runs).toEqual([
      // A first load has nothing to miss, whether it was loaded directly or merged.
      expect.objectContaining({ status: 'succeeded', users_inserted: 53, deletions: ['applied: none missing', 'applied: none missing'] }),
      expect.objectContaining({ status: 'succeeded', users_inserted: 1, users_updated: 3, users_deleted: 1 }),
      expect.objectContaining({ status: 'succeeded', users_restored: 1, users_updated: 1 }),
      expect.objectContaining({ status: 'succeeded', users_deleted: 1 }),
    ]);
    for (const [i, result] of results.entries()) expect(result, JSON.stringify(settings[i])).toEqual(results[0]);
  });

  it('a later copy of a user a batch already wrote replaces it: one insert, with the later values', async ({ startHarness }) => {
    const results = [];
    for (const [direct, batch] of [
      [false, 0],
      [false, 3],
      [true, 0],
      [true, 3],
    ] as const) {
      const h = await harness(startHarness, batch, { CPQ_COMPANIES: '_host' }, 0, direct);
      // Page 1 repeats the last 2 users of page 0, edited: other names, groups and permissions.
      const firstPage = repeatOnSecondPage(h.sim, 2, (u) => ({
        ...u,
        lastName: 'Later copy',
        partyNumber: 'LATER',
        dateModified: '2030-01-01T00:00:00.000Z',
        groups: { items: [{ variableName: 'late', label: 'Late', type: 'Sales' }] },
        accessPermissions: { items: [] },
      }));
      const run = await h.sync();
      expect(run).toMatchObject({ seen: 25, inserted: 25, updated: 0 });
      const repeated = firstPage.slice(-2).map((u) => String(u.login));
      const rows = await h.t.query<Raw>(`SELECT login, last_name FROM cpq.users WHERE login = ANY($1) ORDER BY login`, [repeated]);
      expect(rows.map((r) => r.last_name)).toEqual(['Later copy', 'Later copy']);
      const changes = await h.t.query<Raw>(
        `SELECT change, diff, party_number, date_modified = (SELECT date_modified FROM cpq.users u WHERE u.login = c.login) AS stored_date_modified
         FROM cpq.user_changes c WHERE login = ANY($1)`,
        [repeated],
      );
      expect(changes).toHaveLength(2);
      for (const c of changes) {
        expect(c.change).toBe('insert');
        // The change row names the user as stored: the later copy's keys.
        expect({ party_number: c.party_number, stored_date_modified: c.stored_date_modified }).toEqual({ party_number: 'LATER', stored_date_modified: true });
        expect(c.diff).toMatchObject({ last_name: { old: null, new: 'Later copy' }, groups: { added: ['late'], removed: [] } });
        expect(c.diff).not.toHaveProperty('accessPermissions');
      }
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.user_versions`)).toEqual([{ n: 0 }]);
      await expectReferencesResolve(h.t);
      await expectChangeLogConsistent(h.t);
      results.push(await state(h.t));
    }
    for (const result of results) expect(result).toEqual(results[0]);
  });

  it('users a batch inserted in the same run do not dilute the deletion guard', async ({ startHarness }) => {
    const h = await harness(startHarness, 3, { CPQ_COMPANIES: '_host' }, 0);
    await h.sync();
    const old = h.sim.users('_host').map((u) => String(u.login));
    for (const login of old.slice(5)) h.sim.deleteUser('_host', login); // 20 of 25 gone
    for (let i = 0; i < 200; i++) h.sim.addUser('_host', { login: `new-${String(i).padStart(3, '0')}` });
    const run = await h.sync({ full: true });
    expect(run).toMatchObject({ inserted: 200, deleted: 0 });
    expect(run.warnings.join('\n')).toMatch(/deletion aborted for companies\/_host: 20 of 25 known users/);
  });

  it('a first load that fails after pages were copied leaves the database empty', async ({ startHarness }) => {
    const h = await harness(startHarness, 0, { CPQ_COMPANIES: '_host' });
    const before = await snapshotEverything(h.t);
    scriptRequests(h.sim, (req) => {
      if (req.page === 3) req.reply('{"items": [', { status: 200 });
    });
    await h.syncError();
    expect(await h.t.query(`SELECT status FROM cpq.sync_runs`)).toEqual([{ status: 'failed' }]);
    expect(await snapshotEverything(h.t)).toEqual(before);
  });

  it('a run that fails after batches were merged leaves the database as it was', async ({ startHarness }) => {
    const h = await harness(startHarness, 3, { CPQ_COMPANIES: '_host' });
    await h.sync();
    h.sim.updateUser('_host', h.sim.users('_host')[0]!.login as string, { lastName: 'Edited' });
    for (let i = 0; i < 20; i++) h.sim.addUser('_host', { login: `new-${String(i).padStart(2, '0')}` });
    const before = await snapshotEverything(h.t);
    scriptRequests(h.sim, (req) => {
      if (req.page === 6) req.reply('{"items": [', { status: 200 });
    });
    await h.syncError({ full: true });
    const [failed] = await h.t.query<Raw>(`SELECT status, effective_at FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
    expect(failed).toMatchObject({ status: 'failed', effective_at: null });
    expect(await snapshotEverything(h.t)).toEqual(before);
  });
});
