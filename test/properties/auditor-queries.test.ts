import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import { CpqSimulator } from '../../src/simulator/index.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { forgetUser } from '../../src/sync/forget.js';
import { runSync } from '../../src/sync/run.js';
import type { Harness } from '../helpers/harness.js';
import { commandSettings, propertyTimeout, runs } from './arbitraries.js';
import {
  COMPANIES,
  CreateUser,
  LOOKBACK_MS,
  MoveClock,
  MoveUser,
  RelabelGroup,
  DeleteUser,
  PostIntegrationUser,
  RestoreUser,
  clockMove,
  companyUsers,
  items,
  micros,
  pick,
  runFailingAt,
  siteBConfig,
  startCaseHarness,
  type Rec,
  type TwoSiteReal,
} from './history-commands.js';

/*
 * The auditor's questions, generated. Random admin actions at the site (users created, deleted,
 * restored, moved between companies; admin flags granted and revoked; groups joined and left,
 * among them Administrator-type groups and groups relabelled or retyped; permissions granted,
 * revoked, re-granted and removed; integration users posted; deleted users forgotten, which
 * changes none of the answers below) are interleaved with full,
 * incremental, zip and failing runs. The model keeps, per successful run, its effective_at and
 * the state the database must then hold (each user's presence, flags, groups and permissions;
 * each group's label and type). At every run's effective_at, a microsecond before and after it,
 * between runs and before the first, the README's SQL examples, run as written with only their
 * date literal replaced, must answer what the model says:
 *  - "Who had admin rights ... and since when" (cpq.admin_rights_as_of): each admin flag and each
 *    Administrator-type group of each user then present, since the first run of the uninterrupted
 *    run of states in force then that held it (present with the flag; present, a member and the
 *    group's type Administrator);
 *  - "Members of Administrator-type groups on a date": memberships then, of groups whose type
 *    was Administrator then, with the label they had then;
 *  - "Everything that changed ..." from that instant on: the users changed by each later run;
 *  - cpq.user_access_permissions_as_of: every permission held then;
 * and after every run the reporting view cpq.administrators equals the model's current state.
 */

const SITE = 'default';
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const AS_OF_LITERAL = "'2025-03-03T00:00:00Z'";

function readmeStatement(heading: RegExp): string {
  const m = new RegExp(`${heading.source}[^\\n]*\\n(?:--[^\\n]*\\n)*([\\s\\S]*?);\\n`).exec(README);
  if (!m?.[1]) throw new Error(`README has no statement under ${heading.source}`);
  return m[1];
}
const asOfParam = (statement: string) => {
  if (!statement.includes(AS_OF_LITERAL)) throw new Error(`the README's statement no longer asks about ${AS_OF_LITERAL}`);
  return statement.replaceAll(AS_OF_LITERAL, '$1::timestamptz');
};
const ADMIN_SINCE = asOfParam(readmeStatement(/-- Who had admin rights/));
const ADMIN_GROUPS = asOfParam(readmeStatement(/-- Members of Administrator-type groups/));
/** The README's query for every admin right (flags and Administrator-type groups), where it has one. */
const ANY_ADMIN = /-- Everyone with any admin right/.test(README) ? asOfParam(readmeStatement(/-- Everyone with any admin right/)) : undefined;
const CHANGES_SINCE = (() => {
  const s = readmeStatement(/-- Everything that changed in the last 7 days/);
  const rel = "now() - interval '7 days'";
  if (!s.includes(rel)) throw new Error("the README's change query no longer reads the last 7 days");
  return s.replace(rel, '$1::timestamptz');
})();

const key = (company: string, login: string) => `${company}\u0001${login}`;
const FLAGS = ['isUserAdminPermEnabled', 'isAccessAdminPermEnabled', 'isApplicationAdminPermEnabled', 'isProxyPermEnabled'] as const;
type Flag = (typeof FLAGS)[number];

interface UserState {
  company: string;
  login: string;
  present: boolean;
  flags: Record<Flag, boolean>;
  groups: string[];
  /** `type/variableName=hasAccess` */
  perms: string[];
  /** the record as change detection reads it: keys and relations as sets, group labels and types left out (restated, README) */
  content: string;
  /** CPQ's id and dateAdded as sent (null when absent): where either changes, the login was given to someone new */
  cpqId: string | null;
  dateAdded: string | null;
}
interface Snapshot {
  runId: string;
  /** effective_at in microseconds since the epoch */
  e: bigint;
  users: Map<string, UserState>;
  defs: Map<string, { label: string | null; type: string | null }>;
}
/** What one site's rows in the database must be. */
interface SiteModel {
  site: string;
  /** the record as last read, per user; absent = never read */
  lastRead: Map<string, { company: string; login: string; record: string; present: boolean }>;
  /** Each stream's cursor (ms): `_host`, `partner1`, `integrationUsers` */
  cursors: Map<string, number>;
  defs: Map<string, { label: string | null; type: string | null }>;
  runs: Snapshot[];
}
/** Site `default` (the commands' site) and site `b`: another simulator of the same seed (the same logins), synced now and then. */
interface Model extends SiteModel {
  clock: { now: number };
  b: SiteModel;
  gone: { company: string; record: Rec }[];
  groupDefs: Record<string, { label: string; type: string }>;
  nextClient: number;
}
type Real = TwoSiteReal;

function stateOf(company: string, login: string, present: boolean, r: Rec): UserState {
  return {
    company,
    login,
    present,
    flags: Object.fromEntries(FLAGS.map((f) => [f, r[f] === true])) as Record<Flag, boolean>,
    groups: [...new Set(items(r, 'groups').map((g) => String(g.variableName)))].sort(),
    perms: items(r, 'accessPermissions')
      .map((p) => `${String(p.type)}/${String(p.variableName)}=${String(p.hasAccess)}`)
      .sort(),
    content: contentOf(r),
    cpqId: typeof r.id === 'number' ? String(r.id) : null,
    dateAdded: typeof r.dateAdded === 'string' ? r.dateAdded : null,
  };
}
function contentOf(r: Rec): string {
  // Relations in the keys' order whether the record carries them or not (none = no items).
  const out: Rec = Object.fromEntries(Object.entries({ ...r, groups: null, accessPermissions: null }).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  // A mapped field sent as null says what leaving it out says (README, restated records); the
  // simulator's users have no id until ChangeIdentity gives them one.
  if (out.id === null) delete out.id;
  out.groups = items(r, 'groups')
    .map((g) => JSON.stringify({ ...g, label: null, type: null }))
    .sort();
  out.accessPermissions = items(r, 'accessPermissions')
    .map((p) => JSON.stringify(p))
    .sort();
  return JSON.stringify(out);
}

const INTEGRATION = 'integrationUsers';
const isIntegrationUser = (r: Rec) => typeof r.oauthClientId === 'string' && r.oauthClientId !== '';
const modifiedAt = (r: Rec) => Date.parse(String(r.dateModified));

/**
 * A successful run, by README "What a run does" and SYNC_LOOKBACK: a stream without a cursor, or
 * of a full (asked, zip) run, reads every user, and a company read in full deletes the users it no
 * longer finds; an incremental read returns the users whose dateModified is at or after its cursor less
 * SYNC_LOOKBACK, whatever changed (the site's clock may have gone back: an edit dated before the
 * window is not read). The integration feed reads from the earliest of the cursors, in full when a
 * company read is. A stream's cursor then moves to the newest dateModified it read, never past
 * the run's start by CPQ's clock (its Date header, to the second) nor the database's, and never
 * back, unless that clock is more than SYNC_LOOKBACK behind the cursor (set back): then a full
 * read's cursor is the newest it read (so bounded), and any other read's is cleared (the next
 * read is full). An integration user the integration feed reads alone takes that record with the access
 * permissions the company feed gave (one-feed fields), none where the row was deleted or new.
 */
function applyRun(model: SiteModel, sim: CpqSimulator, full: boolean, zip: boolean, siteNow: number, integrationFeed?: Map<string, Rec>): void {
  const since = (stream: string) => {
    const cursor = model.cursors.get(stream);
    return full || zip || cursor === undefined ? undefined : cursor - LOOKBACK_MS;
  };
  const integrationSince = COMPANIES.map(since).reduce((a, b) => (a === undefined || b === undefined ? undefined : Math.min(a, b)), since(INTEGRATION));
  const inWindow = (record: Rec, from: number | undefined) => from === undefined || modifiedAt(record) >= from;
  const newest = new Map<string, number>();
  const saw = (stream: string, record: Rec) => newest.set(stream, Math.max(newest.get(stream) ?? -Infinity, modifiedAt(record)));
  const read = new Map<string, { company: string; record: Rec; byCompany: boolean }>();
  const onSite = new Set<string>();
  for (const company of COMPANIES)
    for (const record of sim.users(company)) {
      const k = key(company, String(record.login));
      onSite.add(k);
      const v19 = integrationFeed?.get(k) ?? record;
      const byCompany = inWindow(record, since(company));
      if (byCompany) saw(company, record);
      const byIntegration = isIntegrationUser(v19) && inWindow(v19, integrationSince);
      if (byIntegration) saw(INTEGRATION, v19);
      if (!byIntegration) {
        if (byCompany) read.set(k, { company, record, byCompany });
        continue;
      }
      // Both feeds: the company record when it says it was modified later (CPQ changed the user
      // between the two reads), else the integration record with the company feed's permissions.
      if (byCompany && modifiedAt(record) > modifiedAt(v19)) read.set(k, { company, record, byCompany });
      else read.set(k, { company, record: byCompany ? { ...v19, accessPermissions: record.accessPermissions } : v19, byCompany });
    }
  for (const [k, { company, record, byCompany }] of read) {
    const login = String(record.login);
    const before = model.lastRead.get(k);
    let stored = record;
    if (!byCompany) {
      const { accessPermissions: _none, ...v19 } = record;
      const kept = before?.present ? (JSON.parse(before.record) as Rec).accessPermissions : undefined;
      stored = kept === undefined ? v19 : { ...v19, accessPermissions: kept };
    }
    model.lastRead.set(k, { company, login, record: JSON.stringify(stored), present: true });
    for (const g of items(record, 'groups'))
      model.defs.set(String(g.variableName), { label: (g.label as string | undefined) ?? null, type: (g.type as string | undefined) ?? null });
  }
  // A company read in full (asked, zip, or without a cursor: its first read, or one cleared by the
  // site's clock set back) deletes the users CPQ no longer returns; a stored integration user only
  // when the integration feed was read in full too (README, Deletions).
  const deletes = (u: { company: string; record: string }) =>
    since(u.company) === undefined && (integrationSince === undefined || !isIntegrationUser(JSON.parse(u.record) as Rec));
  for (const [k, u] of model.lastRead) if (u.present && !onSite.has(k) && deletes(u)) u.present = false;
  const siteDate = Math.floor(siteNow / 1000) * 1000;
  const bound = Math.min(siteDate, Date.now());
  for (const stream of [...COMPANIES, INTEGRATION]) {
    const cursor = model.cursors.get(stream);
    const ms = newest.get(stream);
    const moved = ms === undefined ? undefined : Math.min(ms, bound);
    if (cursor !== undefined && siteDate < cursor - LOOKBACK_MS) {
      // The site's clock went back: a full read's cursor is what it read, any other is cleared.
      const fullRead = (stream === INTEGRATION ? integrationSince : since(stream)) === undefined;
      if (fullRead && moved !== undefined) model.cursors.set(stream, moved);
      else model.cursors.delete(stream);
    } else if (moved !== undefined) model.cursors.set(stream, Math.max(cursor ?? -Infinity, moved));
  }
}

function snapshot(model: SiteModel, runId: string, e: bigint): Snapshot {
  const users = new Map<string, UserState>();
  for (const [k, u] of model.lastRead) users.set(k, stateOf(u.company, u.login, u.present, JSON.parse(u.record) as Rec));
  return { runId, e, users, defs: new Map([...model.defs].map(([g, d]) => [g, { ...d }])) };
}

function isoMicros(us: bigint): string {
  const ms = us / 1000n;
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, 23)}${String(us % 1000n).padStart(3, '0')}Z`;
}

/** The state in force at `t`: that of the last run whose effective_at is at or before it. */
const inForce = (model: SiteModel, t: bigint) => {
  let k = -1;
  model.runs.forEach((r, i) => {
    if (r.e <= t) k = i;
  });
  return k;
};

/** The admin flags' column names, as admin_right names them. */
const FLAG_COLUMNS: Record<Flag, string> = {
  isUserAdminPermEnabled: 'is_user_admin_perm_enabled',
  isAccessAdminPermEnabled: 'is_access_admin_perm_enabled',
  isApplicationAdminPermEnabled: 'is_application_admin_perm_enabled',
  isProxyPermEnabled: 'is_proxy_perm_enabled',
};

/**
 * The index of the run from which user `id`'s state at run `k` is held by the same person, by the
 * merge's rule (src/db/sql/last-known-identity.ts): the last run whose state is the user's first,
 * brings it back from deleted, or gives a CPQ id or dateAdded other than the last one its holder's
 * states gave since that holder's start (a state without either carries the holder's last one on;
 * a new holder's start knows its own values only).
 */
function personStart(model: SiteModel, id: string, k: number): number {
  let start = -1;
  let known: { cpqId: string | null; dateAdded: string | null } = { cpqId: null, dateAdded: null };
  let wasDeleted = false;
  for (let j = 0; j <= k; j++) {
    const u = model.runs[j]!.users.get(id);
    if (!u) continue;
    const differs = (now: string | null, before: string | null) => now !== null && before !== null && now !== before;
    if (start < 0 || (wasDeleted && u.present) || differs(u.cpqId, known.cpqId) || differs(u.dateAdded, known.dateAdded)) {
      start = j;
      known = { cpqId: u.cpqId, dateAdded: u.dateAdded };
    } else known = { cpqId: u.cpqId ?? known.cpqId, dateAdded: u.dateAdded ?? known.dateAdded };
    wasDeleted = !u.present;
  }
  return start;
}

/**
 * Every admin right of every user present at `t` (each flag set, each Administrator-type group),
 * since the first run of the uninterrupted run of states in force then that held it: the user
 * present with the flag; or present, a member, and the group's type Administrator; and no earlier
 * than the run from which the login is held by the same person.
 */
function modelAdminRights(model: SiteModel, t: bigint): string[] {
  const k = inForce(model, t);
  if (k < 0) return [];
  const out: string[] = [];
  for (const [id, u] of model.runs[k]!.users) {
    if (!u.present) continue;
    const person = personStart(model, id, k);
    const since = (held: (snap: Snapshot) => boolean) => {
      let j = k;
      while (j > person && held(model.runs[j - 1]!)) j--;
      return model.runs[j]!.e;
    };
    for (const flag of FLAGS) {
      if (!u.flags[flag]) continue;
      const held = (snap: Snapshot) => {
        const v = snap.users.get(id);
        return v !== undefined && v.present && v.flags[flag];
      };
      out.push(`${u.company}|${u.login}|${FLAG_COLUMNS[flag]}||${since(held)}`);
    }
    for (const g of u.groups) {
      if (model.runs[k]!.defs.get(g)?.type !== 'Administrator') continue;
      const held = (snap: Snapshot) => {
        const v = snap.users.get(id);
        return v !== undefined && v.present && v.groups.includes(g) && snap.defs.get(g)?.type === 'Administrator';
      };
      out.push(`${u.company}|${u.login}|administrator_group|${g}|${since(held)}`);
    }
  }
  return out.map((r) => `${model.site}|${r}`).sort();
}

function modelAdminGroups(model: SiteModel, t: bigint): string[] {
  const k = inForce(model, t);
  if (k < 0) return [];
  const snap = model.runs[k]!;
  const out: string[] = [];
  for (const u of snap.users.values()) {
    if (!u.present) continue;
    for (const g of u.groups) {
      const d = snap.defs.get(g);
      if (d?.type === 'Administrator') out.push(`${u.company}|${u.login}|${g}|${d.label}`);
    }
  }
  return out.map((r) => `${model.site}|${r}`).sort();
}

function modelAnyAdmin(model: SiteModel, t: bigint): string[] {
  const k = inForce(model, t);
  if (k < 0) return [];
  const snap = model.runs[k]!;
  const out: string[] = [];
  for (const u of snap.users.values()) {
    if (!u.present) continue;
    const groups = u.groups.filter((g) => snap.defs.get(g)?.type === 'Administrator');
    const f = u.flags;
    if (f.isUserAdminPermEnabled || f.isAccessAdminPermEnabled || f.isApplicationAdminPermEnabled || f.isProxyPermEnabled || groups.length > 0)
      out.push(
        `${u.company}|${u.login}|${f.isUserAdminPermEnabled}|${f.isAccessAdminPermEnabled}|${f.isApplicationAdminPermEnabled}|${f.isProxyPermEnabled}|${groups.join(',')}`,
      );
  }
  return out.map((r) => `${model.site}|${r}`).sort();
}

function modelPermissions(model: SiteModel, t: bigint): string[] {
  const k = inForce(model, t);
  if (k < 0) return [];
  const out: string[] = [];
  for (const u of model.runs[k]!.users.values()) if (u.present) for (const p of u.perms) out.push(`${u.company}|${u.login}|${p}`);
  return out.map((r) => `${model.site}|${r}`).sort();
}

/** Per later run: the change of each user and, for updates, which of the tracked fields changed. */
function modelChangesAfter(model: SiteModel, t: bigint): string[] {
  const out: string[] = [];
  model.runs.forEach((run, i) => {
    if (run.e <= t) return;
    const prev = i > 0 ? model.runs[i - 1]!.users : new Map<string, UserState>();
    for (const [id, u] of run.users) {
      const p = prev.get(id);
      const tag = (change: string) => `${run.e}|${change}|${u.company}|${u.login}`;
      if (!p && u.present) out.push(tag('insert'));
      else if (!p) continue;
      else if (p.present && !u.present) out.push(tag('delete'));
      else if (!p.present && u.present) out.push(tag('restore'));
      else if (p.present && u.present) {
        const fields: string[] = [];
        const columns: Record<Flag, string> = {
          isUserAdminPermEnabled: 'is_user_admin_perm_enabled',
          isAccessAdminPermEnabled: 'is_access_admin_perm_enabled',
          isApplicationAdminPermEnabled: 'is_application_admin_perm_enabled',
          isProxyPermEnabled: 'is_proxy_perm_enabled',
        };
        for (const f of FLAGS) if (p.flags[f] !== u.flags[f]) fields.push(columns[f]);
        if (p.groups.join() !== u.groups.join()) fields.push('groups');
        if (p.perms.join() !== u.perms.join()) fields.push('accessPermissions');
        if (p.content !== u.content) out.push(`${tag('update')}|${fields.sort().join(',')}`);
      }
    }
  });
  return out.map((r) => `${model.site}|${r}`).sort();
}

const TRACKED = new Set([
  'is_user_admin_perm_enabled',
  'is_access_admin_perm_enabled',
  'is_application_admin_perm_enabled',
  'is_proxy_perm_enabled',
  'groups',
  'accessPermissions',
]);

async function dbAdminRights(h: Harness, t: string): Promise<string[]> {
  const rows = await h.t.query<{ line: string }>(
    `SELECT q.site || '|' || q.company_login || '|' || q.login || '|' || q.admin_right || '|' || coalesce(q.group_variable_name, '') || '|'
            || (extract(epoch FROM q.since) * 1000000)::bigint::text AS line FROM (${ADMIN_SINCE}) q`,
    [t],
  );
  return rows.map((r) => r.line).sort();
}
async function dbAdminGroups(h: Harness, t: string): Promise<string[]> {
  const rows = await h.t.query<{ site: string; company_login: string; login: string; variable_name: string; label: string | null }>(ADMIN_GROUPS, [t]);
  return rows.map((r) => `${r.site}|${r.company_login}|${r.login}|${r.variable_name}|${r.label}`).sort();
}
async function dbAnyAdmin(h: Harness, t: string, statement: string): Promise<string[]> {
  const rows = await h.t.query<{ line: string }>(
    `SELECT q.site || '|' || q.company_login || '|' || q.login || '|' || q.is_user_admin || '|' || q.is_access_admin || '|' || q.is_application_admin
            || '|' || q.is_proxy || '|' || array_to_string(q.administrator_groups, ',') AS line FROM (${statement}) q`,
    [t],
  );
  return rows.map((r) => r.line).sort();
}
async function dbPermissions(h: Harness, t: string): Promise<string[]> {
  const rows = await h.t.query<{ site: string; company_login: string; login: string; p: string }>(
    `SELECT u.site, u.company_login, u.login, p.type || '/' || p.variable_name || '=' || p.has_access AS p
     FROM cpq.user_access_permissions_as_of($1::timestamptz) p JOIN cpq.users_as_of($1::timestamptz) u ON u.id = p.user_id
     `,
    [t],
  );
  return rows.map((r) => `${r.site}|${r.company_login}|${r.login}|${r.p}`).sort();
}
async function dbChangesAfter(h: Harness, t: string): Promise<string[]> {
  const rows = await h.t.query<{ site: string; e: string; change: string; company_login: string; login: string; field: string | null }>(
    `SELECT q.site, (extract(epoch FROM q.detected_at) * 1000000)::bigint::text AS e, q.change, q.company_login, q.login, q.field FROM (${CHANGES_SINCE}) q`,
    [t],
  );
  const byChange = new Map<string, Set<string>>();
  for (const r of rows) {
    const tag = `${r.site}|${r.e}|${r.change}|${r.company_login}|${r.login}`;
    const fields = byChange.get(tag) ?? new Set<string>();
    if (r.change === 'update' && r.field !== null && TRACKED.has(r.field)) fields.add(r.field);
    byChange.set(tag, fields);
  }
  return [...byChange].map(([tag, fields]) => (tag.includes('|update|') ? `${tag}|${[...fields].sort().join(',')}` : tag)).sort();
}

/** cpq.administrators (current) against the model's last state. */
async function checkAdministratorsView(model: SiteModel, h: Harness): Promise<void> {
  const snap = model.runs.at(-1)!;
  const expected: string[] = [];
  for (const u of snap.users.values()) {
    if (!u.present) continue;
    const adminGroups = u.groups.filter((g) => snap.defs.get(g)?.type === 'Administrator');
    const f = u.flags;
    if (!(f.isUserAdminPermEnabled || f.isAccessAdminPermEnabled || f.isApplicationAdminPermEnabled || f.isProxyPermEnabled || adminGroups.length)) continue;
    expected.push(
      `${u.company}|${u.login}|${f.isUserAdminPermEnabled}|${f.isAccessAdminPermEnabled}|${f.isApplicationAdminPermEnabled}|${f.isProxyPermEnabled}|${adminGroups.join(',')}`,
    );
  }
  const rows = await h.t.query<{ line: string }>(
    `SELECT company_login || '|' || login || '|' || is_user_admin || '|' || is_access_admin || '|' || is_application_admin || '|' || is_proxy || '|' || array_to_string(administrator_groups, ',') AS line
     FROM cpq.administrators WHERE site = $1`,
    [model.site],
  );
  expect(rows.map((r) => r.line).sort(), `cpq.administrators after run ${snap.runId}`).toEqual(expected.sort());
}

/** Every README query at every interesting instant. */
async function checkInstants(model: Model, h: Harness): Promise<void> {
  const sites = [model, model.b];
  const all = sites.flatMap((m) => m.runs).sort((x, y) => (x.e < y.e ? -1 : x.e > y.e ? 1 : 0));
  if (all.length === 0) return;
  const instants = new Set<bigint>([all[0]!.e - 86_400_000_000n]);
  all.forEach((r, i) => {
    instants
      .add(r.e - 1n)
      .add(r.e)
      .add(r.e + 1n);
    const next = all[i + 1];
    if (next) instants.add((r.e + next.e) / 2n);
  });
  const both = (f: (m: SiteModel, t: bigint) => string[], t: bigint) => sites.flatMap((m) => f(m, t)).sort();
  for (const us of instants) {
    const t = isoMicros(us);
    const at = `at ${t} (runs ${all.map((r) => `${r.runId}@${isoMicros(r.e)}`).join(' ')})`;
    expect(await dbAdminRights(h, t), `admin rights and since when ${at}`).toEqual(both(modelAdminRights, us));
    expect(await dbAdminGroups(h, t), `Administrator-type group members ${at}`).toEqual(both(modelAdminGroups, us));
    if (ANY_ADMIN !== undefined) expect(await dbAnyAdmin(h, t, ANY_ADMIN), `any admin right ${at}`).toEqual(both(modelAnyAdmin, us));
    expect(await dbPermissions(h, t), `permissions ${at}`).toEqual(both(modelPermissions, us));
    expect(await dbChangesAfter(h, t), `changes after ${at}`).toEqual(both(modelChangesAfter, us));
  }
}

async function afterRun(
  model: SiteModel,
  h: Harness,
  sim: CpqSimulator,
  result: RunResult,
  full: boolean,
  zip: boolean,
  siteNow: number,
  integrationFeed?: Map<string, Rec>,
): Promise<void> {
  expect(result.status).toBe('succeeded');
  const [run] = await h.t.query<{ e: string }>(`SELECT effective_at::text AS e FROM cpq.sync_runs WHERE id = $1`, [result.runId]);
  applyRun(model, sim, full, zip, siteNow, integrationFeed);
  model.runs.push(snapshot(model, result.runId, await micros(h, run!.e)));
  await checkAdministratorsView(model, h);
}

// ------------------------------------------------------------------ commands

type Cmd = fc.AsyncCommand<Model, Real>;
// MoveClock, CreateUser, RestoreUser, MoveUser and RelabelGroup (touch left as true): ./history-commands.ts.

class SetFlag implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly flag: Flag,
    readonly value: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const u = pick(h.sim.users(this.company), this.n);
    if (u) h.sim.updateUser(this.company, String(u.login), { [this.flag]: this.value });
  }
  toString = () => `set ${this.flag}=${this.value} on user #${this.n} of ${this.company}`;
}
/** CPQ sends a user's id or dateAdded as another value (the login given to someone new), as null, or as a value it had. */
class ChangeIdentity implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly field: 'id' | 'dateAdded',
    readonly value: number | null,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const u = pick(companyUsers(h.sim, this.company), this.n);
    if (!u) return;
    const value = this.value === null ? null : this.field === 'id' ? 900_000 + this.value : new Date(Date.UTC(2020, 0, 1 + this.value)).toISOString();
    h.sim.updateUser(this.company, String(u.login), { [this.field]: value });
  }
  toString = () => `${this.field} of user #${this.n} of ${this.company} = ${this.value === null ? 'null' : `value ${this.value}`}`;
}
/** A change, then a run. */
class ThenRun implements Cmd {
  constructor(
    readonly change: Cmd,
    readonly then: Run,
  ) {}
  check = (m: Readonly<Model>) => this.change.check(m);
  async run(model: Model, real: Real) {
    await this.change.run(model, real);
    await this.then.run(model, real);
  }
  toString = () => `${String(this.change)}, then ${String(this.then)}`;
}
class ChangeGroups implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly group: string,
    readonly add: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(h.sim.users(this.company), this.n);
    if (!u) return;
    const has = items(u, 'groups').some((g) => g.variableName === this.group);
    if (this.add && has) return;
    if (this.add) h.sim.addGroup(this.company, String(u.login), { variableName: this.group, ...model.groupDefs[this.group]! });
    else h.sim.removeGroup(this.company, String(u.login), this.group);
  }
  toString = () => `${this.add ? 'add' : 'remove'} group ${this.group} ${this.add ? 'to' : 'from'} user #${this.n} of ${this.company}`;
}
class SetPermission implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly variableName: string,
    readonly access: boolean | 'remove',
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const u = pick(h.sim.users(this.company), this.n);
    if (!u) return;
    const login = String(u.login);
    if (this.access === 'remove') {
      const rest = items(u, 'accessPermissions').filter((p) => !(p.type === 'productFamily' && p.variableName === this.variableName));
      if (rest.length !== items(u, 'accessPermissions').length) h.sim.updateUser(this.company, login, { accessPermissions: { items: rest } });
    } else
      h.sim.setAccessPermission(this.company, login, {
        type: 'productFamily',
        variableName: this.variableName,
        name: this.variableName,
        hasAccess: this.access,
      });
  }
  toString = () => `permission ${this.variableName} ${this.access === 'remove' ? 'removed' : `= ${this.access}`} on user #${this.n} of ${this.company}`;
}
/**
 * `forget` of a user site default holds as deleted (site b, a simulator of the same seed, has the
 * same logins): it redacts personal fields only, so no answer here may change, of either site,
 * neither now nor once CPQ gives the login back (RestoreUser).
 */
class Forget implements Cmd {
  constructor(readonly n: number) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(
      [...model.lastRead.values()].filter((x) => !x.present),
      this.n,
    );
    if (!u) return;
    const erased = await forgetUser(h.t.pool, { site: SITE, company: u.company, login: u.login, reason: 'property test', requestedBy: 'test' }, h.log);
    // Recorded now, or an erasure of it recorded already (forget run twice); a user CPQ sent no
    // personal field for is recorded with nothing erased (README: the request was met).
    expect(erased.erasureId, `forget ${u.company}/${u.login}`).toMatch(/^\d+$/);
  }
  toString = () => `forget deleted user #${this.n}`;
}
class Run implements Cmd {
  constructor(
    readonly full: boolean,
    readonly format: 'json' | 'zip',
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const config = withCpq(h.config, { exportFormat: this.format });
    const result = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: this.full });
    await afterRun(model, h, h.sim, result, this.full, this.format === 'zip', model.clock.now);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} ${this.format}`;
}
/**
 * An incremental JSON run during which, after the integration feed was read and before the first
 * company page is served, an integration user's flag is set at the site, its clock moved by `ms`
 * first: forward (the company record is the later), not at all (both records carry one
 * dateModified), or back (the company record says it is the earlier).
 */
class EditBetweenFeeds implements Cmd {
  constructor(
    readonly n: number,
    readonly flag: Flag,
    readonly value: boolean,
    readonly ms: number,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const u = pick(h.sim.integrationUsers(), this.n);
    const siteNow = model.clock.now;
    const integrationFeed = new Map(h.sim.integrationUsers().map((r) => [key('_host', String(r.login)), r] as const));
    let edited = false;
    h.sim.onRequest = (req) => {
      if (edited || !u || !req.path.includes('/companies/')) return;
      edited = true;
      model.clock.now += this.ms;
      h.sim.updateUser('_host', String(u.login), { [this.flag]: this.value });
    };
    let result: RunResult;
    try {
      result = await runSync({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log }, {});
    } finally {
      h.sim.onRequest = undefined;
    }
    // CPQ's Date headers after the edit give its clock as moved: the cursors stop at the earlier of the two.
    await afterRun(model, h, h.sim, result, false, false, Math.min(siteNow, model.clock.now), integrationFeed);
  }
  toString = () =>
    `integration user #${this.n}: ${this.flag}=${this.value} between the two feeds' reads, the clock moved ${this.ms / 1000}s, in an incremental run`;
}
class FailingRun implements Cmd {
  constructor(
    readonly at: number,
    readonly full: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const { result } = await runFailingAt(h, this.at, this.full);
    if (result?.status === 'succeeded') await afterRun(model, h, h.sim, result, this.full, false, model.clock.now);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} failing at request ${this.at}`;
}

const SITE_B_GROUPS: Record<string, { label: string; type: string }> = {
  adminAccessGroupsOnly: { label: 'Admin Access- Groups', type: 'Administrator' },
  excludeMDBParts: { label: 'No Longer Used 07', type: 'Sales' },
  grpA: { label: 'Group A', type: 'Sales' },
  grpB: { label: 'Group B', type: 'Administrator' },
};

/** Site b: a user's flag set, or a group joined or left, and a run of b (full or incremental). */
class SiteBChangeAndRun implements Cmd {
  constructor(
    readonly n: number,
    readonly admin: boolean | undefined,
    readonly group: string | undefined,
    readonly full: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h, b }: Real) {
    const u = pick(b.sim.users('_host'), this.n);
    if (u && this.admin !== undefined) b.sim.updateUser('_host', String(u.login), { isUserAdminPermEnabled: this.admin });
    if (u && this.group !== undefined) {
      if (items(u, 'groups').some((g) => g.variableName === this.group)) b.sim.removeGroup('_host', String(u.login), this.group);
      // site b's groups are defined as generated (site default's relabels are not b's)
      else b.sim.addGroup('_host', String(u.login), { variableName: this.group, ...SITE_B_GROUPS[this.group]! });
    }
    const result = await runSync({ pool: h.t.pool, db: h.t.db, config: b.config, log: h.log }, { full: this.full });
    await afterRun(model.b, h, b.sim, result, this.full, false, model.clock.now);
  }
  toString = () =>
    `site b: user #${this.n}${this.admin === undefined ? '' : ` admin ${this.admin}`}${this.group ? ` toggle group ${this.group}` : ''}, run ${this.full ? 'full' : 'incremental'}`;
}

const company = fc.constantFrom(...COMPANIES);
const GROUPS = ['adminAccessGroupsOnly', 'excludeMDBParts', 'grpA', 'grpB'];
const group = fc.constantFrom(...GROUPS);
const commands: fc.Arbitrary<Cmd>[] = [
  clockMove,
  fc.tuple(company, fc.boolean(), fc.uniqueArray(group, { maxLength: 2 })).map(([c, a, g]) => new CreateUser(c, a, g)),
  fc.tuple(company, fc.nat(), fc.constantFrom(...FLAGS, 'isUserAdminPermEnabled' as Flag), fc.boolean()).map(([c, n, f, v]) => new SetFlag(c, n, f, v)),
  fc.tuple(company, fc.nat(), fc.boolean()).map(([c, n, v]) => new SetFlag(c, n, 'isUserAdminPermEnabled', v)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new DeleteUser(c, n)),
  fc.nat().map((n) => new RestoreUser(n)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new MoveUser(c, n)),
  fc.tuple(company, fc.nat(), group, fc.boolean()).map(([c, n, g, add]) => new ChangeGroups(c, n, g, add)),
  fc
    .tuple(company, fc.nat(), fc.constantFrom<'id' | 'dateAdded'>('id', 'dateAdded'), fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }))
    .map(([c, n, f, v]) => new ChangeIdentity(c, n, f, v)),
  fc
    .tuple(company, fc.nat(), fc.constantFrom('laptops', 'phones'), fc.constantFrom<boolean | 'remove'>(true, false, 'remove'))
    .map(([c, n, v, a]) => new SetPermission(c, n, v, a)),
  fc.tuple(group, fc.constantFrom('Admins', 'Sales team', 'Renamed'), fc.constantFrom('Administrator', 'Sales')).map(([g, l, t]) => new RelabelGroup(g, l, t)),
  fc.uniqueArray(fc.constantFrom('adminAccessGroupsOnly', 'excludeMDBParts'), { maxLength: 2 }).map((g) => new PostIntegrationUser(g)),
  fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'json', 'zip')).map(([full, f]) => new Run(full, f)),
  fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'zip')).map(([full, f]) => new Run(full, f)),
  fc.tuple(fc.integer({ min: 1, max: 8 }), fc.boolean()).map(([at, full]) => new FailingRun(at, full)),
  fc
    .tuple(fc.nat(), fc.constantFrom(...FLAGS), fc.boolean(), fc.constantFrom(0, 0, 1, 1000, -1000, -3_600_000))
    .map(([n, f, v, ms]) => new EditBetweenFeeds(n, f, v, ms)),
  fc.nat().map((n) => new Forget(n)),
  fc
    .tuple(fc.nat(), fc.option(fc.boolean(), { nil: undefined }), fc.option(group, { nil: undefined }), fc.boolean())
    .map(([n, a, g, full]) => new SiteBChangeAndRun(n, a, g, full)),
];

async function startCase(): Promise<{ h: Harness; model: Model; b: Real['b'] }> {
  const { clock, options, h } = await startCaseHarness();
  const simB = new CpqSimulator(options);
  const b = { sim: simB, config: siteBConfig(h, await simB.start()) };
  const model: Model = {
    site: SITE,
    b: { site: 'b', lastRead: new Map(), cursors: new Map(), defs: new Map(), runs: [] },
    clock,
    lastRead: new Map(),
    cursors: new Map(),
    defs: new Map(),
    runs: [],
    gone: [],
    groupDefs: structuredClone(SITE_B_GROUPS),
    nextClient: 0,
  };
  return { h, model, b };
}

async function runCase(cmds: Iterable<Cmd>): Promise<void> {
  const { h, model, b } = await startCase();
  try {
    await fc.asyncModelRun(() => ({ model, real: { h, b } }), cmds);
    await checkInstants(model, h);
  } finally {
    await b.sim.stop();
    await h.close();
  }
}

describe("the README's auditor queries against a model (property)", () => {
  it(
    'at every instant, who had admin rights and since when, Administrator-group members, permissions and changes equal the model',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, commandSettings(14)), async (cmds) =>
          runCase([new Run(true, 'json'), ...cmds, new MoveClock(1000), new Run(false, 'json'), new Run(true, 'json')]),
        ),
        runs(10, propertyTimeout(100_000)),
      );
    },
    propertyTimeout(100_000),
  );

  // The same, narrowed to two host users whose rights are held while CPQ sends their id and
  // dateAdded as other values, as null and as values they had: the person a login is held by.
  // Each change is followed by a run, so that a few commands make the versions it takes.
  const identityRun = fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'json', 'zip')).map(([full, f]) => new Run(full, f));
  const identityChanges = [
    fc
      .tuple(fc.constantFrom(0, 1, 1), fc.constantFrom<'id' | 'dateAdded'>('id', 'dateAdded'), fc.constantFrom(null, 1, 2))
      .map(([n, f, v]) => new ChangeIdentity('_host', n, f, v)),
    fc
      .tuple(fc.constantFrom(0, 1, 1), fc.constantFrom<'id' | 'dateAdded'>('id', 'dateAdded'), fc.constantFrom(null, 1, 2))
      .map(([n, f, v]) => new ChangeIdentity('_host', n, f, v)),
    fc.tuple(fc.constantFrom(1, 2), fc.constantFrom(...FLAGS), fc.boolean()).map(([n, f, v]) => new SetFlag('_host', n, f, v)),
    fc.tuple(fc.constantFrom(1, 2), fc.constantFrom('grpB', 'adminAccessGroupsOnly'), fc.boolean()).map(([n, g, add]) => new ChangeGroups('_host', n, g, add)),
    fc.constantFrom(1, 2).map((n) => new DeleteUser('_host', n)),
    fc.nat().map((n) => new RestoreUser(n)),
  ];
  const identityCommands = identityChanges.map((change) => fc.tuple(change, identityRun).map(([c, r]) => new ThenRun(c, r)));
  it(
    'who had admin rights and since when, across the CPQ id and dateAdded a login is sent with',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(identityCommands, commandSettings(14)), async (cmds) =>
          runCase([new SetFlag('_host', 1, 'isUserAdminPermEnabled', true), new Run(true, 'json'), ...cmds, new MoveClock(1000), new Run(false, 'json')]),
        ),
        runs(10, propertyTimeout(100_000)),
      );
    },
    propertyTimeout(100_000),
  );

  /** Sequences a search found or the brief's boundaries, kept as they were minimized. */
  const sequences: Record<string, Cmd[]> = {
    // the model gave site b site default's relabelled label (model, not product: site b keeps its own groups)
    'a group relabelled at one site, joined at the other': [
      new Run(true, 'json'),
      new RelabelGroup('adminAccessGroupsOnly', 'Admins', 'Administrator'),
      new SiteBChangeAndRun(1_264_742_287, undefined, 'adminAccessGroupsOnly', false),
    ],
    'a group retyped to and from Administrator, a user deleted and restored, admin revoked and granted again': [
      new Run(true, 'json'),
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      new ChangeGroups('_host', 1, 'grpA', true),
      new Run(false, 'json'),
      new RelabelGroup('grpA', 'Admins', 'Administrator'),
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', false),
      new Run(false, 'json'),
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      new RelabelGroup('grpA', 'Sales team', 'Sales'),
      new Run(false, 'zip'),
      new DeleteUser('_host', 1),
      new Run(true, 'json'),
      new RestoreUser(0),
      new Run(false, 'json'),
      new MoveUser('_host', 1),
      new Run(true, 'json'),
    ],
    // forget (compliance erasure) of a deleted admin, who then comes back in CPQ with the right
    // (restored, the right starting again), is deleted and forgotten again
    'an admin deleted, forgotten, given back by CPQ, deleted and forgotten again': [
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      new ChangeGroups('_host', 1, 'adminAccessGroupsOnly', true),
      new Run(true, 'json'),
      new DeleteUser('_host', 1),
      new Run(true, 'json'),
      new Forget(0),
      new Forget(0),
      new MoveClock(1000),
      new Run(false, 'json'),
      new RestoreUser(0),
      new Run(false, 'json'),
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', false),
      new Run(false, 'zip'),
      new DeleteUser('_host', 1),
      new Run(true, 'json'),
      new Forget(0),
      new RestoreUser(0),
      new Run(true, 'json'),
    ],
    // the site's clock reset back by hours: the edits after it are dated before the cursor, so an
    // incremental read (from the cursor less SYNC_LOOKBACK) misses them, and clears the cursor:
    // the next read is a full one; the
    // integration user's edit is read by the integration feed alone (partner1's cursor is
    // earlier), which keeps the access permissions the company feed gave
    "the site's clock reset back by hours, then standing still: an edit dated before the cursor": [
      new MoveClock(-3 * 3_600_000),
      new Run(true, 'json'),
      new MoveClock(3 * 3_600_000),
      new SetFlag('_host', 0, 'isUserAdminPermEnabled', true),
      new Run(false, 'json'),
      new MoveClock(-3_600_000),
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      new SetPermission('_host', 0, 'laptops', true),
      new SetFlag('_host', 0, 'isProxyPermEnabled', true),
      new Run(false, 'json'),
      new MoveClock(0),
      new ChangeGroups('_host', 1, 'grpB', true),
      new Run(false, 'json'),
      new Run(true, 'json'),
      new MoveClock(0),
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', false),
      new Run(false, 'json'),
    ],
    // an integration user edited between the two feeds' reads of one run: the clock standing still
    // (the integration record wins), back (the same), forward (the company record wins)
    "an integration user's flag set between the two feeds' reads, the site's clock still, back and forward": [
      new Run(true, 'json'),
      new EditBetweenFeeds(0, 'isUserAdminPermEnabled', true, 0),
      new MoveClock(1000),
      new EditBetweenFeeds(0, 'isProxyPermEnabled', true, -1000),
      new EditBetweenFeeds(0, 'isUserAdminPermEnabled', false, 1000),
      new MoveClock(1000),
      new Run(false, 'json'),
    ],
    // found by the search (a model error): the run's later Date headers give CPQ's clock as set
    // back, so the host cursor stops an hour back and the next incremental read finds the user
    // created then
    "the site's clock set back an hour during a run, a user created then": [
      new Run(true, 'json'),
      new SetFlag('_host', 66_376_513, 'isUserAdminPermEnabled', false),
      new EditBetweenFeeds(0, 'isUserAdminPermEnabled', false, -3_600_000),
      new CreateUser('_host', false, []),
      new MoveClock(1000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    // found by the search (a model error): an integration user posted while the clock is back,
    // read first by the integration feed alone (no accessPermissions), then by both (no items):
    // the same content, no change
    'an integration user posted while the clock is back, read by the integration feed alone, then by both': [
      new Run(true, 'json'),
      new EditBetweenFeeds(0, 'isUserAdminPermEnabled', false, 0),
      new EditBetweenFeeds(0, 'isUserAdminPermEnabled', false, -3_600_000),
      new PostIntegrationUser([]),
      new MoveClock(1000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    // found by the search (a model error): a partner1 user deleted and given back (partner1's
    // cursor is now the site's clock), another deleted; the site's clock set back an hour during a
    // run clears partner1's cursor, so its next read is a full one, which deletes that user
    'a user deleted, then the clock set back an hour during a run: the company read next in full': [
      new Run(true, 'json'),
      new DeleteUser('partner1', 0),
      new RestoreUser(595_826_945),
      new DeleteUser('partner1', 1_976_361_692),
      new EditBetweenFeeds(1_587_401_151, 'isUserAdminPermEnabled', false, 0),
      new EditBetweenFeeds(791_678_796, 'isAccessAdminPermEnabled', true, -3_600_000),
      new MoveClock(1000),
      new Run(false, 'json'),
    ],
    // a login given to someone new across a record without the field (review CY), and back to a value it had
    'an admin user’s id and dateAdded sent as null, then as new values, then as an old one': [
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      new Run(true, 'json'),
      new ChangeIdentity('_host', 1, 'dateAdded', null),
      new Run(false, 'json'),
      new ChangeIdentity('_host', 1, 'dateAdded', 2),
      new Run(false, 'zip'),
      new ChangeIdentity('_host', 1, 'id', null),
      new Run(true, 'json'),
      new ChangeIdentity('_host', 1, 'id', 1),
      new ChangeIdentity('_host', 1, 'dateAdded', null),
      new Run(false, 'json'),
      new ChangeIdentity('_host', 1, 'id', 2),
      new Run(false, 'json'),
      new ChangeIdentity('_host', 1, 'id', 1),
      new Run(true, 'zip'),
    ],
    // the holder's own values only (review GM): a new holder told apart by its id, whose dateAdded
    // came later, was a third person to the function (each column's last value across holders)
    'an admin user’s dateAdded sent as null, then someone new told apart by the id, then their dateAdded': [
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      // (ChangeIdentity counts company users only: #0 is SetFlag's #1; the simulator gives it no id)
      new ChangeIdentity('_host', 0, 'id', 1),
      new Run(true, 'json'),
      new ChangeIdentity('_host', 0, 'dateAdded', null),
      new Run(false, 'json'),
      new ChangeIdentity('_host', 0, 'id', 2),
      new Run(false, 'json'),
      new ChangeIdentity('_host', 0, 'dateAdded', 1),
      new Run(true, 'zip'),
    ],
    // and a user brought back starts afresh: its dateAdded from before its deletion is not its own
    'an admin user’s dateAdded sent as null, the user deleted and brought back, then a dateAdded': [
      new SetFlag('_host', 1, 'isUserAdminPermEnabled', true),
      new Run(true, 'json'),
      new ChangeIdentity('_host', 0, 'dateAdded', null),
      new Run(false, 'json'),
      new DeleteUser('_host', 1),
      new Run(true, 'json'),
      new RestoreUser(0),
      new Run(false, 'json'),
      new ChangeIdentity('_host', 0, 'dateAdded', 1),
      new Run(false, 'json'),
    ],
  };
  for (const [name, cmds] of Object.entries(sequences)) it(`sequence: ${name}`, () => runCase(cmds), 60_000);
});
