import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq, type AppConfig } from '../../src/config.js';
import type { CpqSimulator } from '../../src/simulator/index.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { expectInSync, rowVersions } from '../helpers/db-equals-simulator.js';
import type { Harness } from '../helpers/harness.js';
import { anyText, commandSettings, propertyTimeout, runs } from './arbitraries.js';
import {
  COMPANIES,
  INTEGRATION_PATH,
  LOOKBACK_MS,
  MoveClock,
  MoveUser,
  NO_TABLES,
  DeleteUser,
  PostIntegrationUser,
  RestoreUser,
  midpoint,
  pick,
  runFailingAt,
  shifted,
  startCaseHarness,
  tablesDiff,
  type Rec,
  type Tables,
} from './history-commands.js';

/*
 * Model-based test of run sequences. The simulator is the site; the model is what the database
 * must hold: for each (company, login) the record as last read, or deleted, the cursor of each
 * stream, and the state after every run. Random admin actions (create, update, delete and restore
 * users in any company; change only groups or permissions, with or without moving dateModified;
 * edit with dateModified moved backwards or removed; rename; add a login's case-only twin;
 * create and update integration users through POST and PATCH; move the clock) are interleaved
 * with full, incremental, zip and interrupted runs. After every run:
 *  - the tables equal the model (test/helpers/db-equals-simulator.ts, given the model as the site);
 *  - the run's change rows are exactly the model's diffs (insert/update/delete/restore per user),
 *    and replaying the whole change log gives the tables (expectChangeLogConsistent);
 *  - the as-of functions (users, memberships, permissions, group definitions; every row, deleted
 *    users' included) give each run's state at its effective_at and halfway to the next run, and
 *    the state of the run before it (none before the first) a microsecond before it.
 * An interrupted run changes no row.
 */

const POOL_GROUPS = ['adminAccessGroupsOnly', 'excludeMDBParts'];
/** One label and type per group name, as the site defines them (the first two from Oracle's sample, as the simulator's pool). */
const GROUP_DEFINITIONS: Record<string, { label: string; type: string }> = {
  adminAccessGroupsOnly: { label: 'Admin Access- Groups', type: 'Administrator' },
  excludeMDBParts: { label: 'No Longer Used 07', type: 'Sales' },
  grpA: { label: 'Group A', type: 'Sales' },
  grpB: { label: 'Group B', type: 'Partner' },
};

const key = (company: string, login: string) => `${company}\u0001${login}`;

interface ModelUser {
  company: string;
  login: string;
  record: Rec;
  deleted: boolean;
}

/** What the database must hold. */
interface Model {
  users: Map<string, ModelUser>;
  /** stream -> newest dateModified read (ISO), as sync_state.cursor. */
  cursors: Map<string, string>;
  /** Users deleted from the site, to restore. */
  gone: { company: string; record: Rec }[];
  clock: { now: number };
  /** Per successful run: effective_at and the present users' records then. */
  history: { runId: string; effectiveAt: string; present: Map<string, string>; tables: Tables }[];
  nextClient: number;
  /** The site's label and type of each group a command adds (RelabelGroup changes them). */
  groupDefs: Record<string, { label: string; type: string }>;
  /** cpq.groups: each group's label and type as last read (the last run that read a member). */
  storedGroups: Map<string, { label: string | null; type: string | null }>;
}

interface Real {
  h: Harness;
}

const byLogin = (a: Rec, b: Rec) => (String(a.login) < String(b.login) ? -1 : String(a.login) > String(b.login) ? 1 : 0);
/**
 * The same record as the sync's change detection reads it: keys in any order, groups and access
 * permissions as sets (its content digest sorts them, src/normalize/user-record.ts), so their
 * order alone is no change, and the stored row, raw included, is left as it was. (A user only
 * the integration feed read carries its company-feed permissions last.)
 */
const same = (a: Rec, b: Rec) => stable(asSets(a)) === stable(asSets(b));
function asSets(r: Rec): Rec {
  const out: Rec = Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  for (const relation of ['groups', 'accessPermissions']) {
    const items = (r[relation] as { items?: unknown } | undefined)?.items;
    if (Array.isArray(items)) out[relation] = { ...(r[relation] as Rec), items: items.map((i) => JSON.stringify(i)).sort() };
  }
  return out;
}
const stable = (r: Rec) => JSON.stringify(r);
/**
 * A record that differs from the stored one only in what no column holds: no user change, but the
 * row and a new version take the record as read (README "Restated records"). A group's label or
 * type (cpq.groups keeps those), or a relation sent empty where it was not sent (the integration
 * feed sends no access permissions): no member either way.
 */
const restated = (a: Rec, b: Rec) => same(withoutGroupLabels(withRelations(a)), withoutGroupLabels(withRelations(b)));
const withRelations = (r: Rec): Rec => ({ groups: { items: [] }, accessPermissions: { items: [] }, ...r });
function withoutGroupLabels(r: Rec): Rec {
  const items = (r.groups as { items?: unknown } | undefined)?.items;
  if (!Array.isArray(items)) return r;
  return { ...r, groups: { ...(r.groups as Rec), items: items.map((g) => ({ ...(g as Rec), label: null, type: null })) } };
}

function withFormat(config: AppConfig, format: 'json' | 'zip'): AppConfig {
  return withCpq(config, { exportFormat: format });
}

/** The model as the `sim` expectInSync compares with: its present users, as records. */
function modelAsSite(model: Model): CpqSimulator {
  return {
    companyLogins: () => [...COMPANIES],
    users: (company: string) =>
      [...model.users.values()]
        .filter((u) => u.company === company && !u.deleted)
        .map((u) => u.record)
        .sort(byLogin),
    fieldRenames: () => ({}),
  } as unknown as CpqSimulator;
}

/**
 * Applies a successful run to the model: each stream read in full (asked, zip, or no cursor yet)
 * brings every site user of it and deletes the others; an incremental read brings the users
 * whose dateModified is at or after cursor - lookback. Returns the expected change per user.
 */
function applyRun(model: Model, sim: CpqSimulator, full: boolean, format: 'json' | 'zip'): Map<string, string> {
  const read = new Map<string, { company: string; record: Rec }>();
  const fullCompanies = new Set<string>();
  const since = (stream: string) => {
    const cursor = model.cursors.get(stream);
    return full || cursor === undefined ? undefined : new Date(Date.parse(cursor) - LOOKBACK_MS).toISOString();
  };
  const newest = new Map<string, string>();
  const note = (stream: string, record: Rec) => {
    const d = record.dateModified as string | undefined;
    if (d && (!newest.has(stream) || d > newest.get(stream)!)) newest.set(stream, d);
  };
  for (const company of COMPANIES) {
    const stream = `companies/${company}`;
    const from = format === 'zip' ? undefined : since(stream);
    if (from === undefined) fullCompanies.add(company);
    for (const record of sim.users(company)) {
      if (from !== undefined && !(typeof record.dateModified === 'string' && record.dateModified >= from)) continue;
      read.set(key(company, String(record.login)), { company, record });
      note(stream, record);
    }
  }
  // The integration feed's window covers every company read's (README "One-feed fields";
  // src/sync/integration-users.ts, integrationSince): full when any company read is (a first
  // load, the zip export), else from the earliest cursor, its own or a company's.
  const companyFroms = COMPANIES.map((company) => (format === 'zip' ? undefined : since(`companies/${company}`)));
  const ownFrom = format === 'zip' ? undefined : since('integrationUsers');
  const integrationFrom =
    ownFrom === undefined || companyFroms.some((from) => from === undefined)
      ? undefined
      : [ownFrom, ...(companyFroms as string[])].reduce((a, b) => (b < a ? b : a));
  for (const record of sim.integrationUsers()) {
    note('integrationUsers', record);
    if (integrationFrom !== undefined && !(typeof record.dateModified === 'string' && record.dateModified >= integrationFrom)) continue;
    const k = key('_host', String(record.login));
    // The integration feed (v19) sends no access permissions: a user only it read this run keeps
    // those its company feed gave last (src/normalize/feed-fields.ts; the simulator's v19 shape),
    // and a user new to the database, or deleted there (nothing of it is kept), has none.
    const previous = model.users.get(k);
    if (read.has(k)) read.set(k, { company: '_host', record });
    else {
      const { accessPermissions: _sent, ...rest } = record;
      const kept = previous === undefined || previous.deleted ? undefined : previous.record.accessPermissions;
      read.set(k, { company: '_host', record: kept === undefined ? rest : { ...rest, accessPermissions: kept } });
    }
  }
  // A cursor never passes the run's start by CPQ's clock: the Date header of its answers, to the second.
  const siteDate = new Date(Math.floor(model.clock.now / 1000) * 1000).toISOString();
  for (const [stream, newestRead] of newest) {
    const d = newestRead > siteDate ? siteDate : newestRead;
    const stored = model.cursors.get(stream);
    // incremental reads note only what they read; the newest overall is what a full read saw
    if (stored === undefined || d > stored) model.cursors.set(stream, d);
  }

  const changes = new Map<string, string>();
  for (const { record } of read.values())
    for (const g of (record.groups as { items?: Rec[] } | undefined)?.items ?? [])
      model.storedGroups.set(String(g.variableName), { label: (g.label as string | undefined) ?? null, type: (g.type as string | undefined) ?? null });
  for (const [k, { company, record }] of read) {
    const before = model.users.get(k);
    const unchanged = before !== undefined && !before.deleted && same(before.record, record);
    const relabelled = !unchanged && before !== undefined && !before.deleted && restated(before.record, record);
    if (!before) changes.set(k, 'insert');
    else if (before.deleted) changes.set(k, 'restore');
    else if (!unchanged && !relabelled) changes.set(k, 'update');
    model.users.set(k, { company, login: String(record.login), record: unchanged ? before.record : record, deleted: false });
  }
  for (const [k, u] of model.users) {
    if (u.deleted || !fullCompanies.has(u.company) || read.has(k)) continue;
    if (sim.user(u.company, u.login)) continue;
    u.deleted = true;
    changes.set(k, 'delete');
  }
  return changes;
}

/**
 * Every row of the present users, their memberships and permissions, as JSON text: from the
 * current tables, or from the as-of functions at `asOf` (which promise the same columns).
 */
async function tablesState(h: Harness, asOf?: string): Promise<Tables> {
  const from = (table: string) => (asOf === undefined ? `cpq.${table}` : `cpq.${table}_as_of($1::timestamptz)`);
  const params = asOf === undefined ? [] : [asOf];
  // The table's own columns (the as-of functions add their validity columns), but last_synced_at:
  // every later read of an unchanged user moves it without a new version, and as-of gives the
  // version's start instead (reported; README's "exactly what the tables held" excepts it).
  const lines = async (table: string, sql: string) => {
    const columns = new Set(
      (await h.t.query<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = $1`, [table])).map(
        (r) => r.c,
      ),
    );
    columns.delete('last_synced_at');
    return (await h.t.query<{ line: Rec }>(sql, params))
      .map((r) =>
        JSON.stringify(
          Object.keys(r.line)
            .filter((k) => columns.has(k))
            .sort()
            .map((k) => [k, r.line[k]]),
        ),
      )
      .sort();
  };
  // Every row, deleted users' included: the tables hold them (deleted_at set), and so must as-of.
  return {
    users: await lines('users', `SELECT to_jsonb(u) AS line FROM ${from('users')} u`),
    memberships: await lines('user_groups', `SELECT to_jsonb(g) AS line FROM ${from('user_groups')} g`),
    permissions: await lines('user_access_permissions', `SELECT to_jsonb(p) AS line FROM ${from('user_access_permissions')} p`),
    groups: await lines('groups', `SELECT to_jsonb(g) AS line FROM ${from('groups')} g`),
  };
}

function presentState(model: Model): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, u] of model.users) if (!u.deleted) out.set(k, stable(u.record));
  return out;
}

async function checkRun(model: Model, real: Real, result: RunResult, expectedChanges: Map<string, string>): Promise<void> {
  const { h } = real;
  expect(result.status).toBe('succeeded');
  await expectInSync({ sim: modelAsSite(model), t: h.t, config: h.config }, { groupDefinitions: model.storedGroups });
  const rows = await h.t.query<{ company_login: string; login: string; change: string }>(
    `SELECT company_login, login, change FROM cpq.user_changes WHERE run_id = $1`,
    [result.runId],
  );
  const logged = Object.fromEntries(rows.map((r) => [key(r.company_login, r.login), r.change]));
  expect(logged, `change rows of run ${result.runId} against the model's diffs`).toEqual(Object.fromEntries(expectedChanges));

  const [run] = await h.t.query<{ effective_at: string }>(`SELECT effective_at::text FROM cpq.sync_runs WHERE id = $1`, [result.runId]);
  // The tables now equal the model (checked above): what the as-of functions must give for this run from now on.
  model.history.push({ runId: result.runId, effectiveAt: run!.effective_at, present: presentState(model), tables: await tablesState(h) });
  // The as-of state at every run so far equals the model's state after that run.
  for (const [i, past] of model.history.entries()) {
    // At the run's effective_at its state; a microsecond before, the state of the run before it (none
    // before the first); halfway to the next run, still its own.
    const before = model.history[i - 1];
    const next = model.history[i + 1];
    const instants: [string, Tables, string][] = [
      [past.effectiveAt, past.tables, `run ${past.runId}'s effective_at`],
      [await shifted(h, past.effectiveAt, -1n), before?.tables ?? NO_TABLES, `a microsecond before run ${past.runId}`],
    ];
    if (next) instants.push([await midpoint(h, past.effectiveAt, next.effectiveAt), past.tables, `between runs ${past.runId} and ${next.runId}`]);
    for (const [at, expected, what] of instants)
      expect(
        tablesDiff(expected, await tablesState(h, at)),
        `as of ${what} (${at}): rows the tables held then but as-of lacks, and rows as-of invents`,
      ).toEqual({});
    const asOf = await h.t.query<{ company_login: string; login: string; raw: string }>(
      `SELECT company_login, login, raw::text AS raw FROM cpq.users_as_of($1::timestamptz) WHERE deleted_at IS NULL`,
      [past.effectiveAt],
    );
    expect(asOf.map((r) => key(r.company_login, r.login)).sort(), `present users as of run ${past.runId}`).toEqual([...past.present.keys()].sort());
    const groups = await h.t.query<{ company_login: string; login: string; g: string }>(
      `SELECT u.company_login, u.login, ug.group_variable_name AS g
       FROM cpq.user_groups_as_of($1::timestamptz) ug JOIN cpq.users_as_of($1::timestamptz) u ON u.id = ug.user_id`,
      [past.effectiveAt],
    );
    const expectedGroups: string[] = [];
    for (const [k, text] of past.present) {
      const record = JSON.parse(text) as Rec;
      for (const g of (record.groups as { items?: Rec[] } | undefined)?.items ?? []) expectedGroups.push(`${k}\u0001${String(g.variableName)}`);
    }
    expect(groups.map((r) => `${key(r.company_login, r.login)}\u0001${r.g}`).sort(), `memberships as of run ${past.runId}`).toEqual(
      [...new Set(expectedGroups)].sort(),
    );
  }
}

// ------------------------------------------------------------------ commands

type Cmd = fc.AsyncCommand<Model, Real>;

// MoveClock, RestoreUser and MoveUser: ./history-commands.ts.

class CreateUser implements Cmd {
  constructor(readonly company: string) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    h.sim.addUser(this.company);
  }
  toString = () => `create user in ${this.company}`;
}

class UpdateUser implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly lastName: string,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (user)
      h.sim.updateUser(this.company, String(user.login), {
        lastName: this.lastName,
        status: { value: this.n % 2, displayValue: this.n % 2 ? 'Active' : 'Inactive' },
      });
  }
  toString = () => `update user #${this.n} of ${this.company}: lastName ${JSON.stringify(this.lastName)}`;
}

/**
 * An edit whose dateModified goes backwards (behind the cursor, so an incremental read misses it
 * until a full one) or disappears (no incremental read can find it): the model reads by the same
 * rule, so the tables must follow it whatever the site's clock says.
 */
class BackdatedUpdate implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly jobTitle: string,
    readonly backMs: number | 'removed',
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const dateModified = this.backMs === 'removed' ? undefined : new Date(model.clock.now - this.backMs).toISOString();
    h.sim.updateUser(this.company, String(user.login), { jobTitle: this.jobTitle, dateModified });
  }
  toString = () =>
    `update user #${this.n} of ${this.company}: jobTitle ${JSON.stringify(this.jobTitle)}, dateModified ${this.backMs === 'removed' ? 'removed' : `now - ${this.backMs / 1000}s`}`;
}

/** A new user whose login differs from an existing one's only in case (CPQ compares logins exactly: two users). */
class CreateCaseTwin implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const login = String(user.login);
    const twin = login === login.toUpperCase() ? login.toLowerCase() : login.toUpperCase();
    if (twin === login || h.sim.user(this.company, twin)) return;
    h.sim.addUser(this.company, { login: twin });
  }
  toString = () => `create the case twin of user #${this.n} of ${this.company}`;
}

/** A user's login changes (the old login is gone from the site, the new one is a user never seen). */
class RenameUser implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly suffix: string,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const login = `${String(user.login)}${this.suffix}`;
    if (h.sim.user(this.company, login)) return;
    h.sim.updateUser(this.company, String(user.login), { login });
  }
  toString = () => `rename user #${this.n} of ${this.company}: login + ${JSON.stringify(this.suffix)}`;
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
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const login = String(user.login);
    // Adding a group the user has only reorders its items in the simulator: not a change CPQ would make.
    const has = ((user.groups as { items?: Rec[] } | undefined)?.items ?? []).some((g) => g.variableName === this.group);
    if (this.add && has) return;
    if (this.add) h.sim.addGroup(this.company, login, { variableName: this.group, ...model.groupDefs[this.group]! }, { touch: this.touch });
    else h.sim.removeGroup(this.company, login, this.group, { touch: this.touch });
  }
  toString = () =>
    `${this.add ? 'add' : 'remove'} group ${this.group} ${this.add ? 'to' : 'from'} user #${this.n} of ${this.company}${this.touch ? '' : ' (dateModified kept)'}`;
}

class ChangePermission implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly hasAccess: boolean,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (user)
      h.sim.setAccessPermission(
        this.company,
        String(user.login),
        { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: this.hasAccess },
        { touch: this.touch },
      );
  }
  toString = () => `set permission laptops=${this.hasAccess} on user #${this.n} of ${this.company}${this.touch ? '' : ' (dateModified kept)'}`;
}

class PatchIntegrationUser implements Cmd {
  constructor(
    readonly n: number,
    readonly groups: string[] | undefined,
    readonly newClient: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const user = pick(h.sim.integrationUsers(), this.n);
    if (!user) return;
    const body: Rec = {};
    if (this.groups) body.groups = { items: this.groups.map((variableName) => ({ variableName })) };
    if (this.newClient) body.oauthClientId = `client${model.nextClient++}`;
    const response = await fetch(`${h.sim.baseUrl}${INTEGRATION_PATH}/${encodeURIComponent(String(user.partyNumber))}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
  }
  toString = () => `PATCH integration user #${this.n}: ${this.groups ? `groups ${this.groups.join(',')}` : ''}${this.newClient ? ' new OAuth client' : ''}`;
}

class Run implements Cmd {
  constructor(
    readonly full: boolean,
    readonly format: 'json' | 'zip',
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const result = await runSync({ pool: h.t.pool, db: h.t.db, config: withFormat(h.config, this.format), log: h.log }, { full: this.full });
    const changes = applyRun(model, h.sim, this.full, this.format);
    await checkRun(model, real, result, changes);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} ${this.format}`;
}

/** A run interrupted (its signal aborted) at its `at`-th request: no row changes; a run that ends first is an ordinary run. */
class InterruptedRun implements Cmd {
  constructor(readonly at: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const before = await rowVersions(h.t);
    const controller = new AbortController();
    let seen = 0;
    h.sim.onRequest = () => {
      if (++seen === this.at) controller.abort();
    };
    let result: RunResult | undefined;
    try {
      result = await runSync({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log }, { signal: controller.signal });
    } catch {
      result = undefined;
    } finally {
      h.sim.onRequest = undefined;
    }
    if (result && result.status === 'succeeded') {
      await checkRun(model, real, result, applyRun(model, h.sim, false, 'json'));
      return;
    }
    expect(await rowVersions(h.t), 'rows after an interrupted run').toEqual(before);
  }
  toString = () => `run interrupted at request ${this.at}`;
}

/** The run's CPQ_PAGE_SIZE and, within each page of a user collection, the site's own order of the items (a permutation). */
function shuffle(seed: number) {
  return <T>(items: T[]): T[] => {
    const out = items.slice();
    let x = seed >>> 0 || 1;
    for (let i = out.length - 1; i > 0; i--) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const j = x % (i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
}

/** A run while the site returns each page's users in another order, with another page size (CPQ orders pages by orderby, not the items within them). */
class ShuffledRun implements Cmd {
  constructor(
    readonly full: boolean,
    readonly pageSize: number,
    readonly seed: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    h.sim.reorderPage = shuffle(this.seed);
    let result: RunResult;
    try {
      result = await runSync(
        { pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'json', pageSize: this.pageSize }), log: h.log },
        { full: this.full },
      );
    } finally {
      h.sim.reorderPage = undefined;
    }
    const changes = applyRun(model, h.sim, this.full, 'json');
    await checkRun(model, real, result, changes);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} json, pages of ${this.pageSize} shuffled (seed ${this.seed})`;
}

/** One request (the `at`-th) answered 500 however often it is retried: the run fails, no row changes, the next run catches up. */
class FailingRun implements Cmd {
  constructor(
    readonly at: number,
    readonly full: boolean,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const before = await rowVersions(h.t);
    const { result, seen } = await runFailingAt(h, this.at, this.full);
    if (result && result.status === 'succeeded' && seen < this.at) {
      await checkRun(model, real, result, applyRun(model, h.sim, this.full, 'json'));
      return;
    }
    expect(result?.status, 'a run one of whose requests always failed').not.toBe('succeeded');
    expect(await rowVersions(h.t), 'rows after a failed run').toEqual(before);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} json failing at request ${this.at} (500)`;
}

/** A deleted user's login is given to a new user of the same company (someone else: a fresh record). */
class ReuseLogin implements Cmd {
  constructor(readonly n: number) {}
  check = (model: Readonly<Model>) => model.gone.length > 0;
  async run(model: Model, { h }: Real) {
    const i = this.n % model.gone.length;
    const { company, record } = model.gone[i]!;
    const login = String(record.login);
    if (h.sim.user(company, login)) return;
    model.gone.splice(i, 1);
    h.sim.addUser(company, { login });
  }
  toString = () => `give deleted user #${this.n}'s login to a new user`;
}

/** Content changes, dateModified does not (an incremental read cannot see it; a full one must). */
class SameDateUpdate implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly field: string,
    readonly text: string,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (user) h.sim.updateUser(this.company, String(user.login), { [this.field]: this.text }, { touch: false });
  }
  toString = () =>
    `update user #${this.n} of ${this.company}: ${this.field} ${JSON.stringify(this.text.length > 40 ? `${this.text.slice(0, 20)}…(${this.text.length})` : this.text)} (dateModified kept)`;
}

/** A permission removed (and, with `readd`, added back at once, perhaps with another name or access). */
class ChurnPermission implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly readd: { name: string; hasAccess: boolean } | undefined,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const items = ((user.accessPermissions as { items?: Rec[] } | undefined)?.items ?? []).slice();
    const victim = pick(items, this.n);
    if (!victim) return;
    const rest = items.filter((p) => p !== victim);
    const login = String(user.login);
    h.sim.updateUser(this.company, login, { accessPermissions: { items: rest } }, { touch: this.touch });
    if (this.readd)
      h.sim.setAccessPermission(
        this.company,
        login,
        { type: String(victim.type), variableName: String(victim.variableName), name: this.readd.name, hasAccess: this.readd.hasAccess },
        { touch: this.touch },
      );
  }
  toString = () =>
    `remove a permission of user #${this.n} of ${this.company}${this.readd ? ` and add it back (${JSON.stringify(this.readd.name)}, ${this.readd.hasAccess})` : ''}${this.touch ? '' : ' (dateModified kept)'}`;
}

/** A group's label and type change at the site: its definition and every member's item (each member modified now, or not: `touch`). */
class RelabelGroup implements Cmd {
  constructor(
    readonly group: string,
    readonly label: string,
    readonly type: string,
    readonly touch = true,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    h.sim.relabelGroup(this.group, this.label, this.type, { touch: this.touch });
    model.groupDefs[this.group] = { label: this.label, type: this.type };
    // users deleted meanwhile come back as the site holds them now
    for (const g of model.gone) {
      const items = (g.record.groups as { items?: Rec[] } | undefined)?.items;
      if (Array.isArray(items))
        g.record = { ...g.record, groups: { items: items.map((i) => (i.variableName === this.group ? { ...i, label: this.label, type: this.type } : i)) } };
    }
  }
  toString = () => `relabel group ${this.group}: ${JSON.stringify(this.label)} / ${this.type}${this.touch ? '' : " (members' dateModified kept)"}`;
}

const company = fc.constantFrom(...COMPANIES);
const groupName = fc.constantFrom(...POOL_GROUPS, 'grpA', 'grpB');
/** Field texts: the usual few, long ones, any Unicode (astral, combining), control characters (never NUL: Postgres text holds none). */
const fieldText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('Smith', 'Jones', 'Ñúñez', '', 'Engineer', 'Ärztin') },
  { weight: 2, arbitrary: anyText },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '\u0001\u001f\u007f\u0085',
      ' lead\ttab ',
      'line\r\nbreak',
      '\u2028\u2029',
      'e\u0301 \u{1F600}\u{1F3FD}',
      '\uFEFFbom',
      'a"b\\c/',
    ),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', 'Ω', '\u{1F600}', 'é'), fc.integer({ min: 200, max: 5000 })).map(([c, n]) => c.repeat(n)) },
);
const commands: fc.Arbitrary<Cmd>[] = [
  fc.integer({ min: 1, max: 3 * 3600 }).map((s) => new MoveClock(s * 1000)),
  fc.integer({ min: 1, max: 3 }).map(() => new MoveClock(LOOKBACK_MS / 2)),
  company.map((c) => new CreateUser(c)),
  fc.tuple(company, fc.nat(), fieldText).map(([c, n, name]) => new UpdateUser(c, n, name)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new DeleteUser(c, n)),
  fc
    .tuple(
      company,
      fc.nat(),
      fieldText,
      fc.oneof(
        fc.integer({ min: 1, max: 3 * 86_400 }).map((s) => s * 1000),
        fc.constant('removed' as const),
      ),
    )
    .map(([c, n, title, back]) => new BackdatedUpdate(c, n, title, back)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new CreateCaseTwin(c, n)),
  fc.tuple(company, fc.nat(), fc.constantFrom('-x', '.2', 'Ω', '\u{1F600}')).map(([c, n, suffix]) => new RenameUser(c, n, suffix)),
  fc.nat().map((n) => new RestoreUser(n)),
  fc.tuple(company, fc.nat(), groupName, fc.boolean(), fc.boolean()).map(([c, n, g, add, touch]) => new ChangeGroups(c, n, g, add, touch)),
  fc.tuple(company, fc.nat(), fc.boolean(), fc.boolean()).map(([c, n, access, touch]) => new ChangePermission(c, n, access, touch)),
  fc.uniqueArray(fc.constantFrom(...POOL_GROUPS), { maxLength: 2 }).map((g) => new PostIntegrationUser(g)),
  fc
    .tuple(fc.nat(), fc.option(fc.uniqueArray(fc.constantFrom(...POOL_GROUPS), { maxLength: 2 }), { nil: undefined }), fc.boolean())
    .map(([n, g, c]) => new PatchIntegrationUser(n, g, c)),
  fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'zip')).map(([full, format]) => new Run(full, format)),
  fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'zip')).map(([full, format]) => new Run(full, format)),
  fc.integer({ min: 1, max: 8 }).map((at) => new InterruptedRun(at)),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 4 }), fc.nat()).map(([full, size, seed]) => new ShuffledRun(full, size, seed)),
  fc.tuple(fc.integer({ min: 1, max: 10 }), fc.boolean()).map(([at, full]) => new FailingRun(at, full)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new MoveUser(c, n)),
  fc.nat().map((n) => new ReuseLogin(n)),
  fc.tuple(company, fc.nat(), fc.constantFrom('jobTitle', 'lastName', 'customNote'), fieldText).map(([c, n, f, t]) => new SameDateUpdate(c, n, f, t)),
  fc
    .tuple(company, fc.nat(), fc.option(fc.record({ name: fieldText, hasAccess: fc.boolean() }), { nil: undefined }), fc.boolean())
    .map(([c, n, readd, touch]) => new ChurnPermission(c, n, readd, touch)),
  fc
    .tuple(groupName, fieldText, fc.constantFrom('Administrator', 'Sales', 'Partner'), fc.boolean())
    .map(([g, label, type, touch]) => new RelabelGroup(g, label, type, touch)),
];

/** A case's site (a few users per company, one integration user, the clock the commands move) and its empty model. */
async function startCase(): Promise<{ h: Harness; model: Model }> {
  const { clock, h } = await startCaseHarness();
  const model: Model = {
    users: new Map(),
    cursors: new Map(),
    gone: [],
    clock,
    history: [],
    nextClient: 0,
    groupDefs: structuredClone(GROUP_DEFINITIONS),
    storedGroups: new Map(),
  };
  return { h, model };
}

/** Index of the site's integration user among the host company's users (as `pick` numbers them). */
const integrationIndex = (h: Harness) => h.sim.users('_host').findIndex((u) => typeof u.oauthClientId === 'string');

describe('run sequences against a model (property)', () => {
  it(
    'after every run the tables, the change log and every earlier as-of state equal the model',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, commandSettings(14)), async (cmds) => {
          const { h, model } = await startCase();
          try {
            await fc.asyncModelRun(() => ({ model, real: { h } }), [...cmds, new Run(false, 'json'), new Run(true, 'json')]);
          } finally {
            await h.close();
          }
        }),
        runs(12, propertyTimeout(240_000)),
      );
    },
    propertyTimeout(240_000),
  );

  /** Sequences a search found, kept as they were minimized. */
  const sequences: Record<string, (h: Harness) => Cmd[]> = {
    // the new holder took the former integration user's OAuth client, partyNumber and flag (product:
    // fixed, another dateAdded is another user; keepStoredIntegrationFields)
    "a deleted integration user's login given to a company user before a full read": (h) => [
      new Run(true, 'json'),
      new DeleteUser('_host', integrationIndex(h)),
      new ReuseLogin(0),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    // a user moved away keeps its old raw (and the old label in it) until a full read deletes it;
    // cpq.groups has the label the last read gave (model, not product: fixed by storedGroups)
    'a relabelled group and a stale row of a moved user': () => [
      new ShuffledRun(false, 1, 0),
      new RelabelGroup('adminAccessGroupsOnly', 'Smith', 'Administrator'),
      new MoveUser('_host', 0),
      new CreateUser('_host'),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    // the integration read's window is the earliest company cursor's, wider than its own: it read the
    // backdated edit (model, not product: fixed in applyRun)
    'an integration user edited backwards after a shuffled full read': (h) => [
      new PatchIntegrationUser(0, [], false),
      new ShuffledRun(true, 1, 0),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    'variant: plain full run': (h) => [
      new PatchIntegrationUser(0, [], false),
      new Run(true, 'json'),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    'variant: no patch': (h) => [
      new Run(true, 'json'),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    'variant: shuffled pages of 2': (h) => [
      new PatchIntegrationUser(0, [], false),
      new ShuffledRun(true, 2, 0),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
  };
  for (const [name, build] of Object.entries(sequences)) {
    it(`sequence: ${name}`, async () => {
      const { h, model } = await startCase();
      try {
        const cmds = build(h);
        await fc.asyncModelRun(() => ({ model, real: { h } }), cmds);
      } finally {
        await h.close();
      }
    }, 120_000);
  }
});
