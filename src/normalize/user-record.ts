import { createHash } from 'node:crypto';
import { displayValue, integerText, isLosslessNumber, markedIntegerDigits, stringifyExactJson } from '../cpq/json.js';
import { USER_FIELDS, USER_VALUE_COLUMN_TYPES, canonicalFieldName, canonicalize, type UserField } from './user-fields.js';

/** A CPQ record that cannot be loaded; the message names the record and the field. */
export class RecordError extends Error {
  override name = 'RecordError';
}

export interface GroupRow {
  variableName: string;
  label: string | null;
  type: string | null;
}

export interface AccessPermissionRow {
  type: string;
  variableName: string;
  name: string | null;
  hasAccess: boolean | null;
}

/** A value ready for COPY: text, boolean or SQL NULL. */
export type ColumnValue = string | boolean | null;

export interface UserRow {
  companyLogin: string;
  login: string;
  companyName: string | null;
  isIntegrationUser: boolean;
  /** One value per USER_VALUE_COLUMNS entry, same order. */
  values: ColumnValue[];
  /** Undefined when the record did not carry the relationship (not expanded): memberships are left alone. */
  groups: GroupRow[] | undefined;
  accessPermissions: AccessPermissionRow[] | undefined;
  /** The record as received, as exact JSON text. */
  raw: string;
  /** Digest of everything the record says (links excepted), to tell a changed record from a re-read one. */
  contentHash: string;
  /** The change-log diff should this user be new: `{"column": {"old": null, "new": value}}` for each value, and its groups and permissions as added. */
  insertDiff: string;
  dateModified: string | null;
}

export interface RecordSource {
  /** The company the record belongs to (the path segment for company users). */
  companyLogin: string;
  isIntegrationUser: boolean;
  /** Where it came from, for error messages (a URL without credentials). */
  origin: string;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const NUL = '\u0000';
const CANONICAL_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;
const DATE_PART = /^(\d{4})-(\d{2})-(\d{2})T/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isCalendarDay(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = month === 2 && (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0));
  return day <= DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  const digits = displayValue(value);
  if (digits !== undefined) return digits;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isLosslessNumber(value);
}

class FieldReader {
  constructor(private readonly where: string) {}

  fail(field: string, message: string): never {
    throw new RecordError(`${this.where}: field "${field}" ${message}`);
  }

  text(field: string, value: unknown): string | null {
    if (value === null || value === undefined) return null;
    if (typeof value === 'string') {
      const digits = markedIntegerDigits(value);
      if (digits !== undefined) return digits;
      if (value.includes(NUL)) this.fail(field, 'contains a NUL character, which Postgres text cannot store');
      return value;
    }
    if (typeof value === 'number' || typeof value === 'boolean' || isLosslessNumber(value)) return String(value);
    return this.fail(field, `must be text, got ${describe(value)}`);
  }

  boolean(field: string, value: unknown): boolean | null {
    if (value === null || value === undefined) return null;
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    return this.fail(field, `must be true or false, got ${describe(value)}`);
  }

  bigint(field: string, value: unknown): string | null {
    if (value === null || value === undefined || value === '') return null;
    const digits = integerText(value);
    if (digits === undefined) return this.fail(field, `must be a whole number, got ${describe(value)}`);
    const n = BigInt(digits);
    if (n < INT64_MIN || n > INT64_MAX) return this.fail(field, `${digits} does not fit in a 64-bit integer`);
    return n.toString();
  }

  integer(field: string, value: unknown): string | null {
    const digits = this.bigint(field, value);
    if (digits !== null && (BigInt(digits) > 2147483647n || BigInt(digits) < -2147483648n)) {
      this.fail(field, `${digits} does not fit in a 32-bit integer`);
    }
    return digits;
  }

  timestamp(field: string, value: unknown): string | null {
    if (value === null || value === undefined || value === '') return null;
    const date = typeof value === 'string' ? DATE_PART.exec(value) : null;
    // V8 rolls 2025-02-31 over to March 3rd: check the calendar day ourselves.
    if (!date || !isCalendarDay(Number(date[1]), Number(date[2]), Number(date[3])) || Number.isNaN(Date.parse(value as string))) {
      return this.fail(field, `must be an ISO-8601 date-time, got ${describe(value)}`);
    }
    // CPQ's own format is already canonical: no need to parse and re-print it.
    return CANONICAL_TIMESTAMP.test(value as string) ? (value as string) : new Date(value as string).toISOString();
  }
}

function readField(reader: FieldReader, spec: UserField, value: unknown): ColumnValue[] {
  switch (spec.kind) {
    case 'text':
      return [reader.text(spec.field, value)];
    case 'boolean':
      return [reader.boolean(spec.field, value)];
    case 'bigint':
      return [reader.bigint(spec.field, value)];
    case 'timestamp':
      return [reader.timestamp(spec.field, value)];
    case 'choiceText':
    case 'choiceInt': {
      // {value, displayValue}; a bare scalar is read as the value alone.
      const choice = isRecord(value) ? canonicalize(value) : new Map([['value', value]]);
      const raw = choice.get('value');
      const main = spec.kind === 'choiceInt' ? reader.integer(`${spec.field}.value`, raw) : reader.text(`${spec.field}.value`, raw);
      return [main, reader.text(`${spec.field}.displayValue`, choice.get('displayValue'))];
    }
  }
}

function itemsOf(reader: FieldReader, field: string, value: unknown): unknown[] | undefined {
  if (value === undefined || value === null) return undefined;
  const items = isRecord(value) ? canonicalize(value).get('items') : value;
  if (items === undefined || items === null) return [];
  if (!Array.isArray(items)) return reader.fail(`${field}.items`, `must be an array, got ${describe(items)}`);
  return items;
}

function readGroups(reader: FieldReader, value: unknown): GroupRow[] | undefined {
  const items = itemsOf(reader, 'groups', value);
  if (items === undefined) return undefined;
  const byName = new Map<string, GroupRow>();
  items.forEach((item, i) => {
    if (!isRecord(item)) reader.fail(`groups.items[${i}]`, `must be an object, got ${describe(item)}`);
    const g = canonicalize(item);
    const variableName = reader.text(`groups.items[${i}].variableName`, g.get('variableName'));
    if (!variableName) reader.fail(`groups.items[${i}].variableName`, 'is missing');
    byName.set(variableName, {
      variableName,
      label: reader.text(`groups.items[${i}].label`, g.get('label')),
      type: reader.text(`groups.items[${i}].type`, g.get('type')),
    });
  });
  return [...byName.values()].sort((a, b) => (a.variableName < b.variableName ? -1 : a.variableName > b.variableName ? 1 : 0));
}

function readAccessPermissions(reader: FieldReader, value: unknown): AccessPermissionRow[] | undefined {
  const items = itemsOf(reader, 'accessPermissions', value);
  if (items === undefined) return undefined;
  const byKey = new Map<string, AccessPermissionRow>();
  items.forEach((item, i) => {
    const at = `accessPermissions.items[${i}]`;
    if (!isRecord(item)) reader.fail(at, `must be an object, got ${describe(item)}`);
    const p = canonicalize(item);
    const type = reader.text(`${at}.type`, p.get('type'));
    const variableName = reader.text(`${at}.variableName`, p.get('variableName'));
    if (!type) reader.fail(`${at}.type`, 'is missing');
    if (!variableName) reader.fail(`${at}.variableName`, 'is missing');
    byKey.set(`${type}\u0001${variableName}`, {
      type,
      variableName,
      name: reader.text(`${at}.name`, p.get('name')),
      hasAccess: reader.boolean(`${at}.hasAccess`, p.get('hasAccess')),
    });
  });
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
}

/** Fields we have no column for (kept in raw), in a stable order, as JSON; '' when there are none. */
function unknownFieldsJson(record: Record<string, unknown>): string {
  const unknown = Object.keys(record)
    .filter((k) => canonicalFieldName(k) === undefined)
    .sort();
  return unknown.length === 0 ? '' : stringifyExactJson(unknown.map((k) => [k, record[k]]));
}

/**
 * Digest of everything a record says: every mapped value, the sorted groups and permissions,
 * and the unmapped fields. Links, key order and field-name spelling do not count.
 */
function contentDigest(row: Omit<UserRow, 'contentHash' | 'raw' | 'dateModified' | 'insertDiff'>, unknown: string): string {
  let text = `${row.companyLogin}\u0001${row.login}\u0001${row.isIntegrationUser}\u0001${row.companyName}\u0001`;
  for (const v of row.values) text += v === null ? '\u0002' : `${v}\u0001`;
  text += row.groups === undefined ? '\u0003' : JSON.stringify(row.groups);
  text += row.accessPermissions === undefined ? '\u0003' : JSON.stringify(row.accessPermissions);
  return createHash('sha1').update(text + unknown).digest('base64');
}

/** How a value of each column is written in a diff: the JSON the change log uses for that type. */
const DIFF_JSON = USER_VALUE_COLUMN_TYPES.map(({ column, pgType }) => ({
  prefix: `${JSON.stringify(column)}:{"old":null,"new":`,
  bare: pgType === 'boolean' || pgType === 'integer' || pgType === 'bigint',
}));

/**
 * Written here, where the values are at hand, because building it in SQL for every inserted row
 * costs more than the insert itself; only the rows that turn out to be new have it parsed.
 */
function insertDiff(row: Omit<UserRow, 'contentHash' | 'raw' | 'dateModified' | 'insertDiff'>): string {
  const parts: string[] = [];
  if (row.companyName !== null) parts.push(`"company_name":{"old":null,"new":${JSON.stringify(row.companyName)}}`);
  parts.push(`"is_integration_user":{"old":null,"new":${row.isIntegrationUser}}`);
  row.values.forEach((value, i) => {
    if (value === null) return;
    const column = DIFF_JSON[i]!;
    parts.push(`${column.prefix}${column.bare ? String(value) : JSON.stringify(value)}}`);
  });
  // Same shapes as the merge writes for updated users (src/sync/merge.ts).
  if (row.groups?.length) parts.push(`"groups":{"added":${JSON.stringify(row.groups.map((g) => g.variableName))},"removed":[]}`);
  if (row.accessPermissions?.length) {
    parts.push(`"accessPermissions":{"added":${JSON.stringify(row.accessPermissions)},"removed":[],"changed":[]}`);
  }
  return `{${parts.join(',')}}`;
}

/** Turns one user record as received into the row we store. Throws RecordError naming record and field. */
export function normalizeUser(record: unknown, source: RecordSource, index: number): UserRow {
  if (!isRecord(record)) {
    throw new RecordError(`record ${index} of ${source.origin}: expected a user object, got ${describe(record)}`);
  }
  const fields = canonicalize(record);
  const loginValue = fields.get('login');
  if (typeof loginValue !== 'string' || loginValue.trim() === '') {
    throw new RecordError(`record ${index} of ${source.origin}: field "login" is missing or not text (got ${describe(loginValue)})`);
  }
  const reader = new FieldReader(`user "${source.companyLogin}/${loginValue}" (record ${index} of ${source.origin})`);
  const login = reader.text('login', loginValue)!;
  const values: ColumnValue[] = [];
  for (const spec of USER_FIELDS) values.push(...readField(reader, spec, fields.get(spec.field)));
  const company = fields.get('company');
  const companyName = isRecord(company) ? reader.text('company.name', canonicalize(company).get('name')) : null;
  const dateModified = reader.timestamp('dateModified', fields.get('dateModified'));
  const raw = stringifyExactJson(record);
  if (raw.includes('\\u0000')) reader.fail('(record)', 'contains a NUL character, which Postgres jsonb cannot store');
  const row = {
    companyLogin: source.companyLogin,
    login,
    companyName,
    isIntegrationUser: source.isIntegrationUser,
    values,
    groups: readGroups(reader, fields.get('groups')),
    accessPermissions: readAccessPermissions(reader, fields.get('accessPermissions')),
  };
  return { ...row, raw, contentHash: contentDigest(row, unknownFieldsJson(record)), insertDiff: insertDiff(row), dateModified };
}

export { isRecord };
