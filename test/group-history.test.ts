import { readdirSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { withCpq } from '../src/config.js';
import { migrate, MIGRATIONS_DIR } from '../src/db/migrate.js';
import { exportSnapshot } from '../src/history/export.js';
import { migrateBefore, type TestDatabase } from './helpers/database.js';
import { expectInSync, rowVersions } from './helpers/db-equals-simulator.js';
import { collectJsonLines } from './helpers/export-output.js';
import { runSync } from '../src/sync/run.js';
import { it } from './helpers/fixtures.js';
import { scriptRequests } from './helpers/scripted-pages.js';
import { until, type LogLine } from './helpers/cli-process.js';
import type { Harness } from './helpers/harness.js';

type Raw = Record<string, unknown>;
interface GroupDef {
  variableName: string;
  label: string;
  type: string;
}

const groupsOf = (user: Raw) => (user.groups as { items: GroupDef[] }).items;

/** Renames (or retypes) a group on every member in `company`, as CPQ shows a group edited by an admin: dateModified of the members stays. */
function redefine(h: Harness, company: string, variableName: string, change: Partial<Omit<GroupDef, 'variableName'>>): number {
  let members = 0;
  for (const user of h.sim.users(company)) {
    const group = groupsOf(user).find((g) => g.variableName === variableName);
    if (!group) continue;
    h.sim.addGroup(company, String(user.login), { ...group, ...change }, { touch: false });
    members++;
  }
  return members;
}

const effectiveAt = async (h: Harness, runId: string) =>
  (await h.t.query<{ at: Date }>(`SELECT effective_at AS at FROM cpq.sync_runs WHERE id = $1`, [runId]))[0]!.at;
const groupChanges = (h: Harness, runId: string) =>
  h.t.query<{ change: string; group_variable_name: string; diff: Raw }>(
    `SELECT change, group_variable_name, diff FROM cpq.group_changes WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
const userChanges = (h: Harness, runId: string) => h.t.query(`SELECT change, login, diff FROM cpq.user_changes WHERE run_id = $1`, [runId]);
const groupAsOf = async (h: Harness, at: Date, variableName: string) =>
  (await h.t.query<{ label: string; type: string }>(`SELECT label, type FROM cpq.groups_as_of($1) WHERE variable_name = $2`, [at, variableName]))[0];

async function snapshotGroups(h: Harness, asOf: Date): Promise<Map<string, GroupDef[]>> {
  const lines = await collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out));
  return new Map(lines.map((l) => [String(l.login), l.groups as GroupDef[]]));
}

/**
 * Replaying cpq.group_changes from nothing gives cpq.groups: each row finds the state its `old`
 * values describe and changes something, at most one row per group and run, only from succeeded
 * runs, and the versions end where the log says a definition changed.
 */
async function expectGroupLogReplays(db: TestDatabase): Promise<void> {
  const rows = await db.query<{ run_id: string; status: string; change: string; name: string; diff: Record<string, { old: unknown; new: unknown }> }>(
    `SELECT c.run_id::text, r.status, c.change, c.group_variable_name AS name, c.diff
     FROM cpq.group_changes c JOIN cpq.sync_runs r ON r.id = c.run_id ORDER BY c.id`,
  );
  const state = new Map<string, { label: unknown; type: unknown }>();
  const perRun = new Set<string>();
  for (const row of rows) {
    const where = `${row.change} of ${row.name} in run ${row.run_id}`;
    expect(row.status, where).toBe('succeeded');
    expect(perRun.has(`${row.run_id}/${row.name}`), `${where}: twice`).toBe(false);
    perRun.add(`${row.run_id}/${row.name}`);
    expect(state.has(row.name), `${where}: known before`).toBe(row.change === 'update');
    const group = state.get(row.name) ?? { label: null, type: null };
    if (row.change === 'update') expect(Object.keys(row.diff).length, `${where}: empty`).toBeGreaterThan(0);
    for (const [field, { old, new: value }] of Object.entries(row.diff)) {
      expect(['label', 'type'], where).toContain(field);
      expect(old, `${where}: old ${field}`).toEqual(group[field as 'label' | 'type']);
      expect(value, `${where}: ${field} did not change`).not.toEqual(old);
      group[field as 'label' | 'type'] = value;
    }
    state.set(row.name, group);
  }
  const groups = await db.query<{ variable_name: string; label: unknown; type: unknown }>(`SELECT variable_name, label, type FROM cpq.groups`);
  expect(Object.fromEntries(groups.map((g) => [g.variable_name, { label: g.label, type: g.type }]))).toEqual(Object.fromEntries(state));
  const [ended] = await db.query<{ versions: number; updates: number }>(
    `SELECT (SELECT count(*)::int FROM cpq.group_versions) AS versions, (SELECT count(*)::int FROM cpq.group_changes WHERE change = 'update') AS updates`,
  );
  expect(ended!.versions, 'one ended version per update').toBe(ended!.updates);
}

describe('group history', () => {
  it('versions a label change and a type change, logs each once (not once per member), and answers as-of with the definitions of the time', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0, groups: 6 });
    const first = await h.sync();
    const definitions = new Map(h.sim.users('_host').flatMap((u) => groupsOf(u).map((g) => [g.variableName, g] as const)));
    // The first run sees every group: one insert each, with its label and type.
    const inserts = await groupChanges(h, first.runId);
    expect(inserts.map((c) => c.group_variable_name).sort()).toEqual([...definitions.keys()].sort());
    for (const c of inserts) {
      const def = definitions.get(c.group_variable_name)!;
      expect(c).toEqual({
        change: 'insert',
        group_variable_name: def.variableName,
        diff: { label: { old: null, new: def.label }, type: { old: null, new: def.type } },
      });
    }

    const [renamed, retyped] = [...definitions.values()].sort((a, b) => a.variableName.localeCompare(b.variableName));
    // Each returns the group's members, whose records now carry the new definition.
    expect(redefine(h, '_host', renamed!.variableName, { label: 'Renamed Group' })).toBe(8);
    expect(redefine(h, '_host', retyped!.variableName, { type: 'Approver-Changed' })).toBe(6);
    const second = await h.sync({ full: true });

    expect(await groupChanges(h, second.runId)).toEqual([
      { change: 'update', group_variable_name: renamed!.variableName, diff: { label: { old: renamed!.label, new: 'Renamed Group' } } },
      { change: 'update', group_variable_name: retyped!.variableName, diff: { type: { old: retyped!.type, new: 'Approver-Changed' } } },
    ]);
    // The members' records changed only through the groups' definitions: no user changed.
    expect(await userChanges(h, second.runId)).toEqual([]);
    expect(second.updated).toBe(0);

    const [t1, t2] = [await effectiveAt(h, first.runId), await effectiveAt(h, second.runId)];
    expect(await groupAsOf(h, t1, renamed!.variableName)).toEqual({ label: renamed!.label, type: renamed!.type });
    expect(await groupAsOf(h, t1, retyped!.variableName)).toEqual({ label: retyped!.label, type: retyped!.type });
    expect(await groupAsOf(h, t2, renamed!.variableName)).toEqual({ label: 'Renamed Group', type: renamed!.type });
    expect(await groupAsOf(h, t2, retyped!.variableName)).toEqual({ label: retyped!.label, type: 'Approver-Changed' });
    expect(await groupAsOf(h, new Date(t1.getTime() - 1), renamed!.variableName)).toBeUndefined();
    const versions = await h.t.query(
      `SELECT variable_name, label, type, valid_from, valid_to, ended_by_run_id::text AS ended_by FROM cpq.group_versions ORDER BY variable_name`,
    );
    expect(versions).toEqual([
      { variable_name: renamed!.variableName, label: renamed!.label, type: renamed!.type, valid_from: t1, valid_to: t2, ended_by: second.runId },
      { variable_name: retyped!.variableName, label: retyped!.label, type: retyped!.type, valid_from: t1, valid_to: t2, ended_by: second.runId },
    ]);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.group_history WHERE variable_name = $1`, [renamed!.variableName])).toEqual([{ n: 2 }]);

    // A member's raw is the record as read now, and as it was read before in its earlier version.
    const member = h.sim.users('_host').find((u) => groupsOf(u).some((g) => g.variableName === renamed!.variableName))!;
    const labelIn = async (sql: string, at?: Date) =>
      (await h.t.query<{ label: string }>(sql, at ? [member.login, renamed!.variableName, at] : [member.login, renamed!.variableName]))[0]?.label;
    const rawLabel = (from: string) =>
      `SELECT g->>'label' AS label FROM ${from} u CROSS JOIN jsonb_array_elements(u.raw->'groups'->'items') g
       WHERE u.login = $1 AND g->>'variableName' = $2`;
    expect(await labelIn(rawLabel('cpq.users'))).toBe('Renamed Group');
    expect(await labelIn(rawLabel('cpq.users_as_of($3)'), t1)).toBe(renamed!.label);

    // Snapshots show the definitions as they were.
    const before = (await snapshotGroups(h, t1)).get(String(member.login))!;
    expect(before.find((g) => g.variableName === renamed!.variableName)).toMatchObject({ label: renamed!.label, type: renamed!.type });
    const after = (await snapshotGroups(h, t2)).get(String(member.login))!;
    expect(after.find((g) => g.variableName === renamed!.variableName)).toMatchObject({ label: 'Renamed Group' });

    // The same site read again, incrementally and in full: nothing changes, nothing is logged.
    for (const options of [{}, { full: true }]) {
      const again = await h.sync(options);
      expect(await groupChanges(h, again.runId)).toEqual([]);
      expect(await userChanges(h, again.runId)).toEqual([]);
    }
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.group_versions`)).toEqual([{ n: 2 }]);
    await expectInSync(h);
    await expectGroupLogReplays(h.t);
  });

  it('logs a group first seen in a later run as an insert valid from that run', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0, groups: 4 });
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzLater', label: 'Later', type: 'Sales' });
    const run = await h.sync();
    expect(await groupChanges(h, run.runId)).toEqual([
      { change: 'insert', group_variable_name: 'zzLater', diff: { label: { old: null, new: 'Later' }, type: { old: null, new: 'Sales' } } },
    ]);
    const at = await effectiveAt(h, run.runId);
    expect(await groupAsOf(h, at, 'zzLater')).toEqual({ label: 'Later', type: 'Sales' });
    expect(await groupAsOf(h, new Date(at.getTime() - 1), 'zzLater')).toBeUndefined();
    // The membership diff is the user's; the definition is the group's.
    expect(await userChanges(h, run.runId)).toEqual([
      expect.objectContaining({ change: 'update', login: a, diff: expect.objectContaining({ groups: { added: ['zzLater'], removed: [] } }) as unknown }),
    ]);
  });

  it('a group defined two ways (a label per company) keeps the stored definition whichever company is read last: identical runs log nothing', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '_host,partner1', CPQ_CONCURRENCY: '2' });
    const [host] = h.sim.users('_host').map((u) => String(u.login));
    const [partner] = h.sim.users('partner1').map((u) => String(u.login));
    h.sim.addGroup('_host', host!, { variableName: 'shared', label: 'HostLabel', type: 'Sales' });
    h.sim.addGroup('partner1', partner!, { variableName: 'shared', label: 'PartnerLabel', type: 'Partner' });
    // Each run holds back one company's user pages until the other company's are all read (its
    // stream logged the page that brought it to its total), so that the other's copy is read
    // first, then the other way round. A delay instead (150 ms) left the order to the machine:
    // on a loaded CI the other company's page could be read after the held one.
    let slow = 'partner1';
    const other = () => (slow === '_host' ? 'partner1' : '_host');
    const pagesRead = (runId?: string) =>
      h.logLines.map((text) => JSON.parse(text) as LogLine).filter((line) => line.msg === 'page read' && (runId === undefined || line.runId === runId));
    let logsBefore = 0;
    const otherRead = () =>
      pagesRead()
        .slice(logsBefore)
        .some((line) => line.stream === `companies/${other()}` && line.received === line.totalResults);
    scriptRequests(h.sim, async (req) => {
      if (req.path.includes(`/companies/${slow}/users`)) await until(`companies/${other()} read`, otherRead);
    });
    // The order the run read the companies in, as its log tells: the gate above makes it.
    const readOrder = (runId: string) => pagesRead(runId).map((line) => line.stream);
    const sync = async (options: { full: boolean }) => {
      logsBefore = pagesRead().length;
      const run = await h.sync(options);
      expect(readOrder(run.runId), `run ${run.runId}`).toEqual([`companies/${other()}`, `companies/${slow}`]);
      return run;
    };
    const first = await sync({ full: true });
    const [stored] = await h.t.query<{ label: string }>(`SELECT label FROM cpq.groups WHERE variable_name = 'shared'`);
    expect(stored!.label).toBe('PartnerLabel');
    for (const [i, company] of ['_host', 'partner1', '_host'].entries()) {
      slow = company;
      for (const full of [true, false]) {
        h.sim.updateUser('_host', host!, { jobTitle: `title ${i} ${full}` }); // every run has a member of each company to read
        h.sim.updateUser('partner1', partner!, { jobTitle: `title ${i} ${full}` });
        const run = await sync({ full });
        expect(await groupChanges(h, run.runId), `run ${run.runId} (${company} read last, ${full ? 'full' : 'incremental'})`).toEqual([]);
      }
    }
    expect(await h.t.query(`SELECT label, type FROM cpq.group_history WHERE variable_name = 'shared'`)).toEqual([{ label: 'PartnerLabel', type: 'Partner' }]);
    expect(first.status).toBe('succeeded');
  });

  it('a first load naming more groups than it holds at once (10,000) stages them as it goes: every group stored once, the copy read last winning', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '50' });
    const group = (variableName: string, label: string) => ({ variableName, label, type: 'Sales' });
    for (let u = 0; u < 220; u++) {
      const own = Array.from({ length: 50 }, (_, g) => group(`g${u}-${g}`, `L${u}-${g}`));
      // "shared" in the first user and the last: the last copy is read after the held groups were staged.
      const shared = u === 0 || u === 219 ? [group('shared', u === 0 ? 'first' : 'last')] : [];
      h.sim.addUser('_host', { login: `u${String(u).padStart(4, '0')}`, groups: { items: [...own, ...shared] } });
    }
    const run = await h.sync();
    expect(run.inserted).toBe(220);
    expect(
      await h.t.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE label = 'L' || substr(variable_name, 2))::int AS labelled FROM cpq.groups WHERE variable_name <> 'shared'`,
      ),
    ).toEqual([{ n: 11_000, labelled: 11_000 }]);
    expect(await h.t.query(`SELECT label FROM cpq.groups WHERE variable_name = 'shared'`)).toEqual([{ label: 'last' }]);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.group_changes WHERE run_id = $1`, [run.runId])).toEqual([{ n: 11_001 }]);
  });

  it('keeps the definitions a CSV export leaves out (no label or type) and logs nothing for groups', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0, groups: 4, zipExport: { entries: [{ format: 'csv' }] } });
    await h.sync();
    const before = await h.t.query(`SELECT variable_name, label, type, valid_from FROM cpq.groups ORDER BY 1`);
    expect(before.every((g) => g.label !== null && g.type !== null)).toBe(true);
    const zip = await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log });
    expect(await groupChanges(h, zip.runId)).toEqual([]);
    expect(await h.t.query(`SELECT variable_name, label, type, valid_from FROM cpq.groups ORDER BY 1`)).toEqual(before);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.group_versions`)).toEqual([{ n: 0 }]);
    await expectGroupLogReplays(h.t);
  });

  it('a label or type CPQ clears (null in JSON) is cleared, versioned and logged; a CSV export after it changes nothing', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0, groups: 4, zipExport: { entries: [{ format: 'csv' }] } });
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzCleared', label: 'Review label', type: 'Sales' });
    await h.sync({ full: true });
    // The simulator's groups always have a label; CPQ may send null.
    expect(redefine(h, '_host', 'zzCleared', { label: null as unknown as string })).toBe(1);
    const run = await h.sync({ full: true });
    expect(await groupChanges(h, run.runId)).toEqual([
      { change: 'update', group_variable_name: 'zzCleared', diff: { label: { old: 'Review label', new: null } } },
    ]);
    expect(await h.t.query(`SELECT label, type FROM cpq.groups WHERE variable_name = 'zzCleared'`)).toEqual([{ label: null, type: 'Sales' }]);
    const zip = await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log });
    expect(await groupChanges(h, zip.runId)).toEqual([]);
    await expectGroupLogReplays(h.t);
  });

  it('a JSON item naming only its group, beside items that describe theirs, clears neither label nor type, loaded directly or merged (review CV)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
    const at = '2025-01-01T00:00:00.000Z';
    const admins = { variableName: 'admins', label: 'Admins', type: 'Administrator' };
    const sales = { variableName: 'sales', label: 'Sales', type: 'Sales' };
    const user = (login: string, items: Raw[]) => h.sim.addUser('_host', { login, dateAdded: at, dateModified: at, groups: { items } }, { exact: true });
    // A first load (written directly): u1 describes admins; u2, read after it, names admins bare beside sales, described.
    user('u1', [admins]);
    user('u2', [sales, { variableName: 'admins' }]);
    const first = await h.sync({ full: true });
    expect(first.status).toBe('succeeded');
    const stored = [
      { variable_name: 'admins', label: 'Admins', type: 'Administrator' },
      { variable_name: 'sales', label: 'Sales', type: 'Sales' },
    ];
    expect(await h.t.query(`SELECT variable_name, label, type FROM cpq.groups ORDER BY 1`)).toEqual(stored);
    // A later read (staged, merged) in which no user describes admins: one names it alone, one beside sales.
    for (const login of ['u1', 'u2']) h.sim.deleteUser('_host', login);
    user('u1', [{ variableName: 'admins' }]);
    user('u2', [sales, { variableName: 'admins' }]);
    const second = await h.sync({ full: true });
    expect(second.status).toBe('succeeded');
    expect(await h.t.query(`SELECT variable_name, label, type FROM cpq.groups ORDER BY 1`)).toEqual(stored);
    expect(await groupChanges(h, second.runId)).toEqual([]);
    // Both are still members of an Administrator-type group, since the first run.
    expect(
      await h.t.query(`SELECT login, admin_right, group_variable_name, since = $1::timestamptz AS since_first FROM cpq.admin_rights_as_of(now()) ORDER BY 1`, [
        (await h.t.query<{ e: string }>(`SELECT effective_at::text AS e FROM cpq.sync_runs WHERE id = $1`, [first.runId]))[0]!.e,
      ]),
    ).toEqual([
      { login: 'u1', admin_right: 'administrator_group', group_variable_name: 'admins', since_first: true },
      { login: 'u2', admin_right: 'administrator_group', group_variable_name: 'admins', since_first: true },
    ]);
    await expectGroupLogReplays(h.t);
  });

  it('a CSV zip site: a group an integration user joins between its two reads keeps its label and type (review CV)', async ({ startHarness }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 1, groups: 3, zipExport: { entries: [{ format: 'csv' }] } },
      { CPQ_EXPORT_FORMAT: 'zip' },
    );
    const integration = String(h.sim.integrationUsers()[0]!.login);
    const [member] = h.sim.users('_host').filter((u) => u.login !== integration);
    const raced = { variableName: 'raced', label: 'Raced admins', type: 'Administrator' };
    // Labelled by the integration feed (JSON) while the integration user is a member; still stored once it has left.
    h.sim.addGroup('_host', String(member!.login), raced);
    h.sim.addGroup('_host', integration, raced);
    await h.sync({ full: true });
    h.sim.removeGroup('_host', integration, raced.variableName);
    await h.sync({ full: true });
    const stored = () => h.t.query(`SELECT label, type FROM cpq.groups WHERE variable_name = 'raced'`);
    expect(await stored()).toEqual([{ label: 'Raced admins', type: 'Administrator' }]);
    // It joins again after the integration feed was read: the company's CSV record (the later one)
    // names the group, which the integration record has no label for, beside groups it labels.
    let joined = false;
    scriptRequests(h.sim, (req) => {
      if (req.path === '/cpq/rest/v16/companies/_host/users' && !joined) {
        joined = true;
        h.sim.addGroup('_host', integration, raced);
      }
    });
    const run = await h.sync({ full: true });
    expect(joined).toBe(true);
    expect(await stored()).toEqual([{ label: 'Raced admins', type: 'Administrator' }]);
    expect(await groupChanges(h, run.runId)).toEqual([]);
  });

  it('a CSV zip site whose integration users bring the labels (JSON): their label wins over the CSV copies, renamed and cleared, batched, merged or loaded directly', async ({
    startHarness,
  }) => {
    for (const [batch, direct] of [
      ['3', 'false'],
      ['1000', 'false'],
      ['1000', 'true'],
    ] as const) {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 1, groups: 3, zipExport: { entries: [{ format: 'csv' }] } },
        { CPQ_EXPORT_FORMAT: 'zip', SYNC_MERGE_BATCH_USERS: batch, SYNC_DIRECT_FIRST_LOAD: direct },
      );
      const integration = h.sim.integrationUsers()[0]!;
      const g = (integration.groups as { items: GroupDef[] }).items[0]!;
      const label = async () =>
        (await h.t.query<{ label: string | null }>(`SELECT label FROM cpq.groups WHERE variable_name = $1`, [g.variableName]))[0]!.label;
      await h.sync({ full: true });
      expect(await label(), `batch ${batch}, direct ${direct}`).toBe(g.label);
      h.sim.addGroup('_host', String(integration.login), { ...g, label: 'Renamed' });
      await h.sync({ full: true });
      expect(await label()).toBe('Renamed');
      h.sim.addGroup('_host', String(integration.login), { ...g, label: null as unknown as string });
      await h.sync({ full: true });
      expect(await label()).toBeNull();
    }
  });

  it('a group a CSV export named first (no label) takes the label JSON gives it later: a CSV copy never stands for the stored definition', async ({
    startHarness,
  }) => {
    for (const batch of ['3', '1000']) {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 8, integrationUsers: 1, groups: 3, zipExport: { entries: [{ format: 'csv' }] } },
        { CPQ_EXPORT_FORMAT: 'zip', SYNC_MERGE_BATCH_USERS: batch },
      );
      const integration = h.sim.integrationUsers()[0]!;
      const [member] = h.sim.users('_host').filter((u) => u.login !== integration.login);
      h.sim.addGroup('_host', String(member!.login), { variableName: 'csvOnly', label: 'Never sent by CSV', type: 'Sales' });
      await h.sync({ full: true });
      const stored = () => h.t.query(`SELECT label, type FROM cpq.groups WHERE variable_name = 'csvOnly'`);
      expect(await stored(), `batch ${batch}`).toEqual([{ label: null, type: null }]);
      h.sim.addGroup('_host', String(integration.login), { variableName: 'csvOnly', label: 'Described', type: 'Sales' });
      const run = await h.sync({ full: true });
      expect(await stored(), `batch ${batch}`).toEqual([{ label: 'Described', type: 'Sales' }]);
      expect((await groupChanges(h, run.runId)).map((c) => [c.change, c.group_variable_name])).toEqual([['update', 'csvOnly']]);
    }
  });

  it('a company loaded first (directly or staged) whose users define a group two ways keeps the stored definition if one of them says it', async ({
    startHarness,
  }) => {
    for (const direct of ['true', 'false']) {
      const h = await startHarness(
        { partnerCompanies: 2, usersPerCompany: 3, integrationUsers: 0 },
        { CPQ_COMPANIES: '_host', SYNC_DIRECT_FIRST_LOAD: direct },
      );
      const group = { variableName: 'twoWays', label: 'A', type: 'Sales' };
      h.sim.addGroup('_host', String(h.sim.users('_host')[0]!.login), group);
      await h.sync({ full: true });
      // partner2 is new to the database: its first user says A, the one read after it B.
      const [first, second] = h.sim
        .users('partner2')
        .map((u) => String(u.login))
        .sort();
      h.sim.addGroup('partner2', first!, group);
      h.sim.addGroup('partner2', second!, { ...group, label: 'B' });
      // partner2 alone: the host's member, which says A too, is not read again, so only partner2's copies decide.
      const config = withCpq(h.config, { companies: ['partner2'] });
      const run = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log });
      expect(await h.t.query(`SELECT label FROM cpq.groups WHERE variable_name = 'twoWays'`), `direct ${direct}`).toEqual([{ label: 'A' }]);
      expect(
        (await groupChanges(h, run.runId)).filter((c) => c.group_variable_name === 'twoWays'),
        `direct ${direct}`,
      ).toEqual([]);
    }
  });

  it('a group listed twice in one user with different label and type keeps the same copy whichever order CPQ sends them in: no change rows or versions after the first run (review DC)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
    const at = '2025-01-01T00:00:00.000Z';
    const copies = [
      { variableName: 'sales', label: 'Sales', type: 'Sales' },
      { variableName: 'sales', label: 'Sales EMEA', type: 'Partner', region: 'EMEA' },
      { variableName: 'other', label: 'Other', type: 'Sales' },
    ];
    // CPQ gives an expanded list no order: each run sends the same copies, in one order or the other.
    const send = (items: Raw[]) => {
      h.sim.deleteUser('_host', 'u1');
      h.sim.addUser('_host', { login: 'u1', dateAdded: at, dateModified: at, groups: { items } }, { exact: true });
    };
    h.sim.addUser('_host', { login: 'u1', dateAdded: at, dateModified: at, groups: { items: copies } }, { exact: true });
    const first = await h.sync({ full: true });
    expect(first.status).toBe('succeeded');
    const stored = [
      { variable_name: 'other', label: 'Other', type: 'Sales' },
      { variable_name: 'sales', label: 'Sales EMEA', type: 'Partner' },
    ];
    expect(await h.t.query(`SELECT variable_name, label, type FROM cpq.groups ORDER BY 1`)).toEqual(stored);
    // The change logs, the versions and the memberships are not written again (users and groups rows are: when last seen).
    const logged = async () => {
      const { group_changes, group_versions, user_change_log, user_versions, user_groups, user_group_versions } = await rowVersions(h.t);
      const groups = await h.t.query(`SELECT variable_name, label, type, valid_from FROM cpq.groups ORDER BY 1`);
      return { group_changes, group_versions, user_change_log, user_versions, user_groups, user_group_versions, groups };
    };
    const before = await logged();
    for (const [i, items] of [[...copies].reverse(), copies, [copies[1]!, copies[2]!, copies[0]!], [...copies].reverse()].entries()) {
      send(items);
      const run = await h.sync({ full: true });
      const where = `run ${i + 2}: ${items.map((g) => `${g.variableName}/${g.label}`).join(', ')}`;
      expect(await groupChanges(h, run.runId), where).toEqual([]);
      expect(await userChanges(h, run.runId), where).toEqual([]);
      expect(run.unchanged, where).toBe(1);
      expect(await logged(), where).toEqual(before);
    }
    expect(await h.t.query(`SELECT variable_name, label, type FROM cpq.groups ORDER BY 1`)).toEqual(stored);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.group_versions`)).toEqual([{ n: 0 }]);
    await expectGroupLogReplays(h.t);
  });

  it('writes nothing for groups in a failed run; the next run logs the change once', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 1, usersPerCompany: 6, integrationUsers: 0, groups: 4 },
      { CPQ_COMPANIES: '_host,partner1', CPQ_CONCURRENCY: '1' },
    );
    await h.sync();
    const group = groupsOf(h.sim.users('_host')[0]!)[0]!;
    redefine(h, '_host', group.variableName, { label: 'Renamed In A Failed Run' });
    redefine(h, 'partner1', group.variableName, { label: 'Renamed In A Failed Run' });
    const before = await rowVersions(h.t);
    // The partner company fails after the host company was read.
    h.sim.addFault({ match: { path: '/rest/v16/companies/partner1/users' }, times: Infinity, status: 503 });
    await h.syncError({ full: true });
    expect(await rowVersions(h.t)).toEqual(before);

    h.sim.clearFaults();
    const run = await h.sync({ full: true });
    expect(await groupChanges(h, run.runId)).toEqual([
      { change: 'update', group_variable_name: group.variableName, diff: { label: { old: group.label, new: 'Renamed In A Failed Run' } } },
    ]);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.group_changes WHERE change = 'update'`)).toEqual([{ n: 1 }]);
    await expectGroupLogReplays(h.t);
  });
});

describe('migration 0008 on a database of an earlier release', () => {
  it('keeps every group, valid from the run that first gave it a member (else the first run), with no change rows', async ({ createDatabase }) => {
    const t = await createDatabase();
    await migrateBefore(t, '0008');
    const [t1, t2, t3] = [new Date('2025-01-01T02:00:00Z'), new Date('2025-01-02T02:00:00Z'), new Date('2025-01-03T02:00:00Z')] as const;
    await t.query(
      `INSERT INTO cpq.sync_runs (status, mode, finished_at, effective_at) VALUES ('succeeded', 'full', $1::timestamptz, $1), ('succeeded', 'full', $2::timestamptz, $2), ('succeeded', 'full', $3::timestamptz, $3)`,
      [t1, t2, t3],
    );
    await t.query(`INSERT INTO cpq.users (company_login, login, raw, content_hash, valid_from) VALUES ('_host', 'ann', '{}', 'x', $1)`, [t1]);
    await t.query(
      `INSERT INTO cpq.groups (variable_name, label, type, first_seen_at) VALUES
         ('sinceFirst', 'Since First', 'Sales', $1), ('sinceSecond', 'Since Second', 'Sales', $1), ('ended', 'Ended', 'Sales', $1), ('noMembers', 'No Members', 'Sales', $1)`,
      [t3],
    );
    const [{ id }] = (await t.query<{ id: string }>(`SELECT id::text FROM cpq.users`)) as [{ id: string }];
    const [{ run }] = (await t.query<{ run: string }>(`SELECT max(id)::text AS run FROM cpq.sync_runs`)) as [{ run: string }];
    await t.query(`INSERT INTO cpq.user_groups (user_id, group_variable_name, added_at) VALUES ($1, 'sinceFirst', $2), ($1, 'sinceSecond', $3)`, [id, t1, t2]);
    await t.query(`INSERT INTO cpq.user_group_versions (user_id, group_variable_name, added_at, valid_to, ended_by_run_id) VALUES ($1, 'ended', $2, $3, $4)`, [
      id,
      t2,
      t3,
      run,
    ]);

    expect(await migrate(t.db)).toEqual(
      readdirSync(MIGRATIONS_DIR)
        .filter((f) => f >= '0008')
        .map((f) => f.replace(/\.sql$/, ''))
        .sort(),
    );

    expect(await t.query(`SELECT variable_name, label, valid_from FROM cpq.groups ORDER BY variable_name`)).toEqual([
      { variable_name: 'ended', label: 'Ended', valid_from: t2 },
      { variable_name: 'noMembers', label: 'No Members', valid_from: t1 },
      { variable_name: 'sinceFirst', label: 'Since First', valid_from: t1 },
      { variable_name: 'sinceSecond', label: 'Since Second', valid_from: t2 },
    ]);
    const asOf = async (at: Date) => (await t.query<{ v: string }>(`SELECT variable_name AS v FROM cpq.groups_as_of($1) ORDER BY 1`, [at])).map((r) => r.v);
    expect(await asOf(t1)).toEqual(['noMembers', 'sinceFirst']);
    expect(await asOf(t3)).toEqual(['ended', 'noMembers', 'sinceFirst', 'sinceSecond']);
    expect(await t.query(`SELECT count(*)::int AS n FROM cpq.group_changes`)).toEqual([{ n: 0 }]);
  });
});
