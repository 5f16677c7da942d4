import fc from 'fast-check';
import { expect } from 'vitest';
import { USER_FIELDS } from '../../src/normalize/user-fields.js';
import { isChoice } from '../../src/cpq/user-fields.js';
import type { CpqSimulator } from '../../src/simulator/index.js';
import { RawJson } from '../../src/simulator/index.js';
import type { TestDatabase } from '../helpers/database.js';
import { exactUtc } from '../helpers/exact-utc.js';
import {
  companyUser,
  groupPool,
  integrationUser,
  integrationUserOf,
  itemInForm,
  lastCopy,
  relationJson,
  wireText,
  type GeneratedUser,
  type GroupDef,
  type ItemForm,
  type Json,
  type PermissionItem,
  type SentField,
} from './arbitraries.js';

/*
 * Generated users into the simulator, and what the database must hold for them by the
 * documented mapping (README "Tables", src/normalize/user-fields.ts), derived here from the
 * generated values, not from src/normalize.
 */

export interface PlacedUser {
  company: string;
  user: GeneratedUser;
}

/** The companies of a generated site: the host and one partner organization. */
export const SITE_COMPANIES = ['_host', 'partner1'] as const;

/**
 * A generated site: its groups, and one to eight users of its companies (users of either company
 * may be integration users, which the v19 feed returns across companies).
 */
export interface SiteCase {
  groups: GroupDef[];
  users: PlacedUser[];
}

/** A login in the other case (`U3` for `u3`): logins are compared exactly, so it is another user (README, bad-input case 06). */
const otherCase = (login: string) => login.replace(/^./, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()));

/**
 * Twins a login may have that are other users (logins are compared exactly): the other case; the
 * login with é appended, composed against decomposed (NFC `\u00e9` against NFD `e\u0301`); a
 * trailing space; a byte-order mark before it; a zero-width space after it. Each pair is the
 * earlier user's login and the later one's.
 */
type Twin = 'case' | 'nfd' | 'space' | 'bom' | 'zwsp';
const twinOf = (login: string, twin: Twin): [string, string] => {
  switch (twin) {
    case 'case':
      return [login, otherCase(login)];
    case 'nfd':
      return [`${login}\u00e9`, `${login}e\u0301`];
    case 'space':
      return [login, `${login} `];
    case 'bom':
      return [login, `\ufeff${login}`];
    case 'zwsp':
      return [login, `${login}\u200b`];
  }
};

/**
 * Logins shared: a later user takes a twin of an earlier one's login (twinOf; the earlier one's is
 * changed too where the twin needs it), in any company, or the login as it is when the two are in
 * different companies (the integration feed, across companies, then sends one login twice, told
 * apart by partyNumber).
 */
function shareLogins(users: PlacedUser[], shares: readonly { from: number; to: number; same: boolean; twin?: Twin }[]): PlacedUser[] {
  const out = users.slice();
  for (const { from, to, same, twin = 'case' } of shares) {
    const [a, b] = [from % out.length, to % out.length].sort((x, y) => x - y) as [number, number];
    if (a === b) continue;
    const [first, login] = same ? [out[a]!.user.login, out[a]!.user.login] : twinOf(out[a]!.user.login, twin);
    const takenBy = (login: string, at: number) => out.some((p, i) => i !== at && p.company === out[at]!.company && p.user.login === login);
    if (first !== out[a]!.user.login) {
      if (takenBy(first, a) || out[a]!.user.fields.some((f) => f.field === 'partyNumber')) continue;
      out[a] = { ...out[a]!, user: { ...out[a]!.user, login: first } };
    }
    const taken = takenBy(login, b);
    if (!taken && login !== out[b]!.user.login) out[b] = { ...out[b]!, user: { ...out[b]!.user, login } };
  }
  return out;
}

/**
 * A generated site. `wide` (the generated-users property): up to eight users, integration users of
 * the partner organization too, some with a company that names none, and shared logins; otherwise
 * one to five users, integration users of the host only, each login its own, as the properties
 * whose models assume so (edits, exports, CSV) take them.
 */
export function siteCaseOf(wide: boolean): fc.Arbitrary<SiteCase> {
  // Either way, records may say keys twice (companyUser's `repeats`): JSON pages and zip entries carry them as sent.
  // About a quarter of wide cases refused, as of the narrow ones: more users, each broken less often.
  const brokenOneIn = wide ? 20 : 11;
  const kinds = wide ? ([...SITE_COMPANIES, 'integration', 'partner integration'] as const) : ([...SITE_COMPANIES, 'integration'] as const);
  return groupPool.chain((groups) =>
    fc
      .array(fc.constantFrom(...kinds), { minLength: 1, maxLength: wide ? 8 : 5, size: 'small' })
      .chain((chosen) =>
        fc.tuple(
          fc.tuple(
            ...chosen.map((kind, i) =>
              kind === '_host' || kind === 'partner1'
                ? companyUser(i, groups.length, brokenOneIn, true).map((user): PlacedUser => ({ company: kind, user }))
                : wide
                  ? integrationUserOf(i, groups.length, kind === 'integration' ? '_host' : 'partner1', brokenOneIn, true).map((user): PlacedUser => ({
                      company: user.company!.loginName,
                      user,
                    }))
                  : integrationUser(i, groups.length, 11, true).map((user): PlacedUser => ({ company: '_host', user })),
            ),
          ),
          wide
            ? fc.array(fc.record({ from: fc.nat(), to: fc.nat(), same: fc.boolean(), twin: fc.constantFrom<Twin>('case', 'nfd', 'space', 'bom', 'zwsp') }), {
                maxLength: 2,
              })
            : fc.constant([]),
        ),
      )
      .map(([users, shares]) => ({ groups, users: shareLogins(users, shares) })),
  );
}

export const siteCase: fc.Arbitrary<SiteCase> = siteCaseOf(false);

/** The entry of a field that sets its column: the exact canonical spelling, else the first in code-unit order (README: two spellings of one field). */
export function winningEntries(user: GeneratedUser): Map<string, Json> {
  const kept = new Map<string, SentField>();
  for (const entry of user.fields) {
    const other = kept.get(entry.field);
    if (other === undefined || entry.key === entry.field || (other.key !== other.field && entry.key < other.key)) kept.set(entry.field, entry);
  }
  return new Map([...kept].map(([field, entry]) => [field, entry.value]));
}

function groupJson(groups: readonly GroupDef[], form: ItemForm | undefined) {
  return (index: number): Json => {
    const g = groups[index]!;
    return itemInForm({ variableName: g.variableName, label: g.label, type: g.type }, form);
  };
}

const permissionJson = (p: PermissionItem, form: ItemForm | undefined): Json =>
  itemInForm({ type: p.type, variableName: p.variableName, name: p.name, hasAccess: p.hasAccess }, form);

/** An item (a group, a permission) sent with `repeat.key` (under the key its form sends it) said first with `repeat.earlier`. */
function itemSaidTwice(item: Json, repeat: { key: string; earlier: Json } | undefined, form: ItemForm | undefined): Json {
  if (repeat === undefined) return item;
  return new RawJson(`{${JSON.stringify(form?.keys[repeat.key] ?? repeat.key)}:${wireText(repeat.earlier)},${wireText(item).slice(1)}`);
}

/** A list of items (`{"items": [...]}`) sent with its `items` said first with `earlier`. */
function itemsSaidTwice(list: Json | undefined, earlier: Json | undefined): Json | undefined {
  if (earlier === undefined || list === undefined) return list;
  return new RawJson(`{"items":${wireText(earlier)},${wireText(list).slice(1)}`);
}

/**
 * What follows a record's fields: its custom fields, company, groups and access permissions; `sent`:
 * as sent (list and item keys said twice), else as read (the last copies).
 */
function addAfterFields(record: Record<string, Json>, user: GeneratedUser, groups: readonly GroupDef[], sent = false): void {
  for (const [key, value] of user.custom) record[key] = sent ? value : lastCopy(value);
  if (user.company) record.company = user.brokenCompany ? user.brokenCompany.value : user.company;
  const repeat = sent ? user.itemRepeats : undefined;
  const lists = sent ? user.listRepeats : undefined;
  const forms = user.itemForms;
  const g = relationJson(user.groups, (i) => itemSaidTwice(groupJson(groups, forms?.groups)(i), repeat?.groups, forms?.groups));
  const p = relationJson(user.accessPermissions, (item) =>
    itemSaidTwice(permissionJson(item, forms?.accessPermissions), repeat?.accessPermissions, forms?.accessPermissions),
  );
  if (g !== undefined) record.groups = itemsSaidTwice(g, lists?.groups)!;
  if (p !== undefined) record.accessPermissions = itemsSaidTwice(p, lists?.accessPermissions)!;
}

/**
 * The user as CPQ sends it (links aside) and as it is read (a key said twice as its last copy), as
 * exact JSON text. An integration user is read from
 * both feeds and stored as one record: the v19 copy (every field, groups) over the v16 one
 * (no partyId, partyNumber or company; access permissions), which together are the whole record.
 */
export function sentText(user: GeneratedUser, groups: readonly GroupDef[]): string {
  const record: Record<string, Json> = { login: user.login };
  for (const entry of user.fields) record[entry.key] = entry.value;
  addAfterFields(record, user, groups);
  return wireText(record);
}

/** Adds a generated user to the simulator exactly as generated: canonical keys plus the spelling each is sent under. */
export function addToSimulator(sim: CpqSimulator, placed: PlacedUser, groups: readonly GroupDef[]): void {
  const { user } = placed;
  const primary = new Map<string, number>();
  user.fields.forEach((entry, i) => {
    const kept = primary.get(entry.field);
    if (kept === undefined || (entry.key === entry.field && user.fields[kept]!.key !== entry.field)) primary.set(entry.field, i);
  });
  const record: Record<string, Json> = { login: user.login };
  const spelling: Record<string, string> = {};
  user.fields.forEach((entry, i) => {
    if (primary.get(entry.field) === i) {
      record[entry.field] = entry.value;
      if (entry.key !== entry.field) spelling[entry.field] = entry.key;
    } else {
      record[entry.key] = entry.value; // a second spelling: an extra key as far as the simulator is concerned
    }
  });
  addAfterFields(record, user, groups, true);
  // Keys said twice: each earlier copy before the value, under the key as sent. The simulator holds
  // the last copy, and reads it (login, dateModified, partyNumber, company...) as the product must.
  const earlierCopies: Record<string, Json[]> = {};
  for (const key of Object.keys(record)) {
    const wire = spelling[key] ?? key;
    const earlier = (user.repeats ?? []).filter((r) => r.key === wire).map((r) => r.earlier);
    if (earlier.length > 0) earlierCopies[key] = earlier;
  }
  sim.addUser(placed.company, record, { exact: true, spelling, earlierCopies });
}

/** Empties the simulator and every cpq table (migrations kept): a new case without a new database, which costs ~1 s. */
export async function resetSite(sim: CpqSimulator, t: TestDatabase): Promise<void> {
  for (const company of sim.companyLogins()) for (const user of sim.users(company)) sim.deleteUser(company, String(user.login));
  const tables = await t.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'cpq' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'kysely%'`,
  );
  await t.query(`TRUNCATE ${tables.map((x) => `cpq."${x.name}"`).join(', ')} RESTART IDENTITY CASCADE`);
}

// ------------------------------------------------------------------ expected rows

const literal = (value: Json): string | null => {
  if (value === null) return null;
  if (value instanceof RawJson) return value.text;
  if (typeof value === 'string' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
};
/**
 * The whole number a literal or a string of digits names, computed exactly (`1.8E17`, `100.0`,
 * `1200e-2`, ` 42 `): what an integer column holds (README "Tables").
 */
export function wholeNumber(text: string): bigint {
  const m = /^\s*(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?\s*$/.exec(text);
  if (!m) throw new Error(`wholeNumber: not a number: ${text}`);
  const [, sign, whole = '', fraction = '', exponent = '0'] = m;
  let digits = whole + fraction;
  const shift = Number(exponent) - fraction.length;
  if (shift < 0) {
    const cut = digits.length + shift;
    if (!/^0*$/.test(digits.slice(Math.max(cut, 0)))) throw new Error(`wholeNumber: not whole: ${text}`);
    digits = digits.slice(0, Math.max(cut, 0)) || '0';
  }
  const n = BigInt(digits) * 10n ** BigInt(Math.max(shift, 0));
  return sign === '-' ? -n : n;
}
const integer = (value: Json): string | null => {
  const text = literal(value);
  return text === null || text === '' ? null : wholeNumber(text).toString();
};

/** Column -> text (SQL NULL as null) for the typed columns, as `columnsAsText` renders them. */
export function expectedColumns(placed: PlacedUser): Record<string, string | null> {
  const values = winningEntries(placed.user);
  const company = placed.user.company;
  const out: Record<string, string | null> = { company_name: company ? company.name : null, is_integration_user: String(company !== undefined) };
  for (const spec of USER_FIELDS) {
    const value = values.has(spec.field) ? values.get(spec.field)! : null;
    switch (spec.kind) {
      case 'text':
      case 'boolean':
        out[spec.column] = literal(value);
        break;
      case 'bigint':
        out[spec.column] = integer(value);
        break;
      case 'timestamp':
        out[spec.column] = value === null || value === '' ? null : exactUtc(value as string);
        break;
      case 'choiceText':
      case 'choiceInt': {
        const isObject = value !== null && typeof value === 'object' && !(value instanceof RawJson) && !Array.isArray(value);
        const choice = isObject ? (value as Record<string, Json>) : { value };
        const raw = choice.value === undefined ? null : choice.value;
        out[spec.column] = spec.kind === 'choiceInt' ? integer(raw) : literal(raw);
        out[`${spec.column}_display`] = choice.displayValue === undefined ? null : literal(choice.displayValue);
        break;
      }
    }
  }
  return out;
}

/** A permission's hasAccess as has_access holds it: true, false, or null; "true" and "false" as a boolean column reads them. */
const accessOf = (value: Json): boolean | null => (value === null ? null : value === true || value === 'true');

/** Group memberships and permissions the user must hold after its first read (missing or null relations: none). */
export function expectedRelations(placed: PlacedUser, groups: readonly GroupDef[]) {
  const { user } = placed;
  const names =
    user.groups.kind === 'items' ? [...new Set(user.groups.items.map((i) => groups[i]!.variableName))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : [];
  const permissions = new Map<string, { type: string; variable_name: string; name: string | null; has_access: boolean | null }>();
  if (user.accessPermissions.kind === 'items') {
    // A permission listed twice counts once, whatever the order: the copy granting access, then the greater name.
    const access = (a: boolean | null) => (a === true ? 2 : a === false ? 1 : 0);
    for (const p of user.accessPermissions.items) {
      const row = { type: p.type, variable_name: p.variableName, name: literal(p.name), has_access: accessOf(p.hasAccess) };
      const key = JSON.stringify([p.type, p.variableName]);
      const kept = permissions.get(key);
      const outranks =
        kept === undefined ||
        (access(row.has_access) !== access(kept.has_access)
          ? access(row.has_access) > access(kept.has_access)
          : row.name !== kept.name && row.name !== null && (kept.name === null || row.name > kept.name));
      if (outranks) permissions.set(key, row);
    }
  }
  const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return { groups: names, permissions: [...permissions.values()].sort((a, b) => byCodeUnit(a.type, b.type) || byCodeUnit(a.variable_name, b.variable_name)) };
}

// ------------------------------------------------------------------ reading the database

const ISO_UTC = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;

/** Every typed column of cpq.users as text, in the renderings expectedColumns uses. */
export function columnsAsText(alias: string): string {
  const columns = [
    { column: 'company_name', kind: 'text' },
    { column: 'is_integration_user', kind: 'boolean' },
    ...USER_FIELDS.flatMap((u) =>
      isChoice(u.kind)
        ? [
            { column: u.column, kind: u.kind },
            { column: `${u.column}_display`, kind: 'text' },
          ]
        : [{ column: u.column, kind: u.kind }],
    ),
  ];
  return columns
    .map(({ column, kind }) =>
      kind === 'timestamp' ? `to_char(${alias}.${column} AT TIME ZONE 'UTC', ${ISO_UTC}) AS "${column}"` : `${alias}.${column}::text AS "${column}"`,
    )
    .join(', ');
}

/** The jsonb record `x` (an SQL expression) without the links CPQ adds (to the record and to expanded relations): what the generator wrote. */
export const withoutLinks = (x: string) => `((${x} - 'links')
  || CASE WHEN jsonb_typeof(${x}->'groups') = 'object' THEN jsonb_build_object('groups', (${x}->'groups') - 'links') ELSE '{}'::jsonb END
  || CASE WHEN jsonb_typeof(${x}->'accessPermissions') = 'object' THEN jsonb_build_object('accessPermissions', (${x}->'accessPermissions') - 'links') ELSE '{}'::jsonb END)`;

/** cpq.users' raw (as `u`) without CPQ's links. */
export const RAW_WITHOUT_LINKS = withoutLinks('u.raw');

/**
 * Asserts that the database holds exactly these users (of `site`: the default one of a single-site
 * test), by the documented mapping, raw compared as jsonb in Postgres.
 */
/**
 * What a later read may leave as an earlier one stored it: memberships and permissions a record
 * without items leaves alone (the user whose relations hold), and a raw the content digest did
 * not see change (README "Restated records": a field's spelling, a time at another offset...).
 */
export interface StoredAfter {
  relationsOf(placed: PlacedUser): GeneratedUser;
  rawAlso(placed: PlacedUser): string[];
}

export async function expectStored(
  t: TestDatabase,
  placed: readonly PlacedUser[],
  groups: readonly GroupDef[],
  site = 'default',
  after?: StoredAfter,
): Promise<void> {
  const rows = await t.query<Record<string, string | null>>(
    `SELECT u.id::text AS id, u.company_login, u.login, ${columnsAsText('u')} FROM cpq.users u
     WHERE u.site = $1 AND u.deleted_at IS NULL ORDER BY u.company_login, u.login`,
    [site],
  );
  const key = (company: string, login: string) => `${company}\u0001${login}`;
  expect(rows.map((r) => key(r.company_login!, r.login!)).sort(), 'present users').toEqual(placed.map((p) => key(p.company, p.user.login)).sort());
  for (const p of placed) {
    const where = `${p.company}/${p.user.login}`;
    const row = rows.find((r) => r.company_login === p.company && r.login === p.user.login)!;
    const { id, company_login: _c, login: _l, ...columns } = row;
    expect(columns, `${where}: typed columns`).toEqual(expectedColumns(p));
    const sent = sentText(p.user, groups);
    const [raw] = await t.query<{ equal: boolean; stored: string }>(
      `SELECT ${RAW_WITHOUT_LINKS} = ANY($1::jsonb[]) AS equal, ${RAW_WITHOUT_LINKS}::text AS stored FROM cpq.users u WHERE u.id = $2`,
      [[sent, ...(after?.rawAlso(p) ?? [])], id],
    );
    expect(raw!.equal, `${where}: raw = sent as jsonb\n  sent:   ${sent}\n  stored: ${raw!.stored}`).toBe(true);
    const memberships = await t.query<{ g: string }>(`SELECT group_variable_name AS g FROM cpq.user_groups WHERE user_id = $1 ORDER BY 1`, [id]);
    const permissions = await t.query(
      `SELECT type, variable_name, name, has_access FROM cpq.user_access_permissions WHERE user_id = $1 ORDER BY type, variable_name`,
      [id],
    );
    const expected = expectedRelations(after ? { ...p, user: after.relationsOf(p) } : p, groups);
    const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    expect(memberships.map((m) => m.g).sort(byCodeUnits), `${where}: groups`).toEqual(expected.groups);
    expect(
      permissions.sort((a, b) => byCodeUnits(String(a.type), String(b.type)) || byCodeUnits(String(a.variable_name), String(b.variable_name))),
      `${where}: access permissions`,
    ).toEqual(expected.permissions);
  }
  const used = new Set(placed.flatMap((p) => expectedRelations(after ? { ...p, user: after.relationsOf(p) } : p, groups).groups));
  const stored = await t.query<{ variable_name: string; label: string | null; type: string | null }>(
    `SELECT variable_name, label, type FROM cpq.groups WHERE site = $1`,
    [site],
  );
  for (const g of groups.filter((d) => used.has(d.variableName))) {
    expect(
      stored.find((s) => s.variable_name === g.variableName),
      `group ${g.variableName}`,
    ).toEqual({ variable_name: g.variableName, label: literal(g.label), type: literal(g.type) });
  }
}
