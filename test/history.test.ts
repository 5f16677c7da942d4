import { describe, expect, test, vi } from 'vitest';
import { instantArgument } from '../src/date-time.js';
import { exportChanges, exportSnapshot, parseSince, type ExportFormat } from '../src/history/export.js';
import { refusesDeletion } from '../src/sync/deletion-guard.js';
import { expectReferencesResolve } from './helpers/db-equals-simulator.js';
import { collect } from './helpers/export-output.js';
import { type Harness, it, snapshotTables } from './helpers/harness.js';

type Raw = Record<string, unknown>;

const logins = (h: Harness, company = '_host') => h.sim.users(company).map((u) => String(u.login));
const changes = (h: Harness, runId: string) =>
  h.t.query<{ change: string; login: string; diff: Raw }>(`SELECT change, login, diff FROM cpq.user_changes WHERE run_id = $1 ORDER BY id`, [runId]);

describe('change log', () => {
  it('logs an insert per new user with its fields and groups', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    const run = await h.sync();
    const rows = await changes(h, run.runId);
    expect(rows).toHaveLength(5);
    const first = h.sim.users('_host')[0]!;
    const row = rows.find((r) => r.login === first.login)!;
    expect(row.change).toBe('insert');
    expect(row.diff.last_name).toEqual({ old: null, new: first.lastName });
    expect((row.diff.groups as Raw).added).toEqual(((first.groups as { items: Raw[] }).items.map((g) => g.variableName) as string[]).sort());
  });

  it('logs an edit as an update with old and new values, and nothing for a no-op re-sync', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    await h.sync();
    const [login] = logins(h);
    const before = h.sim.user('_host', login!)!;
    h.sim.updateUser('_host', login!, { lastName: 'Newname', email: 'new@example.com' });
    const run = await h.sync();
    const rows = await changes(h, run.runId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ change: 'update', login });
    expect(rows[0]!.diff).toMatchObject({
      last_name: { old: before.lastName, new: 'Newname' },
      email: { old: before.email, new: 'new@example.com' },
    });
    expect(rows[0]!.diff.date_modified).toBeDefined();

    const again = await h.sync();
    expect(await changes(h, again.runId)).toEqual([]);
    const full = await h.sync({ full: true });
    expect(await changes(h, full.runId)).toEqual([]);
  });

  it('logs group and permission changes even when CPQ did not move dateModified', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    await h.sync();
    const [a, b, c] = logins(h);
    const oldGroup = (h.sim.user('_host', a!)!.groups as { items: Raw[] }).items[0]!.variableName as string;
    h.sim.removeGroup('_host', a!, oldGroup, { touch: false });
    h.sim.addGroup('_host', a!, { variableName: 'zzAuditors', label: 'Auditors', type: 'Administrator' }, { touch: false });
    const perm = (h.sim.user('_host', b!)!.accessPermissions as { items: Raw[] }).items[0]!;
    h.sim.setAccessPermission('_host', b!, { ...(perm as { type: string; variableName: string; name: string }), hasAccess: !perm.hasAccess }, { touch: false });
    // A permission renamed, its access the same (review CA: a rename alone was neither stored nor logged, and no test saw it).
    const renamed = (h.sim.user('_host', c!)!.accessPermissions as { items: Raw[] }).items[0]! as {
      type: string;
      variableName: string;
      name: string;
      hasAccess: boolean;
    };
    h.sim.setAccessPermission('_host', c!, { ...renamed, name: 'Renamed permission' }, { touch: false });
    const run = await h.sync({ full: true });
    const rows = await changes(h, run.runId);
    expect(rows.map((r) => [r.change, r.login])).toEqual(
      expect.arrayContaining([
        ['update', a],
        ['update', b],
      ]),
    );
    expect(rows.find((r) => r.login === a)!.diff).toEqual({ groups: { added: ['zzAuditors'], removed: [oldGroup] } });
    expect(rows.find((r) => r.login === b)!.diff).toEqual({
      accessPermissions: {
        added: [],
        removed: [],
        changed: [
          {
            type: perm.type,
            variableName: perm.variableName,
            old: { name: perm.name, hasAccess: perm.hasAccess },
            new: { name: perm.name, hasAccess: !perm.hasAccess },
          },
        ],
      },
    });
    expect(rows.find((r) => r.login === c)!.diff).toEqual({
      accessPermissions: {
        added: [],
        removed: [],
        changed: [
          {
            type: renamed.type,
            variableName: renamed.variableName,
            old: { name: renamed.name, hasAccess: renamed.hasAccess },
            new: { name: 'Renamed permission', hasAccess: renamed.hasAccess },
          },
        ],
      },
    });
    expect(
      await h.t.query(`SELECT p.name FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.login = $1 AND p.variable_name = $2`, [
        c,
        renamed.variableName,
      ]),
    ).toEqual([{ name: 'Renamed permission' }]);
    const flat = await h.t.query<Raw>(`SELECT login, field, added, removed FROM cpq.user_changes_flat WHERE run_id = $1 AND login = $2`, [run.runId, a]);
    expect(flat).toEqual([{ login: a, field: 'groups', added: ['zzAuditors'], removed: [oldGroup] }]);
    // The changed permission's history (review EQ: mutant MP22 left the old version unended, MP23
    // the current row valid from before the change, overlapping it): the old version ends where the
    // new one starts, at this run.
    const history = await h.t.query<Raw>(
      `SELECT v.has_access AS old_access, v.valid_to = p.valid_from AS adjoins, v.valid_to > v.valid_from AS ordered, p.has_access AS new_access
       FROM cpq.user_access_permissions p
       JOIN cpq.users u ON u.id = p.user_id
       JOIN cpq.user_access_permission_versions v ON v.user_id = p.user_id AND v.type = p.type AND v.variable_name = p.variable_name AND v.ended_by_run_id = $3
       WHERE u.login = $1 AND p.variable_name = $2`,
      [b, perm.variableName, run.runId],
    );
    expect(history).toEqual([{ old_access: perm.hasAccess, adjoins: true, ordered: true, new_access: !perm.hasAccess }]);
  });
  it('a permission whose name or access goes to null, or back, is a change (null compared as a value, not as unknown)', async ({ startHarness }) => {
    // Review EQ, mutant MP20: comparing the stored and read permission with <> instead of IS DISTINCT
    // FROM missed every change to or from null (NULL <> 'x' is unknown): the old name stayed stored.
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const [a] = logins(h);
    const perm = (h.sim.user('_host', a!)!.accessPermissions as { items: Raw[] }).items[0]! as {
      type: string;
      variableName: string;
      name: string;
      hasAccess: boolean;
    };
    const stored = async () =>
      h.t.query(
        `SELECT p.name, p.has_access FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.login = $1 AND p.variable_name = $2`,
        [a, perm.variableName],
      );
    const changedTo = async (name: string | null, hasAccess: boolean | null, old: { name: string | null; hasAccess: boolean | null }) => {
      h.sim.setAccessPermission('_host', a!, { ...perm, name, hasAccess } as never, { touch: false });
      const run = await h.sync({ full: true });
      expect(await changes(h, run.runId)).toEqual([
        {
          change: 'update',
          login: a,
          diff: {
            accessPermissions: { added: [], removed: [], changed: [{ type: perm.type, variableName: perm.variableName, old, new: { name, hasAccess } }] },
          },
        },
      ]);
      expect(await stored()).toEqual([{ name, has_access: hasAccess }]);
    };
    await changedTo(null, null, { name: perm.name, hasAccess: perm.hasAccess });
    await changedTo(perm.name, perm.hasAccess, { name: null, hasAccess: null });
  });
  it('a permission CPQ removed alone (nothing else changed, dateModified not moved) is removed, versioned and logged', async ({ startHarness }) => {
    // Review EQ, mutant MP5: a restatement check blind to stored permissions the read no longer
    // lists took such a user for restated: no change row, and the removed permission stayed stored.
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const [a] = logins(h);
    const items = (h.sim.user('_host', a!)!.accessPermissions as { items: Raw[] }).items;
    expect(items.length).toBeGreaterThan(1);
    const [gone, ...kept] = items as { type: string; variableName: string; name: string; hasAccess: boolean }[];
    h.sim.updateUser('_host', a!, { accessPermissions: { items: kept } }, { touch: false });
    const run = await h.sync({ full: true });
    const rows = await changes(h, run.runId);
    expect(rows).toEqual([
      {
        change: 'update',
        login: a,
        diff: {
          accessPermissions: {
            added: [],
            removed: [{ type: gone!.type, variableName: gone!.variableName, name: gone!.name, hasAccess: gone!.hasAccess }],
            changed: [],
          },
        },
      },
    ]);
    const stored = await h.t.query<{ type: string; variable_name: string }>(
      `SELECT p.type, p.variable_name FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.login = $1 ORDER BY 1, 2`,
      [a],
    );
    expect(stored.map((p) => `${p.type}/${p.variable_name}`)).toEqual(kept.map((p) => `${p.type}/${p.variableName}`).sort());
    const ended = await h.t.query(
      `SELECT v.type, v.variable_name FROM cpq.user_access_permission_versions v JOIN cpq.users u ON u.id = v.user_id WHERE u.login = $1 AND v.ended_by_run_id = $2`,
      [a, run.runId],
    );
    expect(ended).toEqual([{ type: gone!.type, variable_name: gone!.variableName }]);
  });
});

describe('deletions', () => {
  test('SYNC_MAX_DELETE_FRACTION: a read missing more than the fraction deletes nothing; exactly the fraction deletes (review CA: the boundary was not pinned)', () => {
    const guard = { maxDeleteFraction: 0.2, massDeleteMin: 0, allowMassDelete: false };
    expect(refusesDeletion(2, 10, guard)).toBe(false);
    expect(refusesDeletion(3, 10, guard)).toBe(true);
    expect(refusesDeletion(3, 10, { ...guard, allowMassDelete: true })).toBe(false);
    // SYNC_MASS_DELETE_MIN: up to that many missing users are deleted whatever their fraction.
    expect(refusesDeletion(3, 10, { ...guard, massDeleteMin: 3 })).toBe(false);
    expect(refusesDeletion(4, 10, { ...guard, massDeleteMin: 3 })).toBe(true);
  });

  it('a full sync marks users CPQ no longer returns as deleted, ends their memberships, and restores them when they return', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 });
    await h.sync();
    const [gone] = logins(h);
    const record = h.sim.user('_host', gone!)!;
    h.sim.deleteUser('_host', gone!);
    const incremental = await h.sync();
    expect(incremental.deleted).toBe(0); // an incremental read never deletes
    const run = await h.sync({ full: true });
    expect(run.deleted).toBe(1);
    const [row] = await h.t.query<Raw>(`SELECT id, deleted_at FROM cpq.users WHERE login = $1`, [gone]);
    expect(row!.deleted_at).not.toBeNull();
    expect(await h.t.query(`SELECT 1 FROM cpq.user_groups WHERE user_id = $1`, [row!.id])).toEqual([]);
    expect(await h.t.query(`SELECT 1 FROM cpq.user_access_permissions WHERE user_id = $1`, [row!.id])).toEqual([]);
    const [deletion] = await changes(h, run.runId);
    expect(deletion).toMatchObject({ change: 'delete', login: gone });
    expect((deletion!.diff.groups as Raw).removed).toEqual(expect.arrayContaining([expect.any(String)]));

    const { dateModified: _old, ...fields } = record; // re-created in CPQ: a new dateModified
    h.sim.addUser('_host', { ...fields, login: gone });
    const back = await h.sync();
    expect(back.restored).toBe(1);
    const [restored] = await changes(h, back.runId);
    expect(restored).toMatchObject({ change: 'restore', login: gone });
    // The restore's diff names the deletion it undoes (review EQ: mutant MP25 logged its old deleted_at as null).
    const deletedAt = (deletion!.diff.deleted_at as Raw).new;
    expect(deletedAt).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/));
    expect(restored!.diff.deleted_at).toEqual({ old: deletedAt, new: null });
    expect((await h.t.query<Raw>(`SELECT deleted_at FROM cpq.users WHERE login = $1`, [gone]))[0]!.deleted_at).toBeNull();
    await expectReferencesResolve(h.t);
  });

  it('a full read deletes a user CPQ no longer returns though another company holds a user of the same login, and keeps that one (review EQ)', async ({
    startHarness,
  }) => {
    // Mutant MP9: matching the users read by login alone (company left out) kept _host/shared
    // stored as present for as long as partner1 had a user "shared", though CPQ had deleted it.
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    const partner = h.sim.companyLogins().find((c) => c !== '_host')!;
    h.sim.addUser('_host', { login: 'shared', firstName: 'Host' });
    h.sim.addUser(partner, { login: 'shared', firstName: 'Partner' });
    await h.sync({ full: true });
    h.sim.deleteUser('_host', 'shared');
    const run = await h.sync({ full: true });
    expect(run.deleted).toBe(1);
    const rows = await h.t.query<{ company_login: string; deleted: boolean }>(
      `SELECT company_login, deleted_at IS NOT NULL AS deleted FROM cpq.users WHERE login = 'shared' ORDER BY company_login`,
    );
    expect(rows).toEqual([
      { company_login: '_host', deleted: true },
      { company_login: partner, deleted: false },
    ]);
    expect((await changes(h, run.runId)).map((c) => [c.change, c.login])).toEqual([['delete', 'shared']]);
    // Mutant MP16: the deletion left last_changed_run_id at the run that inserted the user.
    const [deleted] = await h.t.query<{ last_changed_run_id: string }>(
      `SELECT last_changed_run_id::text FROM cpq.users WHERE company_login = '_host' AND login = 'shared'`,
    );
    expect(deleted!.last_changed_run_id).toBe(run.runId);
  });

  it('a short read deletes nothing', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    await h.sync();
    let n = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++n === 2) {
        h.sim.addFault({ match: { path: req.path }, times: 1, status: 200, body: '{"items":[],"hasMore":false,"count":0}' });
      }
    };
    const run = await h.sync({ full: true });
    expect(run.deleted).toBe(0);
    expect(run.warnings.join('\n')).toMatch(/deletion skipped for companies\/_host: the read was short \(10 of 30\)/);
    expect(await h.t.query(`SELECT 1 FROM cpq.users WHERE deleted_at IS NOT NULL`)).toEqual([]);
  });

  it('refuses a mass deletion above SYNC_MAX_DELETE_FRACTION unless allowed', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 });
    await h.sync();
    for (const login of logins(h).slice(0, 3)) h.sim.deleteUser('_host', login);
    const refused = await h.sync({ full: true });
    expect(refused.deleted).toBe(0);
    expect(refused.warnings.join('\n')).toMatch(
      /deletion aborted for companies\/_host: 3 of 10 known users \(30%\) are missing from the read, more than SYNC_MASS_DELETE_MIN=\d+ and SYNC_MAX_DELETE_FRACTION=0\.2 allow; nothing was marked deleted/,
    );
    const [run] = await h.t.query<{ warnings: string[]; streams: Raw[] }>(`SELECT warnings, streams FROM cpq.sync_runs WHERE id = $1`, [refused.runId]);
    expect(run!.warnings.join('\n')).toMatch(/deletion aborted/);
    expect(run!.streams[0]!.deletion).toMatch(/^aborted/);
    const allowed = await h.sync({ full: true, allowMassDelete: true });
    expect(allowed.deleted).toBe(3);
  });

  it('lets a small company lose up to SYNC_MASS_DELETE_MIN users, whatever their fraction', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    await h.sync();
    const [first, second, third] = logins(h);
    // One of 4 (25%, above the fraction 0.2): not a mass deletion.
    h.sim.deleteUser('_host', first!);
    const one = await h.sync({ full: true });
    expect({ deleted: one.deleted, warnings: one.warnings }).toEqual({ deleted: 1, warnings: [] });
    // Two of the 3 left: above both.
    h.sim.deleteUser('_host', second!);
    h.sim.deleteUser('_host', third!);
    const two = await h.sync({ full: true });
    expect(two.deleted).toBe(0);
    expect(two.warnings.join('\n')).toMatch(/deletion aborted for companies\/_host: 2 of 3 known users/);
  });

  it('reads a stream in full again after SYNC_FULL_EVERY', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }, { SYNC_FULL_EVERY: '1h' });
    await h.sync();
    expect((await h.sync()).mode).toBe('incremental');
    await h.t.query(`UPDATE cpq.sync_state SET last_full_sync_at = now() - interval '2 hours'`);
    expect((await h.sync()).mode).toBe('full');
  });

  it("the 'sync run started' line says how the run reads: full for a first run and for --full, per stream otherwise (a first run said full: false, review JB)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const started = () => h.logLines.map((l) => JSON.parse(l) as Raw).filter((l) => l.msg === 'sync run started');
    const first = await h.sync();
    expect(first.mode).toBe('full');
    expect((await h.sync()).mode).toBe('incremental');
    expect((await h.sync({ full: true })).mode).toBe('full');
    // Each stream's mode is decided as it is read: a later run is not known to be full or incremental when it starts.
    expect(started().map(({ mode, full }) => ({ mode, full }))).toEqual([
      { mode: 'full', full: undefined },
      { mode: 'per stream', full: undefined },
      { mode: 'full', full: undefined },
    ]);
  });
});

describe('history and as-of', () => {
  it('a worker whose clock is an hour ahead dates its versions by the database clock: history follows commit order', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const login = String(h.sim.users('_host')[0]!.login);
    const real = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(real + 3_600_000); // worker A, an hour ahead
      await h.sync();
      vi.setSystemTime(real + 60_000); // worker B, a minute later in real time
      h.sim.updateUser('_host', login, { lastName: 'Changed' });
      await h.sync();
    } finally {
      vi.useRealTimers();
    }
    const runs = await h.t.query<{ effective_at: Date; ahead: boolean }>(
      `SELECT effective_at, effective_at > now() + interval '10 minutes' AS ahead FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY commit_seq`,
    );
    expect(runs.map((r) => r.ahead)).toEqual([false, false]);
    expect(runs[1]!.effective_at.getTime()).toBeGreaterThan(runs[0]!.effective_at.getTime());
    const [ended] = await h.t.query<{ ok: boolean }>(`SELECT valid_from < valid_to AS ok FROM cpq.user_versions WHERE login = $1`, [login]);
    expect(ended).toEqual({ ok: true });
  });

  it('as-of functions return exactly the state after the last successful run at or before the time', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 8, integrationUsers: 0 });
    const states: { at: Date; tables: Awaited<ReturnType<typeof snapshotTables>> }[] = [];
    const record = async () => {
      const [run] = await h.t.query<{ effective_at: Date }>(`SELECT effective_at FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1`);
      states.push({ at: run!.effective_at, tables: await snapshotTables(h.t) });
    };
    await h.sync();
    await record();
    const [a, b, c] = logins(h);
    h.sim.updateUser('_host', a!, { lastName: 'Second' });
    h.sim.addGroup('_host', b!, { variableName: 'later', label: 'Later', type: 'Sales' });
    h.sim.addUser('_host', { login: 'newcomer', firstName: 'New' });
    await h.sync();
    await record();
    h.sim.deleteUser('_host', c!);
    h.sim.updateUser('_host', a!, { lastName: 'Third' });
    h.sim.removeGroup('_host', b!, 'later');
    await h.sync({ full: true });
    await record();
    // A failed run changes no history.
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, times: Infinity, status: 500 });
    h.sim.updateUser('_host', a!, { lastName: 'Never' });
    await h.syncError();

    const users = (rows: Raw[]) => rows.map(({ last_synced_at: _l, ...rest }) => rest);
    for (const state of states) {
      const asOfUsers = await h.t.query(`SELECT * FROM cpq.users_as_of($1) ORDER BY company_login, login`, [state.at]);
      expect(users(asOfUsers)).toEqual(users(state.tables.users));
      const asOfGroups = await h.t.query(`SELECT * FROM cpq.user_groups_as_of($1) ORDER BY user_id, group_variable_name`, [state.at]);
      expect(asOfGroups).toEqual(state.tables.userGroups);
      const asOfPerms = await h.t.query(`SELECT * FROM cpq.user_access_permissions_as_of($1) ORDER BY user_id, type, variable_name`, [state.at]);
      expect(asOfPerms).toEqual(state.tables.permissions);
    }
    // Between runs: the earlier state. Before the first run: nothing.
    const between = new Date(states[1]!.at.getTime() - 1);
    expect(users(await h.t.query(`SELECT * FROM cpq.users_as_of($1) ORDER BY company_login, login`, [between]))).toEqual(users(states[0]!.tables.users));
    expect(await h.t.query(`SELECT * FROM cpq.users_as_of($1)`, [new Date(states[0]!.at.getTime() - 1)])).toEqual([]);
  });
});

describe('exports', () => {
  it('streams the change log since a run id or a time, as JSON lines and as CSV', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const first = await h.sync();
    const [login] = logins(h);
    h.sim.updateUser('_host', login!, { lastName: 'Quote "and", comma' });
    const second = await h.sync();

    const jsonl = await collect((out) => exportChanges(h.t.pool, parseSince(first.runId), 'jsonl', out));
    const lines = jsonl
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Raw);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ run_id: second.runId, change: 'update', login, diff: { last_name: { new: 'Quote "and", comma' } } });

    const csv = await collect((out) => exportChanges(h.t.pool, parseSince('1970-01-01T00:00:00Z'), 'csv', out));
    const csvLines = csv.trim().split('\n');
    expect(csvLines[0]).toBe('change_id,run_id,change,company_login,login,party_number,date_modified,detected_at,diff,commit_seq,site');
    expect(csvLines).toHaveLength(1 + 3 + 1);
    expect(csvLines.at(-1)).toContain('""Quote \\""and\\"", comma""');
    expect(() => parseSince('last tuesday')).toThrow(/--since must be a run id or an ISO date-time/);
    // A run id is a bigint: 20 digits would fail in the database, unnamed.
    expect(() => parseSince('99999999999999999999')).toThrow(/--since must be a run id or an ISO date-time/);
  });

  it('writes an export larger than one read of its cursor whole: every row on a line of its own, across reads too', async ({ startHarness }) => {
    // More rows than one of export.ts's cursor reads (2000 at a time): rows of two reads must not run together.
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2001, integrationUsers: 0 });
    await h.sync();
    const users = logins(h).sort();
    for (const format of ['jsonl', 'csv'] as ExportFormat[]) {
      const text = await collect((out) => exportSnapshot(h.t.pool, new Date(), format, out));
      expect(text.endsWith('\n'), format).toBe(true);
      const lines = text.slice(0, -1).split('\n');
      if (format === 'jsonl') expect(lines.map((l) => String((JSON.parse(l) as Raw).login)).sort()).toEqual(users);
      else expect(lines).toHaveLength(1 + users.length);
    }
  });

  it('--since and --as-of read a date-time without a zone as UTC, whatever the TZ of the machine; a day the calendar lacks is refused', () => {
    const tz = process.env.TZ;
    try {
      for (const zone of ['UTC', 'Asia/Tokyo', 'America/New_York']) {
        process.env.TZ = zone;
        expect(parseSince('2025-03-03T09:30:00')).toEqual({ time: new Date('2025-03-03T09:30:00.000Z') });
        expect(parseSince('2025-03-03 09:30')).toEqual({ time: new Date('2025-03-03T09:30:00.000Z') });
        expect(parseSince('2025-03-03')).toEqual({ time: new Date('2025-03-03T00:00:00.000Z') });
        expect(instantArgument('2025-03-03T09:30:00.250')).toEqual(new Date('2025-03-03T09:30:00.250Z'));
      }
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
    expect(parseSince('2025-03-03T09:30:00+0100')).toEqual({ time: new Date('2025-03-03T08:30:00.000Z') });
    expect(parseSince('2025-03-03T09:30:00-05')).toEqual({ time: new Date('2025-03-03T14:30:00.000Z') });
    expect(() => parseSince('2025-02-30T00:00:00Z')).toThrow(/--since must be a run id or an ISO date-time/);
    expect(instantArgument('2025-03-03T09:30:00 tomorrow')).toBeUndefined();
    // Finer than a millisecond is refused, not dropped (a time copied from SQL: review CJ); zeros past it are no finer.
    expect(() => parseSince('2026-12-01T23:44:04.573365Z')).toThrow(/to the millisecond at most, got "2026-12-01T23:44:04\.573365Z"/);
    expect(instantArgument('2025-03-03T09:30:00.1559999999Z')).toBeUndefined();
    expect(instantArgument('2025-03-03T09:30:00.250000+01:00')).toEqual(new Date('2025-03-03T08:30:00.250Z'));
  });

  it('writes a compliance snapshot that names the run it reflects', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [gone, proxy, other] = logins(h);
    h.sim.updateUser('_host', proxy!, { isProxyPermEnabled: true });
    h.sim.updateUser('_host', other!, { isProxyPermEnabled: false });
    const first = await h.sync();
    const [firstRun] = await h.t.query<{ effective_at: Date; finished_at: Date }>(`SELECT effective_at, finished_at FROM cpq.sync_runs WHERE id = $1`, [
      first.runId,
    ]);
    const goneUser = h.sim.user('_host', gone!)!;
    h.sim.deleteUser('_host', gone!);
    await h.sync({ full: true, allowMassDelete: true });

    for (const format of ['jsonl', 'csv'] as ExportFormat[]) {
      const text = await collect((out) => exportSnapshot(h.t.pool, firstRun!.finished_at, format, out));
      const lines = text.trim().split('\n');
      if (format === 'jsonl') {
        const rows = lines.map((l) => JSON.parse(l) as Raw);
        expect(rows).toHaveLength(4);
        expect(rows.map((r) => r.login)).toContain(gone);
        const user = h.sim.users('_host')[0]!;
        const row = rows.find((r) => r.login === user.login)!;
        expect(row).toMatchObject({ snapshot_run_id: first.runId, snapshot_as_of: firstRun!.finished_at.toISOString(), last_name: user.lastName ?? null });
        // Every admin flag of the admin_flag alert rule, the proxy permission too.
        for (const r of rows) {
          const sent = h.sim.user('_host', String(r.login)) ?? goneUser;
          expect(r).toMatchObject({
            is_user_admin_perm_enabled: sent.isUserAdminPermEnabled,
            is_access_admin_perm_enabled: sent.isAccessAdminPermEnabled,
            is_application_admin_perm_enabled: sent.isApplicationAdminPermEnabled,
            is_proxy_perm_enabled: sent.isProxyPermEnabled,
          });
        }
        expect((row.groups as Raw[]).map((g) => g.variableName)).toEqual(
          ((user.groups as { items: Raw[] }).items.map((g) => g.variableName) as string[]).sort(),
        );
      } else {
        expect(lines[0]).toMatch(/^snapshot_as_of,snapshot_run_id,snapshot_run_finished_at,company_login,login,.*,site,is_proxy_perm_enabled$/);
        // A column added since goes after every earlier one, raw too: each keeps its place.
        const withRaw = await collect((out) => exportSnapshot(h.t.pool, firstRun!.finished_at, format, out, { withRaw: true }));
        expect(withRaw.slice(0, withRaw.indexOf('\n'))).toBe(`${lines[0]!.replace(/,is_proxy_perm_enabled$/, '')},raw,is_proxy_perm_enabled`);
        expect(lines).toHaveLength(5);
        expect(lines[1]).toContain(`,${first.runId},`);
      }
    }
    const now = await collect((out) => exportSnapshot(h.t.pool, new Date(), 'jsonl', out));
    expect(now.trim().split('\n')).toHaveLength(3);
    await expect(collect((out) => exportSnapshot(h.t.pool, new Date('2000-01-01T00:00:00Z'), 'jsonl', out))).rejects.toThrow(
      /no successful sync run took effect at or before 2000-01-01/,
    );
  });
});
