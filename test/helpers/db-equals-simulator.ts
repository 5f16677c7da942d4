import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isLosslessNumber } from 'lossless-json';
import { expect } from 'vitest';
import type { AppConfig } from '../../src/config.js';
import { MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { markedNumberLiteral, parseExactJson, stringifyExactJson } from '../../src/exact-json.js';
import { USER_FIELDS, USER_VALUE_COLUMN_TYPES } from '../../src/normalize/user-fields.js';
import { isChoice } from '../../src/cpq/user-fields.js';
import { stringifyExact, type CpqSimulator } from '../../src/simulator/index.js';
import { unmappedFields } from '../../src/sync/merge-sql.js';
import { RUN_BOOKKEEPING_TABLES, type TestDatabase } from './database.js';
import { exactUtc } from './exact-utc.js';

/*
 * "The database equals the simulator": every user CPQ holds, with every mapped field, every group
 * membership and every access permission, and nothing else present. Values are compared as text:
 * int64s as their digits (a double would round 181556695830934950), timestamps in CPQ's ISO form,
 * booleans as true/false. The expected values are derived from the simulator's canonical records
 * here, independently of src/normalize (only the field -> column mapping is shared, as the spec).
 */

type Raw = Record<string, unknown>;

/** A column value as comparable text: the same rendering for the database, the change log and CPQ records. */
const ISO_UTC = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
const PG_TEXT: Record<string, (column: string) => string> = {
  timestamptz: (c) => `to_char(${c} AT TIME ZONE 'UTC', ${ISO_UTC})`,
};
export const asText = (column: string, pgType: string) => (PG_TEXT[pgType] ?? ((c: string) => `${c}::text`))(column);
/** A value of a change-log diff as the same text (a date-time there is in the sync's own form, .mmmZ or .mmmuuuZ). */
export const diffText = (column: string, value: unknown) => (TIMESTAMP_COLUMNS.has(column) && typeof value === 'string' ? exactUtc(value) : textOf(value));

/** Columns a change-log diff can carry (every data column but raw and content_hash), with their Postgres types. */
export const DIFF_COLUMNS: readonly { column: string; pgType: string }[] = [
  { column: 'company_name', pgType: 'text' },
  { column: 'is_integration_user', pgType: 'boolean' },
  ...USER_VALUE_COLUMN_TYPES,
];
const TIMESTAMP_COLUMNS = new Set(DIFF_COLUMNS.filter((c) => c.pgType === 'timestamptz').map((c) => c.column));

function textOf(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (isLosslessNumber(value)) return value.value;
  const digits = markedNumberLiteral(value);
  if (digits !== undefined) return digits;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Which fields of a CPQ record the sync receives: v16 company users carry no partyId/partyNumber/company. */
function receivedRecord(record: Raw, viaIntegrationFeed: boolean): Raw {
  if (viaIntegrationFeed) return record;
  const { partyId: _a, partyNumber: _b, company: _c, ...rest } = record;
  return rest;
}

/** The row we expect for a CPQ record, column -> text (null for SQL NULL). */
function expectedColumns(record: Raw, viaIntegrationFeed: boolean): Record<string, string | null> {
  const r = receivedRecord(record, viaIntegrationFeed);
  const out: Record<string, string | null> = {};
  for (const spec of USER_FIELDS) {
    const value = r[spec.field];
    if (isChoice(spec.kind)) {
      const choice = value && typeof value === 'object' && !isLosslessNumber(value) ? (value as Raw) : { value };
      out[spec.column] = textOf(choice.value);
      out[`${spec.column}_display`] = textOf(choice.displayValue);
    } else if (spec.kind === 'timestamp') {
      out[spec.column] = value === undefined || value === null || value === '' ? null : exactUtc(value as string);
    } else if (spec.kind === 'bigint') {
      out[spec.column] = value === '' ? null : textOf(value);
    } else {
      out[spec.column] = textOf(value);
    }
  }
  const company = r.company as Raw | undefined;
  out.company_name = company && typeof company === 'object' ? textOf(company.name) : null;
  out.is_integration_user = String(viaIntegrationFeed);
  return out;
}

/** Object keys sorted at every level, int64s kept (LosslessNumber or marked string), for comparing JSON as text. */
function sortKeys(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || isLosslessNumber(value)) return value;
  if (Array.isArray(value)) return value.map(sortKeys);
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sortKeys((value as Raw)[k])]),
  );
}

/** raw as stored, without links (they depend on the request), as exact JSON text with sorted keys. */
function storedRawText(rawText: string): string {
  const raw = parseExactJson(rawText) as Raw;
  const { links: _links, ...rest } = raw;
  for (const relation of ['groups', 'accessPermissions']) {
    const value = rest[relation];
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const { links: _l, ...inner } = value as Raw;
      rest[relation] = inner;
    }
  }
  return stringifyExactJson(sortKeys(rest));
}

/** What raw should hold for a CPQ record: the fields sent, under the (drifted) names the simulator sends them. */
function expectedRawText(sim: CpqSimulator, company: string, record: Raw, viaIntegrationFeed: boolean): string {
  const renames = sim.fieldRenames(company, String(record.login));
  const wire: Raw = {};
  for (const [key, value] of Object.entries(receivedRecord(record, viaIntegrationFeed))) wire[renames[key] ?? key] = value;
  return stringifyExact(sortKeys(wire));
}

interface Membership {
  variable_name: string;
  label: string | null;
  type: string | null;
}
interface Permission {
  type: string;
  variable_name: string;
  name: string | null;
  has_access: boolean | null;
}

export const permissionKey = (p: { type: unknown; variable_name?: unknown; variableName?: unknown }) =>
  JSON.stringify([String(p.type), String(p.variable_name ?? p.variableName)]);
const byKey =
  <T>(key: (x: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

export interface EqualsOptions {
  /**
   * Companies to compare; default: the run's CPQ_COMPANIES (`*` = every company of the
   * simulator), and then no other company may have present users.
   */
  companies?: string[];
  /**
   * The label and type cpq.groups holds per group when they need not be the record's: a group
   * relabelled at the site since a present user was last read keeps the old words in that user's
   * raw, while the one row of cpq.groups has the words of the last read (model-based tests).
   */
  groupDefinitions?: ReadonlyMap<string, { label: string | null; type: string | null }>;
}

/**
 * Asserts that the present users of the database (deleted_at IS NULL) are exactly CPQ's users of
 * the synced companies, field by field (typed columns and raw), with exactly CPQ's group
 * memberships (and the groups' labels and types) and access permissions; that users CPQ no longer
 * has are marked deleted and hold no memberships or permissions.
 */
export async function expectDatabaseEqualsSimulator(
  env: { sim: CpqSimulator; t: TestDatabase; config: AppConfig },
  options: EqualsOptions = {},
): Promise<void> {
  const { sim, t, config } = env;
  const cpq = config.cpq!;
  const companies = options.companies ?? (cpq.companies.includes('*') ? sim.companyLogins() : cpq.companies);
  const integrationFeed = cpq.integrationUsers === 'on' || (cpq.integrationUsers === 'auto' && cpq.pathPrefix === '/cpq');
  const columns = DIFF_COLUMNS.map((c) => `${asText(`u.${c.column}`, c.pgType)} AS "${c.column}"`).join(', ');

  for (const company of companies) {
    const records = sim.users(company);
    const rows = await t.query<Raw & { id: string; login: string; raw_text: string; deleted: boolean }>(
      `SELECT u.id::text AS id, u.login, u.raw::text AS raw_text, u.deleted_at IS NOT NULL AS deleted, ${columns}
       FROM cpq.users u WHERE u.company_login = $1`,
      [company],
    );
    const present = rows.filter((r) => !r.deleted);
    const byLogin = new Map(present.map((r) => [r.login, r]));
    expect(present.map((r) => r.login).sort(), `present users of ${company}`).toEqual(records.map((r) => String(r.login)).sort());

    const memberships = await t.query<Membership & { user_id: string }>(
      `SELECT ug.user_id::text AS user_id, g.variable_name, g.label, g.type
       FROM cpq.user_groups ug JOIN cpq.groups g ON g.variable_name = ug.group_variable_name
       JOIN cpq.users u ON u.id = ug.user_id WHERE u.company_login = $1`,
      [company],
    );
    const permissions = await t.query<Permission & { user_id: string }>(
      `SELECT p.user_id::text AS user_id, p.type, p.variable_name, p.name, p.has_access
       FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.company_login = $1`,
      [company],
    );
    const groupsOf = groupBy(memberships, (m) => m.user_id);
    const permissionsOf = groupBy(permissions, (p) => p.user_id);

    for (const record of records) {
      const login = String(record.login);
      const row = byLogin.get(login)!;
      // As the simulator's integration feed returns them (isIntegrationUser): any company's users bound to an OAuth client.
      const isIntegration = integrationFeed && typeof record.oauthClientId === 'string' && record.oauthClientId !== '';
      const actual = Object.fromEntries(DIFF_COLUMNS.map((c) => [c.column, row[c.column] as string | null]));
      expect(actual, `${company}/${login}: columns`).toEqual(expectedColumns(record, isIntegration));
      expect(storedRawText(row.raw_text), `${company}/${login}: raw`).toBe(expectedRawText(sim, company, record, isIntegration));

      const groups = ((record.groups as { items?: Raw[] } | undefined)?.items ?? []).map((g) => ({
        variable_name: String(g.variableName),
        label: (g.label as string | undefined) ?? null,
        type: (g.type as string | undefined) ?? null,
        ...options.groupDefinitions?.get(String(g.variableName)),
      }));
      const storedGroups = (groupsOf.get(row.id) ?? []).map(({ user_id: _u, ...g }) => g);
      const sortGroups = byKey((g: Membership) => g.variable_name);
      expect(storedGroups.sort(sortGroups), `${company}/${login}: groups`).toEqual(groups.sort(sortGroups));

      const perms = ((record.accessPermissions as { items?: Raw[] } | undefined)?.items ?? []).map((p) => ({
        type: String(p.type),
        variable_name: String(p.variableName),
        name: (p.name as string | undefined) ?? null,
        has_access: (p.hasAccess as boolean | undefined) ?? null,
      }));
      const storedPerms = (permissionsOf.get(row.id) ?? []).map(({ user_id: _u, ...p }) => p);
      expect(storedPerms.sort(byKey(permissionKey)), `${company}/${login}: access permissions`).toEqual(perms.sort(byKey(permissionKey)));
    }

    // Users CPQ no longer has: marked deleted, nothing current left.
    const gone = rows.filter((r) => r.deleted).map((r) => r.id);
    expect(
      memberships.filter((m) => gone.includes(m.user_id)),
      `${company}: memberships of deleted users`,
    ).toEqual([]);
    expect(
      permissions.filter((p) => gone.includes(p.user_id)),
      `${company}: permissions of deleted users`,
    ).toEqual([]);
  }
  if (options.companies === undefined) {
    const others = await t.query(`SELECT company_login, login FROM cpq.users WHERE deleted_at IS NULL AND NOT (company_login = ANY($1))`, [companies]);
    expect(others, 'present users of companies not synced').toEqual([]);
  }
}

// ----------------------------------------------------------------------------- change log

type DiffValue = { old: unknown; new: unknown };
interface ReplayedUser {
  columns: Map<string, string | null>;
  groups: Set<string>;
  permissions: Map<string, { name: string | null; hasAccess: boolean | null }>;
  /** Custom fields a change named (`raw.<field>`), as exact JSON text of their last value. */
  custom: Map<string, string>;
  deleted: boolean;
}
interface PermissionEntry {
  type: string;
  variableName: string;
  name?: string | null;
  hasAccess?: boolean | null;
  old?: { name: string | null; hasAccess: boolean | null };
  new?: { name: string | null; hasAccess: boolean | null };
}

/**
 * Asserts that the change log is complete and free of duplicates, by replaying it: starting from
 * nothing, every change row applied in order must find the state its `old` values describe (a
 * missing row breaks the chain), must change something (a duplicate or spurious row does not),
 * and the end result must be exactly the current tables. Also: at most one row per user and run,
 * rows only from succeeded runs, and each run's counters equal its rows.
 */
export async function expectChangeLogConsistent(t: TestDatabase): Promise<void> {
  const changes = await t.query<{ id: string; run_id: string; change: string; user_id: string; diff_text: string }>(
    `SELECT id::text, run_id::text, change, user_id::text, diff::text AS diff_text FROM cpq.user_changes c ORDER BY c.id`,
  );
  const runs = await t.query<{ id: string; status: string; users_inserted: number; users_updated: number; users_deleted: number; users_restored: number }>(
    `SELECT id::text, status, users_inserted, users_updated, users_deleted, users_restored FROM cpq.sync_runs r ORDER BY r.id`,
  );

  const perRunUser = new Set<string>();
  for (const c of changes) {
    const key = `${c.run_id}/${c.user_id}`;
    expect(perRunUser.has(key), `duplicate change row for user ${c.user_id} in run ${c.run_id}`).toBe(false);
    perRunUser.add(key);
  }
  for (const run of runs) {
    const mine = changes.filter((c) => c.run_id === run.id);
    const count = (change: string) => mine.filter((c) => c.change === change).length;
    if (run.status !== 'succeeded') {
      expect(mine, `change rows of run ${run.id} (${run.status})`).toEqual([]);
      continue;
    }
    expect(
      { insert: count('insert'), update: count('update'), delete: count('delete'), restore: count('restore') },
      `change rows of run ${run.id} against its counters`,
    ).toEqual({ insert: run.users_inserted, update: run.users_updated, delete: run.users_deleted, restore: run.users_restored });
  }

  const state = new Map<string, ReplayedUser>();
  for (const c of changes) {
    const where = `change ${c.id} (${c.change} of user ${c.user_id} in run ${c.run_id})`;
    const diff = parseExactJson(c.diff_text) as Record<string, unknown>;
    const {
      groups,
      accessPermissions,
      deleted_at: deletedAt,
      ...fields
    } = diff as {
      groups?: { added: string[]; removed: string[] };
      accessPermissions?: { added: PermissionEntry[]; removed: PermissionEntry[]; changed: PermissionEntry[] };
      deleted_at?: DiffValue;
    } & Record<string, DiffValue>;
    let user = state.get(c.user_id);
    if (c.change === 'insert') {
      expect(user, `${where}: the user was inserted before`).toBeUndefined();
      user = { columns: new Map(), groups: new Set(), permissions: new Map(), custom: new Map(), deleted: false };
      state.set(c.user_id, user);
    } else {
      expect(user, `${where}: no insert before it`).toBeDefined();
      expect(user!.deleted, `${where}: deleted before`).toBe(c.change === 'restore');
    }
    const u = user!;
    expect(Object.keys(diff).length, `${where}: empty diff`).toBeGreaterThan(0);
    for (const [column, change] of Object.entries(fields)) {
      if (column.startsWith('raw.')) {
        // A custom field: an insert's diff names each one the record holds, so every later old value is the last logged new.
        const field = column.slice('raw.'.length);
        const [old, now] = [stringifyExactJson(change.old ?? null), stringifyExactJson(change.new ?? null)];
        expect(now, `${where}: ${column} did not change`).not.toBe(old);
        expect(old, `${where}: old ${column}`).toBe(u.custom.get(field) ?? 'null');
        u.custom.set(field, now);
        continue;
      }
      expect(
        DIFF_COLUMNS.some((d) => d.column === column),
        `${where}: unknown column ${column}`,
      ).toBe(true);
      const before = u.columns.get(column) ?? null;
      expect(diffText(column, change.old), `${where}: old ${column}`).toBe(before);
      expect(diffText(column, change.new), `${where}: ${column} did not change`).not.toBe(before);
      u.columns.set(column, diffText(column, change.new));
    }
    if (c.change === 'delete') {
      expect(deletedAt?.new, `${where}: deleted_at`).not.toBeNull();
      u.deleted = true;
    }
    if (c.change === 'restore') {
      expect(deletedAt?.new, `${where}: deleted_at`).toBeNull();
      u.deleted = false;
    }
    if (groups) {
      for (const g of groups.removed) expect(u.groups.has(g), `${where}: removed group ${g} it did not have`).toBe(true);
      for (const g of groups.added) expect(u.groups.has(g), `${where}: added group ${g} it had`).toBe(false);
      expect(groups.added.length + groups.removed.length, `${where}: empty group change`).toBeGreaterThan(0);
      for (const g of groups.removed) u.groups.delete(g);
      for (const g of groups.added) u.groups.add(g);
    }
    if (accessPermissions) {
      for (const p of accessPermissions.removed) {
        expect(u.permissions.get(permissionKey(p)), `${where}: removed permission`).toEqual({ name: p.name ?? null, hasAccess: p.hasAccess ?? null });
        u.permissions.delete(permissionKey(p));
      }
      for (const p of accessPermissions.changed) {
        expect(u.permissions.get(permissionKey(p)), `${where}: changed permission`).toEqual(p.old);
        expect(p.new, `${where}: permission did not change`).not.toEqual(p.old);
        u.permissions.set(permissionKey(p), p.new!);
      }
      for (const p of accessPermissions.added) {
        expect(u.permissions.has(permissionKey(p)), `${where}: added permission it had`).toBe(false);
        u.permissions.set(permissionKey(p), { name: p.name ?? null, hasAccess: p.hasAccess ?? null });
      }
    }
    if (c.change === 'delete') {
      expect(u.groups.size, `${where}: memberships left after the delete`).toBe(0);
      expect(u.permissions.size, `${where}: permissions left after the delete`).toBe(0);
    }
  }

  // History is one line per user: no version overlaps another, or the current row (a version
  // ending after the current row starts returns the user twice from users_as_of: review CA).
  const overlapping = await t.query<{ id: string; valid_from: string; valid_to: string }>(
    `SELECT v.id::text, v.valid_from::text, v.valid_to::text FROM cpq.user_versions v JOIN cpq.users u ON u.id = v.id WHERE v.valid_to > u.valid_from
     UNION ALL
     SELECT a.id::text, a.valid_from::text, a.valid_to::text FROM cpq.user_versions a JOIN cpq.user_versions b
       ON b.id = a.id AND a.version_id < b.version_id AND tstzrange(a.valid_from, a.valid_to) && tstzrange(b.valid_from, b.valid_to)`,
  );
  expect(overlapping, 'versions overlapping a later version or the current row').toEqual([]);

  // The replay must end where the tables are.
  const columns = DIFF_COLUMNS.map((c) => `${asText(`u.${c.column}`, c.pgType)} AS "${c.column}"`).join(', ');
  const users = await t.query<Raw & { id: string; deleted: boolean }>(
    `SELECT u.id::text AS id, u.deleted_at IS NOT NULL AS deleted, ${columns} FROM cpq.users u`,
  );
  const memberships = await t.query<{ user_id: string; g: string }>(`SELECT user_id::text, group_variable_name AS g FROM cpq.user_groups`);
  const permissions = await t.query<{ user_id: string; type: string; variable_name: string; name: string | null; has_access: boolean | null }>(
    `SELECT user_id::text, type, variable_name, name, has_access FROM cpq.user_access_permissions`,
  );
  expect(users.map((u) => u.id).sort(), 'users with an insert in the change log').toEqual([...state.keys()].sort());
  for (const row of users) {
    const replayed = state.get(row.id)!;
    const expected = Object.fromEntries(DIFF_COLUMNS.map((c) => [c.column, replayed.columns.get(c.column) ?? null]));
    const actual = Object.fromEntries(DIFF_COLUMNS.map((c) => [c.column, row[c.column] as string | null]));
    expect(actual, `user ${row.id}: columns replayed from the change log`).toEqual(expected);
    expect(row.deleted, `user ${row.id}: deleted`).toBe(replayed.deleted);
    expect(
      memberships
        .filter((m) => m.user_id === row.id)
        .map((m) => m.g)
        .sort(),
      `user ${row.id}: groups replayed`,
    ).toEqual([...replayed.groups].sort());
    const perms = Object.fromEntries(permissions.filter((p) => p.user_id === row.id).map((p) => [permissionKey(p), { name: p.name, hasAccess: p.has_access }]));
    expect(perms, `user ${row.id}: permissions replayed`).toEqual(Object.fromEntries(replayed.permissions));
    // Every custom field the row holds, and only those, as the log left them.
    const [stored] = await t.query<{ custom: Record<string, unknown> }>(`SELECT ${unmappedFields('raw')} AS custom FROM cpq.users WHERE id = $1`, [row.id]);
    const replayedCustom = [...replayed.custom].filter(([, value]) => value !== 'null');
    expect(Object.keys(stored!.custom).sort(), `user ${row.id}: custom fields replayed`).toEqual(replayedCustom.map(([field]) => field).sort());
    for (const [field, value] of replayedCustom) {
      const [same] = await t.query<{ same: boolean }>(`SELECT coalesce(raw -> $2, 'null') = $3::jsonb AS same FROM cpq.users WHERE id = $1`, [
        row.id,
        field,
        value,
      ]);
      expect(same!.same, `user ${row.id}: custom field ${field} replayed`).toBe(true);
    }
  }
}

/**
 * Every reference between the tables a run writes resolves (migration 0004 dropped their foreign
 * keys for speed; this is the check they used to make on every row).
 */
export async function expectReferencesResolve(t: TestDatabase): Promise<void> {
  const [dangling] = await t.query<Record<string, number>>(
    `SELECT
       (SELECT count(*)::int FROM cpq.users u WHERE NOT EXISTS (SELECT 1 FROM cpq.sync_runs r WHERE r.id = u.first_seen_run_id)
                                                 OR NOT EXISTS (SELECT 1 FROM cpq.sync_runs r WHERE r.id = u.last_changed_run_id)) AS users_runs,
       (SELECT count(*)::int FROM cpq.user_groups g WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.id = g.user_id)) AS memberships_users,
       (SELECT count(*)::int FROM cpq.user_groups g WHERE NOT EXISTS (SELECT 1 FROM cpq.groups x WHERE x.variable_name = g.group_variable_name)) AS memberships_groups,
       (SELECT count(*)::int FROM cpq.user_access_permissions p WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.id = p.user_id)) AS permissions_users,
       (SELECT count(*)::int FROM cpq.user_changes c WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.id = c.user_id)) AS changes_users,
       (SELECT count(*)::int FROM cpq.user_feed_fields f WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.id = f.user_id AND u.site = f.site)) AS feed_fields_users,
       (SELECT count(*)::int FROM cpq.user_known_identity k WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.id = k.user_id AND u.site = k.site)) AS known_identity_users,
       (SELECT count(*)::int FROM cpq.user_changes c WHERE NOT EXISTS (SELECT 1 FROM cpq.sync_runs r WHERE r.id = c.run_id AND r.status = 'succeeded')) AS changes_runs`,
  );
  expect(dangling).toEqual({
    users_runs: 0,
    memberships_users: 0,
    memberships_groups: 0,
    permissions_users: 0,
    changes_users: 0,
    feed_fields_users: 0,
    known_identity_users: 0,
    changes_runs: 0,
  });
}

const IDENTITY_FROM_HISTORY = readFileSync(join(MIGRATIONS_DIR, '0038_known_identity_from_history.sql'), 'utf8');

/**
 * The dateAdded and CPQ id the merge keeps of each login's holder (cpq.user_known_identity) are
 * those the history says: migration 0038, which reads them from the versions by the rule
 * cpq.admin_rights_as_of follows, applied again (and rolled back) changes nothing. So the merge
 * and the function tell a login's holders apart alike. The rule's reading is 0038's: a migration
 * that changes the rule (and refills the table by it) is the one to read here then.
 */
export async function expectIdentityFromHistory(t: TestDatabase, what = 'the identity the merge keeps'): Promise<void> {
  const identity = `SELECT user_id::text, date_added::text, cpq_id::text FROM cpq.user_known_identity ORDER BY 1`;
  const kept = await t.query(identity);
  const client = await t.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(IDENTITY_FROM_HISTORY);
    expect(kept, `${what}, against the history's`).toEqual((await client.query(identity)).rows);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

/**
 * The checks together: the state equals CPQ, every reference resolves, the change log leads
 * exactly there, and the identity kept is the history's.
 */
export async function expectInSync(env: { sim: CpqSimulator; t: TestDatabase; config: AppConfig }, options: EqualsOptions = {}): Promise<void> {
  await expectDatabaseEqualsSimulator(env, options);
  await expectReferencesResolve(env.t);
  await expectChangeLogConsistent(env.t);
  await expectIdentityFromHistory(env.t);
}

/** Every row of every cpq table but the run bookkeeping, as JSON text: "the database as before the run". */
export async function snapshotEverything(t: TestDatabase): Promise<Record<string, string[]>> {
  const tables = await t.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'cpq' AND table_type = 'BASE TABLE' AND table_name NOT IN (${RUN_BOOKKEEPING_TABLES}) AND table_name NOT LIKE 'kysely%'
     ORDER BY 1`,
  );
  const out: Record<string, string[]> = {};
  for (const { name } of tables)
    out[name] = (await t.query<{ row: string }>(`SELECT to_jsonb(x)::text AS row FROM cpq."${name}" x ORDER BY 1`)).map((r) => r.row);
  return out;
}

/**
 * The version of every row of every cpq table but the run bookkeeping (ctid and xmin: where it lives
 * and the transaction that wrote it), digested per table. Equal results mean no committed
 * transaction inserted, updated or deleted a row in between: stricter than comparing contents,
 * and cheap whatever the size of the rows.
 */
export async function rowVersions(t: TestDatabase): Promise<Record<string, string>> {
  const tables = await t.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'cpq' AND table_type = 'BASE TABLE' AND table_name NOT IN (${RUN_BOOKKEEPING_TABLES}) AND table_name NOT LIKE 'kysely%'
     ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await t.query<{ digest: string }>(
      `SELECT count(*) || ':' || coalesce(md5(string_agg(ctid::text || '/' || xmin::text, ',' ORDER BY ctid)), '') AS digest FROM cpq."${name}"`,
    );
    out[name] = row!.digest;
  }
  return out;
}
