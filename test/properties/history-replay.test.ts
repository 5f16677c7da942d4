import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import { exportSnapshot } from '../../src/history/export.js';
import { PERSONAL_COLUMNS } from '../../src/normalize/personal-fields.js';
import { CpqSimulator } from '../../src/simulator/index.js';
import { forgetUser } from '../../src/sync/forget.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { collectJsonLines } from '../helpers/export-output.js';
import type { Harness } from '../helpers/harness.js';
import { commandSettings, propertyTimeout, runs } from './arbitraries.js';
import {
  COMPANIES,
  CreateUser,
  MoveClock,
  MoveUser,
  NO_TABLES,
  PARTS,
  RelabelGroup,
  RestoreUser,
  clockMove,
  companyUsers,
  items,
  micros,
  midpoint,
  pick,
  runFailingAt,
  shifted,
  siteBConfig,
  startCaseHarness,
  tablesDiff,
  type Rec,
  type Tables,
  type TwoSiteReal,
} from './history-commands.js';

/*
 * History replayed against the tables themselves (review EA). No model of the sync: after every
 * successful run, the rows its site then holds (cpq.users, cpq.user_groups,
 * cpq.user_access_permissions, cpq.groups, every column but last_synced_at) are the reference of
 * "the state at that run's commit". Random edits at two sites of the same logins (admin flags
 * granted and revoked with and without dateModified moving, edits dated backwards, Administrator-
 * type groups joined, left, relabelled and retyped, users deleted, restored, re-created under the
 * same login as someone new, given a case twin, moved to the other company) are interleaved with
 * full, incremental, zip JSON and zip CSV runs (CSV keeps group labels and permissions as they
 * were), some repeated at once (the second must write nothing), runs failing at a random request,
 * and `forget` of deleted users. The site's clock moves forward, stands still (edits and runs at
 * one dateModified), steps back within SYNC_LOOKBACK or is reset back by hours (clockMove): the
 * history is by the database's clock (effective_at), so none of the checks below depends on it. Then:
 *  - at each run's effective_at and halfway to the next, each as-of function (two-argument form)
 *    gives that state's rows exactly; a microsecond before it, the state of the run before (none
 *    before the first);
 *  - cpq.admin_rights_as_of gives, at each of those instants, every right held in the state then
 *    in force (a flag of a present user; a membership of a present user in a group whose type is
 *    Administrator then), since the first state of the unbroken run of states that held it, and
 *    not before the state from which the same person holds the login (README: another CPQ id or
 *    dateAdded than the last one its holder sent starts again, as does a user brought back);
 *  - `snapshot --as-of` and `snapshot --admin-rights --as-of` (exportSnapshot), at each run's
 *    effective_at (a millisecond, as --as-of takes), a millisecond before and between runs, name
 *    per site the run in force and write its present users (flags, groups with their labels and
 *    types then, permissions) and the rights above, and are refused before any run;
 *  - a failed run changes no row of the site, its history, change log or cursors;
 *  - forget changes no row but the forgotten user's personal fields: the references are redacted
 *    alike (cpq.redact_personal_fields for raw) and must still be what as-of gives.
 */

const FLAGS = ['is_user_admin_perm_enabled', 'is_access_admin_perm_enabled', 'is_application_admin_perm_enabled', 'is_proxy_perm_enabled'] as const;
const FLAG_FIELDS: Record<(typeof FLAGS)[number], string> = {
  is_user_admin_perm_enabled: 'isUserAdminPermEnabled',
  is_access_admin_perm_enabled: 'isAccessAdminPermEnabled',
  is_application_admin_perm_enabled: 'isApplicationAdminPermEnabled',
  is_proxy_perm_enabled: 'isProxyPermEnabled',
};
const GROUP_DEFS: Record<string, { label: string; type: string }> = {
  adminAccessGroupsOnly: { label: 'Admin Access- Groups', type: 'Administrator' },
  excludeMDBParts: { label: 'No Longer Used 07', type: 'Sales' },
  grpA: { label: 'Group A', type: 'Sales' },
  grpB: { label: 'Group B', type: 'Administrator' },
};
const GROUPS = Object.keys(GROUP_DEFS);

interface RunState {
  runId: string;
  /** effective_at, Postgres' text */
  e: string;
  /** effective_at in microseconds since the epoch */
  us: bigint;
  /** the site's rows, as Postgres' jsonb text (keys in jsonb's order) */
  tables: Tables;
}
interface SiteState {
  name: string;
  runs: RunState[];
}
interface Model {
  clock: { now: number };
  a: SiteState;
  b: SiteState;
  /** Users deleted at site default, to give back. */
  gone: { company: string; record: Rec }[];
  groupDefs: Record<string, { label: string; type: string }>;
}
type Real = TwoSiteReal;

const FROM: Record<(typeof PARTS)[number], string> = {
  users: 'users',
  memberships: 'user_groups',
  permissions: 'user_access_permissions',
  groups: 'groups',
};

/** A site's rows now (`at` undefined) or as of `at` (the two-argument as-of functions). */
async function tablesOf(h: Harness, site: string, at?: string): Promise<Tables> {
  const out = { ...NO_TABLES };
  for (const part of PARTS) {
    const from = at === undefined ? `cpq.${FROM[part]} r WHERE r.site = $1` : `cpq.${FROM[part]}_as_of($2::timestamptz, $1) r`;
    const rows = await h.t.query<{ line: string }>(
      `SELECT (to_jsonb(r) - 'last_synced_at')::text AS line FROM ${from}`,
      at === undefined ? [site] : [site, at],
    );
    out[part] = rows.map((r) => r.line).sort();
  }
  return out;
}

/** Everything a failed run must leave as it was: the rows, the history, the change logs and the cursors. */
async function everything(h: Harness, site: string): Promise<string[]> {
  const lines: string[] = [];
  for (const table of [
    'users',
    'user_groups',
    'user_access_permissions',
    'groups',
    'user_versions',
    'user_group_versions',
    'user_access_permission_versions',
    'group_versions',
    'user_change_log',
    'group_changes',
    'sync_state',
  ]) {
    const rows = await h.t.query<{ line: string }>(`SELECT to_jsonb(r)::text AS line FROM cpq.${table} r WHERE r.site = $1`, [site]);
    lines.push(...rows.map((r) => `${table} ${r.line}`));
  }
  return lines.sort();
}

/**
 * What a run writes (everything() but the bookkeeping each run moves: last_synced_at, and a
 * stream's last run, last full read and update time): a run that finds nothing new changes none of it.
 */
async function written(h: Harness, site: string): Promise<string[]> {
  const bookkeeping = new Set(['last_synced_at', 'last_run_id', 'last_full_sync_at', 'updated_at']);
  return (await everything(h, site)).map((line) => {
    const at = line.indexOf(' ');
    const row = Object.entries(JSON.parse(line.slice(at + 1)) as Rec).filter(([key]) => !bookkeeping.has(key));
    return `${line.slice(0, at)} ${JSON.stringify(Object.fromEntries(row))}`;
  });
}

// ------------------------------------------------------------------ the auditor's answer, from the states

interface UserRow {
  id: string;
  company_login: string;
  login: string;
  deleted_at: string | null;
  cpq_id: string | null;
  date_added: string | null;
  [flag: string]: unknown;
}
interface Parsed {
  users: Map<string, UserRow>;
  memberships: Set<string>;
  types: Map<string, string | null>;
}
function parse(t: Tables): Parsed {
  const users = new Map<string, UserRow>();
  for (const line of t.users) {
    const r = JSON.parse(line) as Rec;
    const text = (v: unknown) => (v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v));
    users.set(String(r.id), { ...r, id: String(r.id), cpq_id: text(r.cpq_id), date_added: text(r.date_added) } as UserRow);
  }
  const memberships = new Set(
    t.memberships.map((line) => {
      const m = JSON.parse(line) as Rec;
      return `${String(m.user_id)}|${String(m.group_variable_name)}`;
    }),
  );
  const types = new Map(
    t.groups.map((line) => {
      const g = JSON.parse(line) as Rec;
      return [String(g.variable_name), (g.type as string | null) ?? null] as const;
    }),
  );
  return { users, memberships, types };
}

/**
 * The index of the state from which user `id` at state `k` is held by the same person, by the
 * merge's rule (README: another CPQ id or dateAdded than the last one its holder sent starts again;
 * so do the user's first state and one that brings it back from deleted, knowing its own values only).
 */
function personStart(states: Parsed[], id: string, k: number): number {
  let start = -1;
  let known: { cpq: string | null; added: string | null } = { cpq: null, added: null };
  let wasDeleted = false;
  for (let j = 0; j <= k; j++) {
    const u = states[j]!.users.get(id);
    if (!u) continue;
    const differs = (now: string | null, before: string | null) => now !== null && before !== null && now !== before;
    if (start < 0 || (wasDeleted && u.deleted_at === null) || differs(u.cpq_id, known.cpq) || differs(u.date_added, known.added)) {
      start = j;
      known = { cpq: u.cpq_id, added: u.date_added };
    } else known = { cpq: u.cpq_id ?? known.cpq, added: u.date_added ?? known.added };
    wasDeleted = u.deleted_at !== null;
  }
  return start;
}

/** `company|login|right|group|since (µs)` of every right held in the state in force at `us`. */
function expectedRights(site: SiteState, us: bigint): string[] {
  let k = -1;
  site.runs.forEach((r, i) => {
    if (r.us <= us) k = i;
  });
  if (k < 0) return [];
  const states = site.runs.slice(0, k + 1).map((r) => parse(r.tables));
  const now = states[k]!;
  const present = (s: Parsed, id: string) => {
    const u = s.users.get(id);
    return u !== undefined && u.deleted_at === null ? u : undefined;
  };
  const out: string[] = [];
  for (const [id, u] of now.users) {
    if (u.deleted_at !== null) continue;
    const person = personStart(states, id, k);
    const since = (held: (s: Parsed) => boolean) => {
      let j = k;
      while (j > person && held(states[j - 1]!)) j--;
      return site.runs[j]!.us;
    };
    for (const flag of FLAGS) {
      if (u[flag] !== true) continue;
      out.push(`${u.company_login}|${u.login}|${flag}||${since((s) => present(s, id)?.[flag] === true)}`);
    }
    for (const m of now.memberships) {
      const [uid, g] = m.split('|') as [string, string];
      if (uid !== id || now.types.get(g) !== 'Administrator') continue;
      const held = (s: Parsed) => present(s, id) !== undefined && s.memberships.has(m) && s.types.get(g) === 'Administrator';
      out.push(`${u.company_login}|${u.login}|administrator_group|${g}|${since(held)}`);
    }
  }
  return out.sort();
}

async function actualRights(h: Harness, site: string, at: string): Promise<string[]> {
  const rows = await h.t.query<{ line: string }>(
    `SELECT a.company_login || '|' || a.login || '|' || a.admin_right || '|' || coalesce(a.group_variable_name, '') || '|'
            || (extract(epoch FROM a.since) * 1000000)::bigint::text AS line
     FROM cpq.admin_rights_as_of($1::timestamptz, $2) a`,
    [at, site],
  );
  return rows.map((r) => r.line).sort();
}

/** Every instant worth asking about, per site: each run's effective_at, a microsecond before it, halfway to the next, a day before the first. */
async function checkHistory(h: Harness, site: SiteState): Promise<void> {
  const asks: { at: string; expected: Tables; what: string }[] = [];
  for (const [i, run] of site.runs.entries()) {
    const next = site.runs[i + 1];
    asks.push({ at: run.e, expected: run.tables, what: `run ${run.runId}'s effective_at` });
    asks.push({ at: await shifted(h, run.e, -1n), expected: site.runs[i - 1]?.tables ?? NO_TABLES, what: `a microsecond before run ${run.runId}` });
    if (next) asks.push({ at: await midpoint(h, run.e, next.e), expected: run.tables, what: `between runs ${run.runId} and ${next.runId}` });
  }
  if (site.runs[0]) asks.push({ at: await shifted(h, site.runs[0].e, -86_400_000_000n), expected: NO_TABLES, what: 'a day before the first run' });
  const runList = site.runs.map((r) => `${r.runId}@${r.e}`).join(' ');
  for (const { at, expected, what } of asks) {
    expect(
      tablesDiff(expected, await tablesOf(h, site.name, at)),
      `site ${site.name}, as of ${what} (${at}; runs ${runList}): rows lacking, rows invented`,
    ).toEqual({});
    expect(await actualRights(h, site.name, at), `site ${site.name}, admin rights as of ${what} (${at}; runs ${runList})`).toEqual(
      expectedRights(site, await micros(h, at)),
    );
  }
}

/** The run in force at `us` (index), or -1. */
const inForce = (site: SiteState, us: bigint) => site.runs.reduce((k, r, i) => (r.us <= us ? i : k), -1);
const cp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** `site|run|company|login|flags|groups|permissions` of each user present in the state in force at `us`, as `snapshot` must write it. */
function expectedSnapshot(site: SiteState, us: bigint): string[] {
  const k = inForce(site, us);
  if (k < 0) return [];
  const t = site.runs[k]!.tables;
  const defs = new Map(t.groups.map((l) => JSON.parse(l) as Rec).map((g) => [String(g.variable_name), g]));
  const out: string[] = [];
  for (const u of t.users.map((l) => JSON.parse(l) as Rec)) {
    if (u.deleted_at !== null) continue;
    const groups = t.memberships
      .map((l) => JSON.parse(l) as Rec)
      .filter((m) => String(m.user_id) === String(u.id))
      .map((m) => String(m.group_variable_name))
      .sort(cp)
      .map((g) => ({ variableName: g, label: defs.get(g)?.label ?? null, type: defs.get(g)?.type ?? null }));
    const perms = t.permissions
      .map((l) => JSON.parse(l) as Rec)
      .filter((p) => String(p.user_id) === String(u.id))
      .map((p) => ({ type: p.type, variableName: p.variable_name, name: p.name, hasAccess: p.has_access }))
      .sort((a, b) => cp(String(a.type), String(b.type)) || cp(String(a.variableName), String(b.variableName)));
    const flags = FLAGS.map((f) => String(u[f]));
    out.push([site.name, site.runs[k]!.runId, u.company_login, u.login, ...flags, JSON.stringify(groups), JSON.stringify(perms)].join('|'));
  }
  return out.sort(cp);
}

/**
 * `snapshot --as-of` and `snapshot --admin-rights --as-of` (exportSnapshot), at a millisecond (what
 * --as-of takes): per site, the run in force then (snapshot_run_id), its present users with groups
 * (labels and types then) and permissions, and the admin rights admin_rights_as_of gives; refused
 * when no site had a run by then.
 */
async function checkSnapshots(h: Harness, sites: SiteState[], ms: bigint): Promise<void> {
  const asOf = new Date(Number(ms));
  const us = ms * 1000n;
  const what = `snapshot --as-of ${asOf.toISOString()} (runs ${sites.map((s) => `${s.name}: ${s.runs.map((r) => `${r.runId}@${r.e}`).join(' ')}`).join('; ')})`;
  if (sites.every((s) => inForce(s, us) < 0)) {
    await expect(
      collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out)),
      what,
    ).rejects.toThrow(/no successful sync run took effect at or before/);
    return;
  }
  const users = await collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out));
  const actual = users
    .map((r) =>
      [
        r.site,
        r.snapshot_run_id,
        r.company_login,
        r.login,
        ...FLAGS.map((f) => String(r[f])),
        JSON.stringify((r.groups as Rec[]).map((g) => ({ variableName: g.variableName, label: g.label, type: g.type }))),
        JSON.stringify((r.access_permissions as Rec[]).map((p) => ({ type: p.type, variableName: p.variableName, name: p.name, hasAccess: p.hasAccess }))),
      ].join('|'),
    )
    .sort(cp);
  expect(actual, what).toEqual(sites.flatMap((s) => expectedSnapshot(s, us)).sort(cp));
  const rights = await collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out, { adminRights: true }));
  const runOf = (site: string) => {
    const s = sites.find((x) => x.name === site)!;
    return s.runs[inForce(s, us)]!.runId;
  };
  for (const r of rights) expect(r.snapshot_run_id, `${what}: run of ${String(r.site)}`).toBe(runOf(String(r.site)));
  const since = async (iso: string) => (await micros(h, iso)).toString();
  const lines: string[] = [];
  for (const r of rights)
    lines.push(
      `${String(r.site)}|${String(r.company_login)}|${String(r.login)}|${String(r.admin_right)}|${r.group_variable_name === null ? '' : (r.group_variable_name as string)}|${await since(String(r.since))}`,
    );
  expect(lines.sort(cp), `${what}: admin rights`).toEqual(
    sites
      .filter((s) => inForce(s, us) >= 0)
      .flatMap((s) => expectedRights(s, us).map((l) => `${s.name}|${l}`))
      .sort(cp),
  );
}

async function recordRun(h: Harness, site: SiteState, result: RunResult): Promise<void> {
  expect(result.status).toBe('succeeded');
  const [run] = await h.t.query<{ e: string; us: string }>(
    `SELECT effective_at::text AS e, (extract(epoch FROM effective_at) * 1000000)::bigint::text AS us FROM cpq.sync_runs WHERE id = $1`,
    [result.runId],
  );
  site.runs.push({ runId: result.runId, e: run!.e, us: BigInt(run!.us), tables: await tablesOf(h, site.name) });
}

// ------------------------------------------------------------------ commands

type Cmd = fc.AsyncCommand<Model, Real>;
// MoveClock, CreateUser, RestoreUser, MoveUser and RelabelGroup: ./history-commands.ts.
/** An admin flag set; `touch` false: CPQ leaves dateModified as it was (an incremental read misses it). */
class SetFlag implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly flag: (typeof FLAGS)[number],
    readonly value: boolean,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (u) h.sim.updateUser(this.company, String(u.login), { [FLAG_FIELDS[this.flag]]: this.value }, { touch: this.touch });
  }
  toString = () => `set ${this.flag}=${this.value} on user #${this.n} of ${this.company}${this.touch ? '' : ' (dateModified kept)'}`;
}
/** An edit dated backwards (behind the cursor): an incremental read misses it until a full one. */
class BackdatedEdit implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly admin: boolean,
    readonly backMs: number,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (u)
      h.sim.updateUser(this.company, String(u.login), {
        isUserAdminPermEnabled: this.admin,
        dateModified: new Date(model.clock.now - this.backMs).toISOString(),
      });
  }
  toString = () => `user #${this.n} of ${this.company}: admin ${this.admin}, dateModified now - ${this.backMs / 1000}s`;
}
class ChangeGroups implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly group: string,
    readonly add: boolean,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (!u) return;
    const login = String(u.login);
    const has = items(u, 'groups').some((g) => g.variableName === this.group);
    if (this.add && !has) h.sim.addGroup(this.company, login, { variableName: this.group, ...model.groupDefs[this.group]! }, { touch: this.touch });
    if (!this.add && has) h.sim.removeGroup(this.company, login, this.group, { touch: this.touch });
  }
  toString = () =>
    `${this.add ? 'add' : 'remove'} group ${this.group} ${this.add ? 'to' : 'from'} user #${this.n} of ${this.company}${this.touch ? '' : ' (dateModified kept)'}`;
}
class SetPermission implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly access: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (u)
      h.sim.setAccessPermission(this.company, String(u.login), { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: this.access });
  }
  toString = () => `permission laptops = ${this.access} on user #${this.n} of ${this.company}`;
}
class DeleteUser implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (!u) return;
    h.sim.deleteUser(this.company, String(u.login));
    model.gone.push({ company: this.company, record: u });
  }
  toString = () => `delete user #${this.n} of ${this.company}`;
}
/** A user deleted in CPQ and a new one created under the same login (another dateAdded), with or without a run seeing the gap. */
class RecreateUser implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly admin: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (!u) return;
    const login = String(u.login);
    h.sim.deleteUser(this.company, login);
    const dateAdded = new Date(model.clock.now).toISOString();
    h.sim.addUser(this.company, { login, dateAdded, isUserAdminPermEnabled: this.admin });
  }
  toString = () => `re-create user #${this.n} of ${this.company} as someone new (admin ${this.admin})`;
}
/** A new user whose login differs from an existing one's only in case. */
class CaseTwin implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (!u) return;
    const login = String(u.login);
    const twin = login === login.toUpperCase() ? login.toLowerCase() : login.toUpperCase();
    if (twin === login || h.sim.user(this.company, twin)) return;
    h.sim.addUser(this.company, { login: twin, isUserAdminPermEnabled: true });
  }
  toString = () => `create the case twin of user #${this.n} of ${this.company}, an admin`;
}
/** `forget` of a user site default holds as deleted; the references are redacted as the database must be. */
class Forget implements Cmd {
  constructor(readonly n: number) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const deleted = await h.t.query<{ company_login: string; login: string }>(
      `SELECT company_login, login FROM cpq.users WHERE site = 'default' AND deleted_at IS NOT NULL ORDER BY id`,
    );
    const u = pick(deleted, this.n);
    if (!u) return;
    const before = await everything(h, 'default');
    const erased = await forgetUser(
      h.t.pool,
      { site: 'default', company: u.company_login, login: u.login, reason: 'property test', requestedBy: 'test' },
      h.log,
    );
    for (const run of model.a.runs) {
      run.tables = {
        ...run.tables,
        users: await Promise.all(
          run.tables.users.map(async (line) =>
            String((JSON.parse(line) as Rec).id) !== erased.userId
              ? line
              : (
                  await h.t.query<{ line: string }>(
                    `SELECT ($1::jsonb || (SELECT jsonb_object_agg(c, NULL::text) FROM unnest($2::text[]) c)
                              || jsonb_build_object('raw', cpq.redact_personal_fields($1::jsonb -> 'raw')))::text AS line`,
                    [line, PERSONAL_COLUMNS],
                  )
                )[0]!.line,
          ),
        ),
      };
      run.tables.users.sort();
    }
    // Nothing but the user's rows changed: every other row of the site is as it was.
    const others = (lines: string[]) => lines.filter((l) => !(l.startsWith('users ') || l.startsWith('user_versions ') || l.startsWith('user_change_log ')));
    expect(others(await everything(h, 'default')), `forget ${u.company_login}/${u.login}: rows of other tables`).toEqual(others(before));
  }
  toString = () => `forget deleted user #${this.n}`;
}
/**
 * A run; `again`: then the same run once more, the site and its clock as they were, which must
 * write nothing (README: a re-read user with the same content logs nothing; running the same sync
 * twice logs changes only the first time): no row, version, change or cursor but the bookkeeping
 * every run moves. Except after an incremental run that found the site's clock set back (README
 * SYNC_LOOKBACK): it missed the edits dated before its cursor and cleared the cursor, so the next
 * run is a full one that reads them; once that one ran, the same run again must write nothing.
 */
class Run implements Cmd {
  constructor(
    readonly full: boolean,
    readonly format: 'json' | 'zip-json' | 'zip-csv',
    readonly again = false,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const config = withCpq(h.config, { exportFormat: this.format === 'json' ? 'json' : 'zip' });
    h.sim.setZipExport(this.format === 'zip-csv' ? { entries: [{ format: 'csv' }] } : {});
    try {
      const first = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: this.full });
      await recordRun(h, model.a, first);
      if (!this.again) return;
      if (first.warnings.some((w) => w.includes("the cursor is cleared, so the stream's next read is a full one")))
        await recordRun(h, model.a, await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: this.full }));
      const before = await written(h, 'default');
      await recordRun(h, model.a, await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: this.full }));
      expect(await written(h, 'default'), `the same ${String(this)} again changed rows`).toEqual(before);
    } finally {
      h.sim.setZipExport({});
    }
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} ${this.format}${this.again ? ', twice' : ''}`;
}
/** A run CPQ fails at its `at`-th request (every later one too): it must change nothing. */
class FailingRun implements Cmd {
  constructor(
    readonly at: number,
    readonly full: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const before = await everything(h, 'default');
    const { result } = await runFailingAt(h, this.at, this.full);
    if (result?.status === 'succeeded') await recordRun(h, model.a, result);
    else expect(await everything(h, 'default'), `a run failing at request ${this.at} changed rows`).toEqual(before);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} failing at request ${this.at}`;
}
/** Site b (the same logins): a user's flag set or a group toggled, then a run of b. */
class SiteB implements Cmd {
  constructor(
    readonly n: number,
    readonly admin: boolean | undefined,
    readonly group: string | undefined,
    readonly full: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h, b }: Real) {
    const u = pick(companyUsers(b.sim, '_host'), this.n);
    if (u && this.admin !== undefined) b.sim.updateUser('_host', String(u.login), { isUserAdminPermEnabled: this.admin });
    if (u && this.group !== undefined) {
      if (items(u, 'groups').some((g) => g.variableName === this.group)) b.sim.removeGroup('_host', String(u.login), this.group);
      else b.sim.addGroup('_host', String(u.login), { variableName: this.group, ...GROUP_DEFS[this.group]! });
    }
    await recordRun(h, model.b, await runSync({ pool: h.t.pool, db: h.t.db, config: b.config, log: h.log }, { full: this.full }));
  }
  toString = () =>
    `site b: user #${this.n}${this.admin === undefined ? '' : ` admin ${this.admin}`}${this.group ? ` toggle group ${this.group}` : ''}, run ${this.full ? 'full' : 'incremental'}`;
}

const company = fc.constantFrom(...COMPANIES);
const group = fc.constantFrom(...GROUPS);
const flag = fc.constantFrom(...FLAGS);
const commands = [
  clockMove,
  fc.tuple(company, fc.boolean(), fc.uniqueArray(group, { maxLength: 2 })).map(([c, a, g]) => new CreateUser(c, a, g)),
  fc.tuple(company, fc.nat(), flag, fc.boolean(), fc.boolean()).map(([c, n, f, v, t]) => new SetFlag(c, n, f, v, t)),
  fc.tuple(company, fc.nat(), fc.boolean(), fc.integer({ min: 1, max: 86_400 })).map(([c, n, a, s]) => new BackdatedEdit(c, n, a, s * 1000)),
  fc.tuple(company, fc.nat(), group, fc.boolean(), fc.boolean()).map(([c, n, g, add, t]) => new ChangeGroups(c, n, g, add, t)),
  fc
    .tuple(group, fc.constantFrom('Admins', 'Sales team'), fc.constantFrom('Administrator', 'Sales'), fc.boolean())
    .map(([g, l, ty, t]) => new RelabelGroup(g, l, ty, t)),
  fc.tuple(company, fc.nat(), fc.boolean()).map(([c, n, a]) => new SetPermission(c, n, a)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new DeleteUser(c, n)),
  fc.nat().map((n) => new RestoreUser(n)),
  fc.tuple(company, fc.nat(), fc.boolean()).map(([c, n, a]) => new RecreateUser(c, n, a)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new CaseTwin(c, n)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new MoveUser(c, n)),
  fc.nat().map((n) => new Forget(n)),
  fc
    .tuple(fc.boolean(), fc.constantFrom<Run['format']>('json', 'json', 'zip-json', 'zip-csv'), fc.boolean())
    .map(([full, f, again]) => new Run(full, f, again)),
  fc.tuple(fc.boolean(), fc.constantFrom<Run['format']>('json', 'zip-csv'), fc.boolean()).map(([full, f, again]) => new Run(full, f, again)),
  fc.tuple(fc.integer({ min: 1, max: 10 }), fc.boolean()).map(([at, full]) => new FailingRun(at, full)),
  fc
    .tuple(fc.nat(), fc.option(fc.boolean(), { nil: undefined }), fc.option(group, { nil: undefined }), fc.boolean())
    .map(([n, a, g, full]) => new SiteB(n, a, g, full)),
];

async function runCase(cmds: Iterable<Cmd>): Promise<void> {
  const { clock, options, h } = await startCaseHarness();
  const simB = new CpqSimulator(options);
  try {
    const b = { sim: simB, config: siteBConfig(h, await simB.start()) };
    const model: Model = { clock, a: { name: 'default', runs: [] }, b: { name: 'b', runs: [] }, gone: [], groupDefs: structuredClone(GROUP_DEFS) };
    await fc.asyncModelRun(() => ({ model, real: { h, b } }), cmds);
    await checkHistory(h, model.a);
    await checkHistory(h, model.b);
    // effective_at is taken to the millisecond (a Date): each is an --as-of a snapshot takes.
    const all = [...model.a.runs, ...model.b.runs].map((r) => r.us / 1000n).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const instants = new Set<bigint>(all.length > 0 ? [all[0]! - 86_400_000n] : []);
    all.forEach((ms, i) => {
      instants.add(ms).add(ms - 1n);
      if (all[i + 1] !== undefined) instants.add((ms + all[i + 1]!) / 2n);
    });
    for (const ms of instants) await checkSnapshots(h, [model.a, model.b], ms);
  } finally {
    await simB.stop();
    await h.close();
  }
}

describe('history replayed against the tables each run left (property)', () => {
  it(
    'as of every run, between runs and just before each, every as-of function and admin_rights_as_of give the state that run committed',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, commandSettings(16)), (cmds) =>
          runCase([new Run(true, 'json'), ...cmds, new MoveClock(1000), new Run(false, 'json'), new Run(true, 'json')]),
        ),
        runs(10, propertyTimeout(150_000)),
      );
    },
    propertyTimeout(150_000),
  );

  /** The brief's cases, each as one sequence. */
  const sequences: Record<string, Cmd[]> = {
    'an admin re-created under the same login as someone new, unseen by a full read, then granted, revoked and granted again': [
      new Run(true, 'json'),
      new SetFlag('_host', 1, 'is_user_admin_perm_enabled', true, true),
      new Run(false, 'json'),
      new RecreateUser('_host', 1, true),
      new Run(false, 'json'),
      new SetFlag('_host', 1, 'is_user_admin_perm_enabled', false, true),
      new Run(false, 'zip-csv'),
      new SetFlag('_host', 1, 'is_user_admin_perm_enabled', true, false),
      new Run(false, 'json'),
      new Run(true, 'zip-json'),
    ],
    'an admin group member deleted, forgotten, given back by CPQ through a CSV read, the group retyped between': [
      new ChangeGroups('_host', 1, 'grpB', true, true),
      new Run(true, 'json'),
      new DeleteUser('_host', 1),
      new Run(true, 'json'),
      new Forget(0),
      new RelabelGroup('grpB', 'Admins', 'Sales', true),
      new RestoreUser(0),
      new Run(true, 'zip-csv'),
      new RelabelGroup('grpB', 'Admins', 'Administrator', true),
      new FailingRun(3, true),
      new Run(true, 'json'),
      new CaseTwin('_host', 1),
      new MoveUser('_host', 1),
      new Run(true, 'json'),
    ],
  };
  for (const [name, cmds] of Object.entries(sequences)) it(`sequence: ${name}`, () => runCase(cmds), 60_000);
});
