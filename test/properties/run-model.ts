import fc from 'fast-check';
import { expect } from 'vitest';
import { withCpq, type AppConfig } from '../../src/config.js';
import { instantMicros } from '../../src/date-time.js';
import { storedText } from '../../src/normalize/user-record.js';
import type { CpqSimulator } from '../../src/simulator/index.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { expectInSync } from '../helpers/db-equals-simulator.js';
import type { Harness } from '../helpers/harness.js';
import { COMPANIES, LOOKBACK_MS, NO_TABLES, midpoint, pick, shifted, startCaseHarness, tablesDiff, type Rec, type Tables } from './history-commands.js';

/*
 * The reference model of run-sequences.test.ts and worker-clock.test.ts: what the database must
 * hold after each run of a case's site (history-commands.ts), how a run's reads change it, and the
 * check of a run against it (the tables, the run's change rows, every earlier as-of state).
 */

export const POOL_GROUPS = ['adminAccessGroupsOnly', 'excludeMDBParts'];
/** One label and type per group name, as the site defines them (the first two from Oracle's sample, as the simulator's pool). */
const GROUP_DEFINITIONS: Record<string, { label: string; type: string }> = {
  adminAccessGroupsOnly: { label: 'Admin Access- Groups', type: 'Administrator' },
  excludeMDBParts: { label: 'No Longer Used 07', type: 'Sales' },
  grpA: { label: 'Group A', type: 'Sales' },
  grpB: { label: 'Group B', type: 'Partner' },
};

export const key = (company: string, login: string) => `${company}\u0001${login}`;

interface ModelUser {
  company: string;
  login: string;
  record: Rec;
  deleted: boolean;
}

/** What the database must hold. */
export interface Model {
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

export interface Real {
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

export function withFormat(config: AppConfig, format: 'json' | 'zip'): AppConfig {
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
export function applyRun(model: Model, sim: CpqSimulator, full: boolean, format: 'json' | 'zip'): Map<string, string> {
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
    // and a user new to the database, or deleted there, or another user given the login (another
    // dateAdded or CPQ id: nothing of the former holder is kept, db/sql/last-known-identity.ts), has none.
    const previous = model.users.get(k);
    if (read.has(k)) read.set(k, { company: '_host', record });
    else {
      const { accessPermissions: _sent, ...rest } = record;
      const instant = (value: unknown) => (typeof value === 'string' ? instantMicros(value) : undefined);
      const id = (value: unknown) => storedText(value) ?? undefined;
      const differ = (a: unknown, b: unknown) => a !== undefined && b !== undefined && a !== b;
      const anotherUser =
        previous !== undefined && (differ(instant(previous.record.dateAdded), instant(record.dateAdded)) || differ(id(previous.record.id), id(record.id)));
      const kept = previous === undefined || previous.deleted || anotherUser ? undefined : previous.record.accessPermissions;
      read.set(k, { company: '_host', record: kept === undefined ? rest : { ...rest, accessPermissions: kept } });
    }
  }
  // A cursor never passes the run's start by CPQ's clock: the Date header of its answers, to the
  // second; and never goes back, unless that clock is more than SYNC_LOOKBACK behind it (set back,
  // src/db/sql/save-cursor.ts): then a full read's cursor is the newest it read, and any other
  // read's is cleared, so that the stream's next read is a full one.
  const siteDate = new Date(Math.floor(model.clock.now / 1000) * 1000).toISOString();
  const readInFull = (stream: string) => (stream === 'integrationUsers' ? integrationFrom === undefined : fullCompanies.has(stream.slice('companies/'.length)));
  for (const stream of [...COMPANIES.map((company) => `companies/${company}`), 'integrationUsers']) {
    const newestRead = newest.get(stream);
    const moved = newestRead === undefined ? undefined : newestRead > siteDate ? siteDate : newestRead;
    const stored = model.cursors.get(stream);
    if (stored !== undefined && Date.parse(siteDate) < Date.parse(stored) - LOOKBACK_MS) {
      if (readInFull(stream) && moved !== undefined) model.cursors.set(stream, moved);
      else model.cursors.delete(stream);
    } else if (moved !== undefined && (stored === undefined || moved > stored)) model.cursors.set(stream, moved);
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

export async function checkRun(model: Model, real: Real, result: RunResult, expectedChanges: Map<string, string>): Promise<void> {
  const { h } = real;
  expect(result.status).toBe('succeeded');
  await expectInSync({ sim: modelAsSite(model), t: h.t, config: h.config }, { groupDefinitions: model.storedGroups });
  const rows = await h.t.query<{ company_login: string; login: string; change: string }>(
    `SELECT company_login, login, change FROM cpq.user_changes WHERE run_id = $1`,
    [result.runId],
  );
  const logged = Object.fromEntries(rows.map((r) => [key(r.company_login, r.login), r.change]));
  expect(logged, `change rows of run ${result.runId} against the model's diffs`).toEqual(Object.fromEntries(expectedChanges));
  // Each stream's cursor as the model moved it: where its next incremental read starts, or none (a full read next).
  const cursors = await h.t.query<{ stream: string; ms: string }>(
    `SELECT stream, round(extract(epoch FROM cursor) * 1000)::bigint::text AS ms FROM cpq.sync_state WHERE site = $1 AND cursor IS NOT NULL`,
    [h.config.sites[0]!.name],
  );
  expect(
    Object.fromEntries(cursors.map((r) => [r.stream, new Date(Number(r.ms)).toISOString()])),
    `the streams' cursors after run ${result.runId} against the model's`,
  ).toEqual(Object.fromEntries([...model.cursors].map(([stream, cursor]) => [stream, new Date(Date.parse(cursor)).toISOString()])));

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

// ------------------------------------------------------------------ the plainest commands

export type Cmd = fc.AsyncCommand<Model, Real>;

export class CreateUser implements Cmd {
  constructor(readonly company: string) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    h.sim.addUser(this.company);
  }
  toString = () => `create user in ${this.company}`;
}

export class UpdateUser implements Cmd {
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

/** A case's site (a few users per company, one integration user, the clock the commands move) and its empty model. */
export async function startCase(): Promise<{ h: Harness; model: Model }> {
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
