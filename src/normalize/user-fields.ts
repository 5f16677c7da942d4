/**
 * The one mapping from CPQ user fields to cpq.users columns. Field names drift between API
 * versions and samples (lastname/lastName, isSuperUserPermEnabled/isUserAdminPermEnabled), so
 * every lookup goes through `canonicalFieldName`, which ignores case and knows the aliases.
 * Correct this file when a real site shows a field we do not know yet.
 */

export type FieldKind = 'text' | 'boolean' | 'bigint' | 'timestamp' | 'choiceText' | 'choiceInt';

export interface UserField {
  /** Canonical (v19) field name. */
  field: string;
  /** Column in cpq.users; choice fields also have `${column}_display`. */
  column: string;
  kind: FieldKind;
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const f = (field: string, kind: FieldKind, column = snake(field)): UserField => ({ field, column, kind });
const text = (...names: string[]) => names.map((n) => f(n, 'text'));
const address = (prefix: 'bill' | 'ship') =>
  text(
    ...['FirstName', 'LastName', 'Company', 'Company2', 'Address1', 'Address2', 'City', 'StateProvince', 'Zip', 'Country', 'Phone', 'Fax', 'Email'].map(
      (s) => prefix + s,
    ),
  );

export const USER_FIELDS: readonly UserField[] = [
  f('partyId', 'bigint'),
  f('partyNumber', 'text'),
  f('id', 'bigint', 'cpq_id'),
  ...text('firstName', 'lastName', 'email', 'phone', 'fax', 'jobTitle', 'approvalDelegate', 'externalSsoId', 'partnerLogin', 'sfdcOrgId'),
  ...address('bill'),
  ...address('ship'),
  ...[
    'separateShipAddr',
    'isNotifyEmail',
    'isNotifyFax',
    'isUserAdminPermEnabled',
    'isAccessAdminPermEnabled',
    'isApplicationAdminPermEnabled',
    'isProxyPermEnabled',
    'isWebServicesOnly',
    'isMobileEnabled',
  ].map((n) => f(n, 'boolean')),
  f('type', 'choiceText'),
  f('language', 'choiceText'),
  f('currency', 'choiceText'),
  f('numberFormat', 'choiceInt'),
  f('timeZone', 'choiceText'),
  f('units', 'choiceInt'),
  f('dateFormat', 'choiceInt'),
  f('status', 'choiceInt'),
  f('enabledForSso', 'choiceText'),
  f('dateAdded', 'timestamp'),
  f('dateModified', 'timestamp'),
  f('lastLogin', 'timestamp'),
  f('oauthClientId', 'text'),
];

/** Fields that are not columns of their own but structure the record. */
const STRUCTURAL_FIELDS = ['login', 'company', 'groups', 'accessPermissions', 'links', 'loginName', 'name', 'items', 'variableName', 'label', 'hasAccess', 'value', 'displayValue'];

/** Other spellings seen for the same field (lower-cased). */
const ALIASES: Record<string, string> = {
  issuperuserpermenabled: 'isUserAdminPermEnabled',
};

const CANONICAL = new Map<string, string>();
for (const name of [...USER_FIELDS.map((u) => u.field), ...STRUCTURAL_FIELDS]) CANONICAL.set(name.toLowerCase(), name);
for (const [alias, name] of Object.entries(ALIASES)) CANONICAL.set(alias, name);

/** Every lower-cased field name the mapping reads (canonical names, structural fields, aliases): the rest of a record is custom fields. */
export const MAPPED_FIELD_KEYS: readonly string[] = [...CANONICAL.keys()].sort();

/** The canonical name of a field as received, or undefined for a field we do not map (kept in raw only). */
export function canonicalFieldName(received: string): string | undefined {
  // Keys repeat on every record: remember each spelling seen rather than lower-casing it again.
  let name = BY_SPELLING.get(received);
  if (name === undefined) {
    name = CANONICAL.get(received.toLowerCase()) ?? null;
    if (BY_SPELLING.size < 10_000) BY_SPELLING.set(received, name);
  }
  return name ?? undefined;
}
const BY_SPELLING = new Map<string, string | null>();

/**
 * When two received keys map to the same field (a record carrying both `lastname` and `lastName`),
 * the exact canonical spelling wins, else the first one read: whether `key` replaces what was kept.
 */
export function spellingWins(key: string, name: string, alreadyKept: boolean): boolean {
  return !alreadyKept || key === name;
}

/** Re-keys one JSON object by canonical field names (see spellingWins for two spellings of one). */
export function canonicalize(record: Record<string, unknown>): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(record)) {
    const name = canonicalFieldName(key);
    if (name !== undefined && spellingWins(key, name, out.has(name))) out.set(name, value);
  }
  return out;
}

/** Every cpq.users column the mapping fills, in a fixed order (choice fields bring their _display column). */
export const USER_VALUE_COLUMNS: readonly string[] = USER_FIELDS.flatMap((u) =>
  u.kind === 'choiceText' || u.kind === 'choiceInt' ? [u.column, `${u.column}_display`] : [u.column],
);

export const COLUMN_PG_TYPE: Record<FieldKind, string> = {
  text: 'text',
  boolean: 'boolean',
  bigint: 'bigint',
  timestamp: 'timestamptz',
  choiceText: 'text',
  choiceInt: 'integer',
};

/** Column name and Postgres type of every USER_VALUE_COLUMNS entry, same order. */
export const USER_VALUE_COLUMN_TYPES: readonly { column: string; pgType: string }[] = USER_FIELDS.flatMap((u) =>
  u.kind === 'choiceText' || u.kind === 'choiceInt'
    ? [
        { column: u.column, pgType: COLUMN_PG_TYPE[u.kind] },
        { column: `${u.column}_display`, pgType: 'text' },
      ]
    : [{ column: u.column, pgType: COLUMN_PG_TYPE[u.kind] }],
);
