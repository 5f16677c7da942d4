import fc from 'fast-check';
import { expect } from 'vitest';
import type { AppConfig } from '../../src/config.js';
import type { CpqSimulator } from '../../src/simulator/index.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/*
 * What the model-based property tests of run histories share (run-sequences, auditor-queries,
 * history-replay): the case's site and its harness, a second site of the same logins, the
 * commands that act alike in each, a run failing at a request, and the instants and rows the
 * as-of checks compare.
 */

export const COMPANIES = ['_host', 'partner1'] as const;
export const LOOKBACK_MS = 2 * 60_000;
/** The integration feed of the case's site (its path prefix is /cpq). */
export const INTEGRATION_PATH = '/cpq/rest/v19/integrationUsers';

export type Rec = Record<string, unknown>;

// ------------------------------------------------------------------ the case's site

/**
 * A case's site (a few users per company, one integration user, the clock the commands move),
 * its harness, and the simulator options a second site of the same seed (the same logins) takes.
 */
export async function startCaseHarness() {
  const clock = { now: Date.now() - 30 * 86_400_000 };
  const options = {
    pathPrefix: '/cpq',
    partnerCompanies: 1,
    usersPerCompany: 3,
    integrationUsers: 1,
    groups: 4,
    drift: false,
    zipExport: {},
    now: () => new Date(clock.now),
  } as const;
  const h = await startHarness(options, {
    CPQ_COMPANIES: COMPANIES.join(','),
    CPQ_PAGE_SIZE: '2',
    SYNC_LOOKBACK: `${LOOKBACK_MS / 1000}s`,
    SYNC_MAX_DELETE_FRACTION: '1',
  });
  return { clock, options, h };
}

/** Site `b`: the harness' config with its one site renamed `b` and pointed at another simulator. */
export function siteBConfig(h: Harness, baseUrl: string): AppConfig {
  const site0 = h.config.sites[0]!;
  return { ...h.config, cpq: undefined, sites: [{ ...site0, name: 'b', cpq: { ...site0.cpq, baseUrl } }] };
}

/** The commands' real system where a second site takes part. */
export interface TwoSiteReal {
  h: Harness;
  b: { sim: CpqSimulator; config: AppConfig };
}

/**
 * A run of the harness' site whose `at`-th request CPQ answers 500 (and every later one like it,
 * however often retried): its result, or undefined where it threw, and how many requests it made.
 */
export async function runFailingAt(h: Harness, at: number, full: boolean): Promise<{ result: RunResult | undefined; seen: number }> {
  let seen = 0;
  h.sim.onRequest = (req) => {
    if (++seen === at) h.sim.addFault({ match: { method: req.method, path: req.path, query: req.query }, status: 500, times: 10_000 });
  };
  let result: RunResult | undefined;
  try {
    result = await runSync({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log }, { full });
  } catch {
    result = undefined;
  } finally {
    h.sim.onRequest = undefined;
    h.sim.clearFaults();
  }
  return { result, seen };
}

// ------------------------------------------------------------------ commands

export const pick = <T>(xs: readonly T[], n: number): T | undefined => (xs.length === 0 ? undefined : xs[n % xs.length]);
export const items = (r: Rec, rel: string) => (r[rel] as { items?: Rec[] } | undefined)?.items ?? [];
/** Company users CPQ's company feed sends (an integration user is posted through the integration feed). */
export const companyUsers = (sim: CpqSimulator, company: string) => sim.users(company).filter((u) => u.oauthClientId === undefined);

interface ClockModel {
  clock: { now: number };
}
interface GoneModel extends ClockModel {
  /** Users deleted from the site, to give back. */
  gone: { company: string; record: Rec }[];
}
interface GroupsModel extends GoneModel {
  /** The site's label and type of each group a command adds (RelabelGroup changes them). */
  groupDefs: Record<string, { label: string; type: string }>;
}
interface ClientModel {
  /** The number in the next integration user's OAuth client id. */
  nextClient: number;
}
interface SiteReal {
  h: Harness;
}

/** The site's clock (its dateModified, dateAdded and Date header) moved by `ms`: forward, not at all (0), or back (negative). */
export class MoveClock implements fc.AsyncCommand<ClockModel, unknown> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: ClockModel) {
    model.clock.now += this.ms;
  }
  toString = () => (this.ms === 0 ? 'clock stands still' : `clock ${this.ms < 0 ? '-' : '+'}${Math.abs(this.ms) / 1000}s`);
}

/**
 * How a real site's clock moves between edits and runs: mostly forward (by seconds to an hour, or
 * by less than a second, within the second a Date header names), but it may also stand still (two
 * edits, or an edit and a run, at one dateModified), step back by less than SYNC_LOOKBACK (skew
 * the lookback is there for), or be reset back by hours (an edit then dated before the cursor).
 */
export const clockMove: fc.Arbitrary<MoveClock> = fc
  .oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 3600 }).map((s) => s * 1000) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 999 }) },
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: LOOKBACK_MS / 1000 }).map((s) => -s * 1000) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 48 }).map((h) => -h * 3_600_000) },
  )
  .map((ms) => new MoveClock(ms));
/** A company user, an admin or not, in the groups named (as the site defines them now). */
export class CreateUser implements fc.AsyncCommand<GroupsModel, SiteReal> {
  constructor(
    readonly company: string,
    readonly admin: boolean,
    readonly groups: string[],
  ) {}
  check = () => true;
  async run(model: GroupsModel, { h }: SiteReal) {
    h.sim.addUser(this.company, {
      isUserAdminPermEnabled: this.admin,
      groups: { items: this.groups.map((g) => ({ variableName: g, ...model.groupDefs[g]! })) },
    });
  }
  toString = () => `create user in ${this.company} (admin ${this.admin}, groups ${this.groups.join(',')})`;
}
/** A company user deleted at the site, kept in the model to give back (RestoreUser). */
export class DeleteUser implements fc.AsyncCommand<GoneModel, SiteReal> {
  constructor(
    readonly company: string,
    readonly n: number,
  ) {}
  check = () => true;
  async run(model: GoneModel, { h }: SiteReal) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    h.sim.deleteUser(this.company, String(user.login));
    model.gone.push({ company: this.company, record: user });
  }
  toString = () => `delete user #${this.n} of ${this.company}`;
}
/** An integration user created through CPQ's integration feed, in the groups named. */
export class PostIntegrationUser implements fc.AsyncCommand<ClientModel, SiteReal> {
  constructor(readonly groups: string[]) {}
  check = () => true;
  async run(model: ClientModel, { h }: SiteReal) {
    const response = await fetch(`${h.sim.baseUrl}${INTEGRATION_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oauthClientId: `client${model.nextClient++}`, groups: { items: this.groups.map((variableName) => ({ variableName })) } }),
    });
    expect(response.status).toBe(201);
  }
  toString = () => `POST integration user with groups ${this.groups.join(',')}`;
}
/** A deleted user back in CPQ as it was (same dateAdded: the same person), modified now. */
export class RestoreUser implements fc.AsyncCommand<GoneModel, SiteReal> {
  constructor(readonly n: number) {}
  check = (m: Readonly<GoneModel>) => m.gone.length > 0;
  async run(model: GoneModel, { h }: SiteReal) {
    const i = this.n % model.gone.length;
    const { company, record } = model.gone[i]!;
    if (h.sim.user(company, String(record.login))) return;
    model.gone.splice(i, 1);
    h.sim.addUser(company, { ...record, dateModified: new Date(model.clock.now).toISOString() }, { exact: true });
  }
  toString = () => `restore deleted user #${this.n}`;
}
/** A company user moves to the other company: gone from one, there (same record, login kept) in the other, modified now. */
export class MoveUser implements fc.AsyncCommand<ClockModel, SiteReal> {
  constructor(
    readonly company: string,
    readonly n: number,
  ) {}
  check = () => true;
  async run(model: ClockModel, { h }: SiteReal) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (!u) return;
    const to = COMPANIES.find((c) => c !== this.company)!;
    const login = String(u.login);
    if (h.sim.user(to, login)) return;
    h.sim.deleteUser(this.company, login);
    h.sim.addUser(to, { ...u, dateModified: new Date(model.clock.now).toISOString() }, { exact: true });
  }
  toString = () => `move user #${this.n} of ${this.company} to the other company`;
}
/**
 * A group's label and type change at the site: its definition and every member's item (each
 * member modified now, or not: `touch`); users deleted meanwhile come back as the site holds them now.
 */
export class RelabelGroup implements fc.AsyncCommand<GroupsModel, SiteReal> {
  constructor(
    readonly group: string,
    readonly label: string,
    readonly type: string,
    readonly touch = true,
  ) {}
  check = () => true;
  async run(model: GroupsModel, { h }: SiteReal) {
    h.sim.relabelGroup(this.group, this.label, this.type, { touch: this.touch });
    model.groupDefs[this.group] = { label: this.label, type: this.type };
    for (const g of model.gone)
      g.record = {
        ...g.record,
        groups: { items: items(g.record, 'groups').map((i) => (i.variableName === this.group ? { ...i, label: this.label, type: this.type } : i)) },
      };
  }
  toString = () => `relabel group ${this.group}: ${JSON.stringify(this.label)} / ${this.type}${this.touch ? '' : " (members' dateModified kept)"}`;
}

// ------------------------------------------------------------------ rows and instants

/** One site's (or every site's) rows per table, each row a line of JSON text, sorted. */
export interface Tables {
  users: string[];
  memberships: string[];
  permissions: string[];
  groups: string[];
}
export const PARTS = ['users', 'memberships', 'permissions', 'groups'] as const;
export const NO_TABLES: Tables = { users: [], memberships: [], permissions: [], groups: [] };

/** `as of` rows against the tables' rows: the ones as-of lacks and the ones it invents, per part. */
export function tablesDiff(expected: Tables, actual: Tables): Record<string, { missing: string[]; extra: string[] }> {
  const out: Record<string, { missing: string[]; extra: string[] }> = {};
  for (const part of PARTS) {
    const missing = expected[part].filter((line) => !actual[part].includes(line));
    const extra = actual[part].filter((line) => !expected[part].includes(line));
    if (missing.length > 0 || extra.length > 0) out[part] = { missing, extra };
  }
  return out;
}

/** A time as Postgres' text, `us` microseconds after `ts` (negative: before). */
export async function shifted(h: Harness, ts: string, us: bigint): Promise<string> {
  const [row] = await h.t.query<{ t: string }>(`SELECT ($1::timestamptz + $2::bigint * interval '1 microsecond')::text AS t`, [ts, us.toString()]);
  return row!.t;
}
/** The midpoint of two times, as Postgres' text. */
export async function midpoint(h: Harness, a: string, b: string): Promise<string> {
  const [row] = await h.t.query<{ t: string }>(`SELECT ($1::timestamptz + ($2::timestamptz - $1::timestamptz) / 2)::text AS t`, [a, b]);
  return row!.t;
}
/** A time in microseconds since the epoch. */
export const micros = async (h: Harness, ts: string) =>
  BigInt((await h.t.query<{ us: string }>(`SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::bigint::text AS us`, [ts]))[0]!.us);
