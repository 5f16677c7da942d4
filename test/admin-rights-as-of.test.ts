import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { ADMIN_FLAG_COLUMNS } from '../src/normalize/user-fields.js';
import { cli } from './helpers/cli-process.js';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

/*
 * cpq.admin_rights_as_of(ts): the auditor's "who had admin rights then, and since when", told as
 * one story of five full runs. test/properties/auditor-queries.test.ts checks the same function,
 * through the README's query, against a model over generated sequences.
 */

const NO_RIGHTS = {
  isUserAdminPermEnabled: false,
  isAccessAdminPermEnabled: false,
  isApplicationAdminPermEnabled: false,
  isProxyPermEnabled: false,
  groups: { items: [] },
};

/** `login right [group] since run N`, with N the run whose effective_at the since equals (or the time itself). */
async function rightsAt(h: Harness, at: string, runs: string[], site?: string): Promise<string[]> {
  const rows = await h.t.query<{ login: string; admin_right: string; group_variable_name: string | null; since: string }>(
    `SELECT login, admin_right, group_variable_name, since::text AS since FROM ${site === undefined ? 'cpq.admin_rights_as_of($1::timestamptz)' : 'cpq.admin_rights_as_of($1::timestamptz, $2)'}`,
    site === undefined ? [at] : [at, site],
  );
  return rows
    .map((r) => {
      const n = runs.indexOf(r.since);
      return `${r.login} ${r.admin_right}${r.group_variable_name === null ? '' : ` ${r.group_variable_name}`} since ${n < 0 ? r.since : `run ${n + 1}`}`;
    })
    .sort();
}

/** A full run, which must succeed: its effective_at as Postgres prints it (what rightsAt's `since` is compared with). */
async function fullRunAt(h: Harness): Promise<string> {
  const result = await h.sync({ full: true });
  expect(result.status).toBe('succeeded');
  return (await h.t.query<{ e: string }>(`SELECT effective_at::text AS e FROM cpq.sync_runs WHERE id = $1`, [result.runId]))[0]!.e;
}

/**
 * A site of one company whose users hold no admin right, and the login of the first: `run()` makes a
 * full run and notes its effective_at in `runs` (rightsAt names a since by its place there). More
 * users keep a deletion of one under the deletion guard's fraction.
 */
async function oneLogin(
  startHarness: (options: { partnerCompanies: number; usersPerCompany: number; integrationUsers: number }) => Promise<Harness>,
  users: number,
) {
  const h = await startHarness({ partnerCompanies: 0, usersPerCompany: users, integrationUsers: 0 });
  const logins = h.sim.users('_host').map((u) => String(u.login));
  for (const other of logins) h.sim.updateUser('_host', other, NO_RIGHTS);
  const runs: string[] = [];
  return { h, login: logins[0]!, runs, run: async () => void runs.push(await fullRunAt(h)) };
}

describe('cpq.admin_rights_as_of', () => {
  it('each admin right of each user present then, since the start of the unbroken stretch in which they held it', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [alice, bob, carol, dave] = h.sim.users('_host').map((u) => String(u.login)) as [string, string, string, string];
    for (const login of [alice, bob, carol, dave]) h.sim.updateUser('_host', login, NO_RIGHTS);
    const runs: string[] = [];
    const run = async () => {
      runs.push(await fullRunAt(h));
      return runs.at(-1)!;
    };
    const group = { variableName: 'siteAdmins', label: 'Site admins', type: 'Administrator' };

    // Run 1: alice user admin, bob in an Administrator-type group, carol may log in as others.
    h.sim.updateUser('_host', alice, { isUserAdminPermEnabled: true });
    h.sim.addGroup('_host', bob, group);
    h.sim.updateUser('_host', carol, { isProxyPermEnabled: true });
    const e1 = await run();
    // Run 2: alice's name changes (her right goes on); the group is retyped: bob's right ends though he stays a member.
    h.sim.updateUser('_host', alice, { lastName: 'Renamed' });
    h.sim.addGroup('_host', bob, { ...group, type: 'User' });
    const e2 = await run();
    // Run 3: the group is Administrator-type again: bob's right starts again; alice's flag is taken away; dave joins the group.
    h.sim.addGroup('_host', bob, group);
    h.sim.addGroup('_host', dave, group);
    h.sim.updateUser('_host', alice, { isUserAdminPermEnabled: false });
    const e3 = await run();
    // Run 4: alice's flag is given back; carol is deleted; dave leaves the group.
    h.sim.updateUser('_host', alice, { isUserAdminPermEnabled: true });
    h.sim.removeGroup('_host', dave, group.variableName);
    const carolRecord = h.sim.user('_host', carol)!;
    h.sim.deleteUser('_host', carol);
    const e4 = await run();
    // Run 5: carol is back, with the same proxy permission; dave joins the group again.
    h.sim.addUser('_host', { ...carolRecord, dateModified: new Date().toISOString() }, { exact: true });
    h.sim.addGroup('_host', dave, group);
    await run();

    const before = await h.t.query<{ t: string }>(`SELECT ($1::timestamptz - interval '1 microsecond')::text AS t`, [e1]);
    expect(await rightsAt(h, before[0]!.t, runs), 'before the first run').toEqual([]);
    expect(await rightsAt(h, e1, runs)).toEqual([
      `${alice} is_user_admin_perm_enabled since run 1`,
      `${bob} administrator_group siteAdmins since run 1`,
      `${carol} is_proxy_perm_enabled since run 1`,
    ]);
    expect(await rightsAt(h, e2, runs), 'a name change does not start a right again; a group retyped ends it').toEqual([
      `${alice} is_user_admin_perm_enabled since run 1`,
      `${carol} is_proxy_perm_enabled since run 1`,
    ]);
    expect(await rightsAt(h, e3, runs), 'the group Administrator-type again: since then, not since bob joined').toEqual([
      `${bob} administrator_group siteAdmins since run 3`,
      `${carol} is_proxy_perm_enabled since run 1`,
      `${dave} administrator_group siteAdmins since run 3`,
    ]);
    expect(await rightsAt(h, e4, runs), 'a right given back starts again; a deleted user holds none').toEqual([
      `${alice} is_user_admin_perm_enabled since run 4`,
      `${bob} administrator_group siteAdmins since run 3`,
    ]);
    const now = new Date().toISOString();
    expect(await rightsAt(h, now, runs), 'a restored user starts again; so does a membership left and taken again').toEqual([
      `${alice} is_user_admin_perm_enabled since run 4`,
      `${bob} administrator_group siteAdmins since run 3`,
      `${carol} is_proxy_perm_enabled since run 5`,
      `${dave} administrator_group siteAdmins since run 5`,
    ]);

    // One site's rights, by the site argument as the other as-of functions take it.
    expect(await rightsAt(h, now, runs, 'default')).toEqual(await rightsAt(h, now, runs));
    expect(await rightsAt(h, now, runs, 'elsewhere')).toEqual([]);

    // Today, the same users and rights as cpq.administrators, one row per right.
    const view = await h.t.query<{ line: string }>(
      `SELECT login || ' ' || concat_ws(',', CASE WHEN is_access_admin THEN 'is_access_admin_perm_enabled' END,
              CASE WHEN is_application_admin THEN 'is_application_admin_perm_enabled' END, CASE WHEN is_proxy THEN 'is_proxy_perm_enabled' END,
              CASE WHEN is_user_admin THEN 'is_user_admin_perm_enabled' END,
              (SELECT string_agg('administrator_group:' || g, ',' ORDER BY g) FROM unnest(administrator_groups) g)) AS line
       FROM cpq.administrators`,
    );
    const fn = await h.t.query<{ line: string }>(
      `SELECT login || ' ' || string_agg(admin_right || coalesce(':' || group_variable_name, ''), ',' ORDER BY admin_right = 'administrator_group', admin_right, group_variable_name) AS line
       FROM cpq.admin_rights_as_of(now()) GROUP BY login`,
    );
    expect(fn.map((r) => r.line).sort()).toEqual(view.map((r) => r.line).sort());
  });

  it('counts every admin flag the admin_flag alert rule watches, as cpq.administrators does', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: ADMIN_FLAG_COLUMNS.length, integrationUsers: 0 });
    const logins = h.sim.users('_host').map((u) => String(u.login));
    for (const login of logins) h.sim.updateUser('_host', login, NO_RIGHTS);
    await h.sync({ full: true });
    expect(await h.t.query(`SELECT * FROM cpq.admin_rights_as_of(now())`)).toEqual([]);
    // One flag per user, set in the row itself: a flag a later release maps (a new is_*_perm_enabled
    // field) is set here without a simulator that knows it.
    for (const [i, column] of ADMIN_FLAG_COLUMNS.entries()) await h.t.query(`UPDATE cpq.users SET ${column} = true WHERE login = $1`, [logins[i]]);
    const rights = await h.t.query<{ login: string; admin_right: string }>(`SELECT login, admin_right FROM cpq.admin_rights_as_of(now()) ORDER BY login`);
    expect(rights).toEqual(ADMIN_FLAG_COLUMNS.map((column, i) => ({ login: logins[i], admin_right: column })).sort((a, b) => (a.login! < b.login! ? -1 : 1)));
    const view = await h.t.query<{ login: string }>(`SELECT login FROM cpq.administrators ORDER BY login`);
    expect(view.map((r) => r.login)).toEqual([...logins].sort());
  });

  it('a login CPQ gave to someone new between two runs (no run saw the deletion): the new holder’s right starts with them (review CU)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const [login, other] = h.sim.users('_host').map((u) => String(u.login)) as [string, string];
    for (const l of [login, other]) h.sim.updateUser('_host', l, NO_RIGHTS);
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true });
    h.sim.addGroup('_host', login, { variableName: 'siteAdmins', label: 'Site admins', type: 'Administrator' });
    const first = await h.sync({ full: true });
    expect(first.status).toBe('succeeded');
    await new Promise((r) => setTimeout(r, 20));
    h.sim.deleteUser('_host', login);
    h.sim.addUser('_host', { ...NO_RIGHTS, login, firstName: 'Someone', lastName: 'Else', isUserAdminPermEnabled: true });
    h.sim.addGroup('_host', login, { variableName: 'siteAdmins', label: 'Site admins', type: 'Administrator' });
    const second = await h.sync({ full: true });
    expect(second.status).toBe('succeeded');
    const [{ e1, e2 }] = (await h.t.query<{ e1: string; e2: string }>(
      `SELECT (SELECT effective_at::text FROM cpq.sync_runs WHERE id = $1) AS e1, (SELECT effective_at::text FROM cpq.sync_runs WHERE id = $2) AS e2`,
      [first.runId, second.runId],
    )) as [{ e1: string; e2: string }];
    // One user id, two people: the versions run on unbroken, under two CPQ ids and dateAdded values.
    const [ids] = await h.t.query<{ people: number; versions: number }>(
      `SELECT count(DISTINCT (cpq_id, date_added))::int AS people, count(*)::int AS versions FROM cpq.user_history WHERE login = $1`,
      [login],
    );
    expect(ids).toEqual({ people: 2, versions: 2 });
    expect(await rightsAt(h, e1, [e1, e2])).toEqual([`${login} administrator_group siteAdmins since run 1`, `${login} is_user_admin_perm_enabled since run 1`]);
    expect(await rightsAt(h, e2, [e1, e2])).toEqual([`${login} administrator_group siteAdmins since run 2`, `${login} is_user_admin_perm_enabled since run 2`]);
  });
});

describe('cpq.admin_rights_as_of across a version that says neither CPQ id nor dateAdded (review CY)', () => {
  for (const field of ['dateAdded', 'id'] as const) {
    it(`a login given to someone new after a record without ${field}: the new holder's right starts with them`, async ({ startHarness }) => {
      const { h, login, runs, run } = await oneLogin(startHarness, 2);
      const first = field === 'dateAdded' ? '2020-01-01T00:00:00.000Z' : 1001;
      const next = field === 'dateAdded' ? '2024-01-01T00:00:00.000Z' : 2002;
      // Run 1: the first holder, a user admin; run 2: their record once without the field; run 3: someone new, an admin too.
      h.sim.updateUser('_host', login, { ...NO_RIGHTS, isUserAdminPermEnabled: true, [field]: first });
      await run();
      h.sim.updateUser('_host', login, { [field]: null });
      await run();
      h.sim.updateUser('_host', login, { firstName: 'Someone', lastName: 'Else', [field]: next });
      await run();
      expect(await rightsAt(h, runs[1]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 1`]);
      expect(await rightsAt(h, runs[2]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 3`]);
    });
  }
});

/*
 * The holder's values only (migration 0037, review GM): a login's holder is told apart by the CPQ
 * id or dateAdded its current holder sent, as the merge tells it (src/db/sql/last-known-identity.ts),
 * not by a former holder's. Before 0037, each column's last value across the history counted.
 */
describe('cpq.admin_rights_as_of tells holders apart by the values the current holder sent (review GM)', () => {
  it('a new holder told apart by its CPQ id, sent without dateAdded, which later sends its own: one holder, since it came', async ({ startHarness }) => {
    const { h, login, runs, run } = await oneLogin(startHarness, 2);
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true, id: 1001, dateAdded: '2020-01-01T00:00:00.000Z' });
    await run();
    // Someone new: another id, no dateAdded (a sparse record), an admin too; then their own dateAdded.
    h.sim.updateUser('_host', login, { firstName: 'Someone', lastName: 'Else', id: 2002, dateAdded: null });
    await run();
    h.sim.updateUser('_host', login, { dateAdded: '2024-01-01T00:00:00.000Z' });
    await run();
    expect(await rightsAt(h, runs[0]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 1`]);
    expect(await rightsAt(h, runs[1]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 2`]);
    expect(await rightsAt(h, runs[2]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 2`]);
    // The merge read it so: one new holder, at run 2 (its warning), none at run 3.
    const warned = await h.t.query<{ warnings: string | null }>(
      `SELECT warnings::text AS warnings FROM cpq.sync_runs WHERE effective_at = ANY($1::timestamptz[]) ORDER BY id`,
      [runs],
    );
    expect(warned.map((w) => /held by another user/.test(w.warnings ?? ''))).toEqual([false, true, false]);
  });

  it('a deleted user brought back without dateAdded, which later sends one: one holder, since it came back', async ({ startHarness }) => {
    const { h, login, runs, run } = await oneLogin(startHarness, 5);
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true, dateAdded: '2020-01-01T00:00:00.000Z' });
    await run();
    const record = h.sim.user('_host', login)!;
    h.sim.deleteUser('_host', login);
    await run();
    // Back (perhaps someone else): the record without dateAdded, an admin; then a dateAdded of its own.
    h.sim.addUser('_host', { ...record, dateAdded: undefined, dateModified: new Date().toISOString() }, { exact: true });
    await run();
    h.sim.updateUser('_host', login, { dateAdded: '2024-01-01T00:00:00.000Z' });
    await run();
    expect(await rightsAt(h, runs[1]!, runs)).toEqual([]);
    expect(await rightsAt(h, runs[2]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 3`]);
    expect(await rightsAt(h, runs[3]!, runs)).toEqual([`${login} is_user_admin_perm_enabled since run 3`]);
  });
});

describe('cpq-sync snapshot --admin-rights', () => {
  it('writes every admin right held at --as-of, one row per user and right, since when, naming the run it reflects', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [alice, bob, carol] = h.sim.users('_host').map((u) => String(u.login)) as [string, string, string];
    for (const login of h.sim.users('_host').map((u) => String(u.login))) h.sim.updateUser('_host', login, NO_RIGHTS);
    h.sim.updateUser('_host', alice, { isUserAdminPermEnabled: true, isAccessAdminPermEnabled: true });
    h.sim.addGroup('_host', bob, { variableName: 'siteAdmins', label: 'Site admins', type: 'Administrator' });
    h.sim.addGroup('_host', bob, { variableName: 'sales', label: 'Sales', type: 'User' });
    const first = await h.sync({ full: true });
    h.sim.updateUser('_host', carol, { isProxyPermEnabled: true });
    const second = await h.sync({ full: true });
    // Each run's effective_at as the export writes times: ISO UTC, microseconds when it has any.
    const at = async (runId: string) =>
      (
        await h.t.query<{ iso: string }>(
          `SELECT to_char(effective_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.') || to_char(effective_at AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM effective_at)::bigint % 1000 = 0 THEN 'MS' ELSE 'US' END) || 'Z' AS iso
           FROM cpq.sync_runs WHERE id = $1`,
          [runId],
        )
      )[0]!.iso;
    const [e1, e2] = [await at(first.runId), await at(second.runId)];
    // Warnings only: standard error stays empty unless something is wrong.
    const env = { DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' };

    const now = await cli(['snapshot', '--admin-rights', '--format', 'jsonl'], env);
    expect({ code: now.code, stderr: now.stderr }).toEqual({ code: 0, stderr: '' });
    const rows = now.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const right = (login: string, admin_right: string, group_variable_name: string | null, since: string) => ({
      snapshot_run_id: second.runId,
      site: 'default',
      company_login: '_host',
      login,
      admin_right,
      group_variable_name,
      since,
    });
    expect(rows.map(({ snapshot_as_of: _a, snapshot_run_finished_at: _f, ...rest }) => rest)).toEqual(
      [
        right(alice, 'is_access_admin_perm_enabled', null, e1),
        right(alice, 'is_user_admin_perm_enabled', null, e1),
        right(bob, 'administrator_group', 'siteAdmins', e1),
        right(carol, 'is_proxy_perm_enabled', null, e2),
      ].sort((a, b) => (a.login < b.login ? -1 : a.login > b.login ? 1 : a.admin_right < b.admin_right ? -1 : 1)),
    );

    // As of the first run: the state it left, in CSV, the run it reflects named on every row.
    const dir = await mkdtemp(join(tmpdir(), 'admin-rights-'));
    const file = join(dir, 'admins.csv');
    const then = await cli(['snapshot', '--admin-rights', '--as-of', e1, '--out', file], env);
    expect(then.code).toBe(0);
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('snapshot_as_of,snapshot_run_id,snapshot_run_finished_at,site,company_login,login,admin_right,group_variable_name,since');
    expect(lines.slice(1).map((l) => l.split(',').slice(1, 2).concat(l.split(',').slice(5)))).toEqual(
      [
        [first.runId, alice, 'is_access_admin_perm_enabled', '', e1],
        [first.runId, alice, 'is_user_admin_perm_enabled', '', e1],
        [first.runId, bob, 'administrator_group', 'siteAdmins', e1],
      ].sort((a, b) => (a[1]! < b[1]! ? -1 : a[1]! > b[1]! ? 1 : a[2]! < b[2]! ? -1 : 1)),
    );
    const manifest = JSON.parse(await readFile(`${file}.manifest.json`, 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ kind: 'snapshot', of: 'admin rights', format: 'csv', rows: 3, asOf: e1.replace(/(\.\d{3})\d*Z$/, '$1Z') });

    // Raw records are the users' snapshot's: asked for with the rights, refused as a mistyped command line.
    const both = await cli(['snapshot', '--admin-rights', '--with-raw'], env);
    expect({ code: both.code, stdout: both.stdout }).toEqual({ code: 2, stdout: '' });
    expect(both.stderr).toMatch(/option '--admin-rights' cannot be used with option '--with-raw'/);
  });
});
