import { hash } from 'node:crypto';
import {
  countValue,
  describeValue,
  shownName,
  integerValue,
  isJsonObject,
  isLosslessNumber,
  markedNumberLiteral,
  sentString,
  numberLiteralOf,
  stringifyExactJson,
  unstorableNumber,
} from '../exact-json.js';
import { FieldPicker, fieldNameKey, isMappedField } from '../cpq/user-fields.js';
import { EXPANDED_LIST_PAGING, PagingFields, RepeatedPagingFieldError } from '../cpq/json-items.js';
import { SECOND_FRACTION, canonicalTimestampMs, isCalendarDay, withExplicitZone } from '../date-time.js';
import { USER_FIELDS, type UserField } from './user-fields.js';

/** A CPQ record that cannot be loaded; the message names the record and the field. */
export class RecordError extends Error {
  override name = 'RecordError';
}

export interface GroupRow {
  variableName: string;
  label: string | null;
  type: string | null;
}

/** Whether `row`'s group `variableName` said its label or type (UserRow.groupsDescribed). */
export function groupDescribed(row: Pick<UserRow, 'groupsDescribed'>, variableName: string): boolean {
  const described = row.groupsDescribed;
  return typeof described === 'boolean' ? described : described.has(variableName);
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
  /**
   * Which of its groups say their label or type (a JSON read: a null label is a cleared one), and
   * which name only their variableName (a CSV export, which has no label, or an item of a JSON
   * read that leaves them out: it leaves the stored ones): true for all, false for none, else the
   * names of those that do. Per item: one bare item beside described ones is not a cleared label.
   * Read it with groupDescribed.
   */
  groupsDescribed: boolean | ReadonlySet<string>;
  accessPermissions: AccessPermissionRow[] | undefined;
  /** The record as received, as exact JSON text. */
  raw: string;
  /** Digest of everything the record says (links excepted), to tell a changed record from a re-read one. */
  contentHash: string;
  dateModified: string | null;
}

export interface RecordSource {
  /** The company the record belongs to (the path segment for company users). */
  companyLogin: string;
  isIntegrationUser: boolean;
  /** Where it came from, for error messages (a URL without credentials). */
  origin: string;
  /** Where in origin, for error messages, when "record <index>" would not say (a zip export's entry and line). */
  position?: string;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const NUL = '\u0000';
/** NUL, or a character contentDigest marks with (\u0001-\u0005). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NUL_OR_DIGEST_MARK = /[\u0000-\u0005]/;
const DATE_PART = /^(\d{4})-(\d{2})-(\d{2})T/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/**
 * Longest login, partyNumber, group variableName and permission type/variableName, in UTF-8
 * bytes: they are keys of btree indexes, whose entries Postgres limits to about 2700 bytes.
 */
const MAX_KEY_BYTES = 1024;

/** What the digest keeps of one group or permission item (FieldReader.itemState). */
interface ItemState {
  extras: Map<string, [string, unknown]> | undefined;
  forms: string[] | undefined;
}

/** Marks, in FieldReader's extras, a lower-cased key that two spellings of one object share. */
const CLASH: [string, unknown] = ['', undefined];

class FieldReader {
  /**
   * Parts of nested objects that no column holds (see keepExtras): per object's path, its extras
   * by lower-cased key, with the key as sent. Most records have none.
   */
  private extras: Map<string, Map<string, [string, unknown]>> | undefined;

  /** Which groups read said a label or type (UserRow.groupsDescribed). */
  groupsDescribed: boolean | ReadonlySet<string> = false;
  /** Whether a text value holds a character the content digest separates values with (see contentDigest). */
  holdsDigestMarks = false;
  /**
   * Fields whose value was read from another JSON form than CPQ's own (5551234 for "5551234",
   * "true" for true, a time with an offset): the same column value, but another record, so the
   * digest counts the form. Top-level fields by name.
   */
  private otherForms: string[] | undefined;

  /**
   * Whether a group or permission item is being read (beginItem to endItem), and the parts it
   * read in another form. Its error labels carry its index, which must not count: its forms are
   * kept by its key.
   */
  private inItem = false;
  private itemParts: string[] | undefined;
  /** Per item key (groupPath, permissionPath), the parts read in another form; a later copy of an item replaces an earlier one's. */
  private itemForms: Map<string, string[]> | undefined;

  beginItem(): void {
    this.inItem = true;
    this.itemParts = undefined;
  }

  endItem(path: string): void {
    this.inItem = false;
    if (this.itemParts !== undefined) (this.itemForms ??= new Map()).set(path, this.itemParts);
    else this.itemForms?.delete(path);
  }

  /** What the digest keeps of the item at `path` (its extras and forms), to put back (restoreItem) when a copy read after it does not count. */
  itemState(path: string): ItemState {
    return { extras: this.extras?.get(path), forms: this.itemForms?.get(path) };
  }

  restoreItem(path: string, state: ItemState): void {
    if (state.extras === undefined) this.extras?.delete(path);
    else (this.extras ??= new Map()).set(path, state.extras);
    if (state.forms === undefined) this.itemForms?.delete(path);
    else (this.itemForms ??= new Map()).set(path, state.forms);
  }

  /**
   * Of two copies of one item of a user's list (a group or permission listed again), the one that
   * counts by `outranks`, whatever their order: `kept`, read first (`before`: its item's state),
   * or `copy`, just read. The digest then keeps what no column holds of that one (restoreItem puts
   * `kept`'s back). Each copy's itemText is worked out once, for the ranking.
   */
  countingCopy<C extends { text?: string }>(path: string, kept: C, before: ItemState, copy: C, outranks: (a: C, b: C) => boolean): C {
    kept.text ??= this.itemText(before);
    copy.text = this.itemText(this.itemState(path));
    if (outranks(copy, kept)) return copy;
    this.restoreItem(path, before);
    return kept;
  }

  /** An item's extras and forms (itemState) as one text, whatever its keys' order: to rank copies of one item ('' for none). */
  itemText({ extras, forms }: ItemState): string {
    if (extras === undefined && forms === undefined) return '';
    const parts: [string, unknown][] = [];
    for (const [name, entry] of extras ?? []) if (entry !== CLASH) parts.push([name, withSortedKeys(entry[1])]);
    parts.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return stringifyExactJson([parts, forms ?? []]);
  }

  /** The fields read from another form, for the digest; '' when none. */
  otherFormsText(): string {
    const fields = this.otherForms === undefined ? '' : this.otherForms.join('\u0001');
    if (this.itemForms === undefined || this.itemForms.size === 0) return fields;
    const items = [...this.itemForms.keys()].sort().map((path) => `${path}:${this.itemForms!.get(path)!.join(',')}`);
    return `${fields}\u0002${items.join('\u0001')}`;
  }

  private readInOtherForm(field: string): void {
    if (!this.inItem) (this.otherForms ??= []).push(field);
    // An item's label is groups[3].label: its part is what follows the last dot.
    else (this.itemParts ??= []).push(field.slice(field.lastIndexOf('.') + 1));
  }

  /** `where` names the record in errors; built only when one is thrown. */
  constructor(private readonly where: () => string) {}

  /**
   * The keys of `object` (just picked by `picker`) that no column reads, kept for the content
   * digest: a status {value, displayValue, reason} whose reason changed is a changed record, though
   * no column changed; so is one whose displayValue sent under a second spelling (the one no
   * column reads, FieldPicker.lost) changed. Kept as the rows are: a later copy of the same object
   * (a group or permission listed twice) replaces an earlier one, which restoreItem puts back when
   * the later copy is not the one that counts, and a key's spelling does not count (of
   * `Reason` and `reason` in one object, both are kept, each under its exact key). `path` names
   * the object (a group by its variableName); `pathOf(path)` is called only when there is
   * something to keep or replace, as this runs for every group and permission of every user.
   */
  keepExtras<P>(picker: FieldPicker, object: Record<string, unknown>, path: P, pathOf: (path: P) => string): void {
    if (picker.extras === 0 && picker.losers === 0) {
      // An earlier copy's extras are replaced by this copy's none.
      if (this.extras !== undefined) this.extras.delete(pathOf(path));
      return;
    }
    const kept = new Map<string, [string, unknown]>();
    for (const key of Object.keys(object)) {
      // A spelling that lost to another of the same part ({"label": "A", "Label": "B"}) is kept as an extra: no column holds it.
      if (!picker.isExtra(key) && !picker.lost(key)) continue;
      const lower = fieldNameKey(key);
      const other = kept.get(lower);
      if (other === undefined) {
        kept.set(lower, [key, object[key]]);
      } else {
        // Two spellings in one object (Reason and reason): both are data, each under its own
        // exact key (the lower-cased one left to mark the clash), whatever the object's order.
        if (other !== CLASH) kept.set(`${lower}\u0000${other[0]}`, other);
        kept.set(lower, CLASH);
        kept.set(`${lower}\u0000${key}`, [key, object[key]]);
      }
    }
    (this.extras ??= new Map()).set(pathOf(path), kept);
  }

  /** The kept extras as JSON, in path order, their values' keys sorted; '' when there are none. */
  extrasJson(): string {
    if (this.extras === undefined) return '';
    const parts: [string, unknown][] = [];
    for (const [path, kept] of this.extras) {
      for (const [name, entry] of kept) if (entry !== CLASH) parts.push([`${path}.${name}`, withSortedKeys(entry[1])]);
    }
    if (parts.length === 0) return '';
    return stringifyExactJson(parts.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Why a value is a number the record cannot be stored with (unstorableNumber), as the record's failure says it. */
  private unstorable(value: unknown): string | undefined {
    const number = unstorableNumber(value);
    return number === undefined ? undefined : `holds the number ${number}`;
  }

  fail(field: string, message: string): never {
    throw new RecordError(`${this.where()}: field "${field}" ${message}`);
  }

  text(field: string, value: unknown): string | null {
    const text = storedText(value);
    if (text === undefined) return this.fail(field, `must be text, got ${describeValue(value)}`);
    // A number: a double, or one the parser kept as its literal (a marked string, whose text is not
    // itself). Noted only for doubles, `1.50` and `"1.50"` had one digest, and raw kept the first (review HN).
    if (typeof value !== 'string' || text !== value) {
      if (text !== null) this.readInOtherForm(field);
    } else if (NUL_OR_DIGEST_MARK.test(value)) {
      if (value.includes(NUL)) this.fail(field, this.unstorable(value) ?? 'contains a NUL character, which Postgres text cannot store');
      // Group and permission items are digested as JSON: only the values written apart count.
      if (!this.inItem) this.holdsDigestMarks = true;
    }
    return text;
  }

  /** Text that is part of an index key (login, partyNumber, group and permission names): bounded in size. */
  key(field: string, value: unknown): string | null {
    const text = this.text(field, value);
    if (text !== null && text.length * 3 > MAX_KEY_BYTES) {
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > MAX_KEY_BYTES) this.fail(field, `is ${bytes} bytes long; at most ${MAX_KEY_BYTES} bytes are supported for this key field`);
    }
    return text;
  }

  boolean(field: string, value: unknown): boolean | null {
    const read = booleanValue(value);
    if (read === undefined) return this.fail(field, `must be true or false, got ${describeValue(value)}`);
    if (typeof value === 'string') this.readInOtherForm(field);
    return read;
  }

  bigint(field: string, value: unknown): string | null {
    if (value === '') this.readInOtherForm(field);
    if (value === null || value === undefined || value === '') return null;
    return this.whole(field, value, INT64_MIN, INT64_MAX, 'a 64-bit integer');
  }

  integer(field: string, value: unknown): string | null {
    return this.whole(field, value, INT32_MIN, INT32_MAX, 'a 32-bit integer');
  }

  /** A whole number in any notation (see integerValue), within [min, max]. */
  private whole(field: string, value: unknown, min: bigint, max: bigint, column: string): string | null {
    if (value === null || value === undefined || value === '') return null;
    const n = integerValue(value);
    if (n === undefined) return this.fail(field, this.unstorable(value) ?? `must be a whole number, got ${describeValue(value)}`);
    if (n < min || n > max) return this.fail(field, `${describeValue(value)} does not fit in ${column}`);
    const digits = n.toString();
    // A number written so (not "12", nor 1.2E1 for 12); a double without a String per value.
    const sameForm = typeof value === 'number' ? Number.isSafeInteger(value) && !Object.is(value, -0) : numberLiteralOf(value) === digits;
    if (!sameForm) this.readInOtherForm(field);
    return digits;
  }

  timestamp(field: string, value: unknown): string | null {
    if (value === null || value === undefined || value === '') return null;
    // CPQ's own format is already canonical: no need to parse and re-print it.
    if (typeof value === 'string' && canonicalTimestampMs(value) !== undefined) return value;
    this.readInOtherForm(field);
    const date = typeof value === 'string' ? DATE_PART.exec(value) : null;
    // V8 rolls 2025-02-31 over to March 3rd: check the calendar day ourselves. Year 0 does not exist in Postgres.
    if (typeof value !== 'string' || !date || date[1] === '0000' || !isCalendarDay(Number(date[1]), Number(date[2]), Number(date[3]))) {
      return this.fail(field, `must be an ISO-8601 date-time, got ${describeValue(value)}`);
    }
    const zoned = withExplicitZone(value);
    if (Number.isNaN(Date.parse(zoned))) return this.fail(field, `must be an ISO-8601 date-time, got ${describeValue(value)}`);
    // Date keeps milliseconds; the microseconds are read from the text (Postgres stores them), and
    // finer digits are allowed only when they are zeros: refused rather than rounded.
    const fraction = SECOND_FRACTION.exec(value)?.[1] ?? '';
    if (fraction.length > 6 && !/^0+$/.test(fraction.slice(6))) {
      return this.fail(
        field,
        `has ${fraction.length} digits of a second, finer than the microseconds Postgres stores; refused rather than rounded: ${describeValue(value)}`,
      );
    }
    const micro = fraction.slice(3, 6).padEnd(3, '0');
    const iso = new Date(zoned).toISOString();
    const utc = micro === '000' ? iso : `${iso.slice(0, 23)}${micro}Z`;
    // An offset can carry a date past either end of the years the sync writes (0001-9999, in the
    // forms src/db/copy.ts reads; Postgres read no other from text either): the record fails
    // here, naming the field, instead of the whole run failing in its COPY.
    if (canonicalTimestampMs(utc) === undefined) return this.fail(field, `is ${iso} in UTC, outside the years 1 to 9999`);
    return utc;
  }
}

/** Keys of nested objects that are not the user's data: links; in an expanded collection, its paging too. */
const LINKS = ['links'];
/** A collection's keys besides items, hasMore and totalResults: what it says of its paging. */
const COLLECTION_KEYS = ['links', 'limit', 'offset', 'count'];
const CHOICE_PARTS = new FieldPicker(['value', 'displayValue'], LINKS);
// hasMore and totalResults picked as every field is, in any case (HasMore): each says whether the list was sent whole.
const ITEMS = new FieldPicker(['items', 'hasMore', 'totalResults'], COLLECTION_KEYS);
const GROUP_PARTS = new FieldPicker(['variableName', 'label', 'type'], LINKS);
const PERMISSION_PARTS = new FieldPicker(['type', 'variableName', 'name', 'hasAccess'], LINKS);
/** The fields of a user record normalize reads: USER_FIELDS (dateModified among them), then these. */
const RECORD_FIELDS = new FieldPicker([...USER_FIELDS.map((spec) => spec.field), 'login', 'company', 'groups', 'accessPermissions']);
// Where login, company, groups and accessPermissions are in RECORD_FIELDS.pick's result: FIELD_COUNT and on.
const FIELD_COUNT = USER_FIELDS.length;
const DATE_MODIFIED = USER_FIELDS.findIndex((spec) => spec.field === 'dateModified');
const COMPANY_PARTS = new FieldPicker(['name', 'loginName'], LINKS);

/** Error labels of the two parts of each choice field, made once: this runs for every user. */
const CHOICE_LABELS = new Map(USER_FIELDS.map((spec) => [spec, { value: `${spec.field}.value`, display: `${spec.field}.displayValue` }]));

/** Reads one field into its column value(s), appended to `out`. */
function readField(reader: FieldReader, spec: UserField, value: unknown, out: ColumnValue[]): void {
  switch (spec.kind) {
    case 'text':
      out.push(spec.field === 'partyNumber' ? reader.key(spec.field, value) : reader.text(spec.field, value));
      return;
    case 'boolean':
      out.push(reader.boolean(spec.field, value));
      return;
    case 'bigint':
      out.push(reader.bigint(spec.field, value));
      return;
    case 'timestamp':
      out.push(reader.timestamp(spec.field, value));
      return;
    case 'choiceText':
    case 'choiceInt': {
      // {value, displayValue}; a bare scalar is read as the value alone.
      const [raw, display] = isJsonObject(value) ? CHOICE_PARTS.pick(value) : [value, undefined];
      if (isJsonObject(value)) reader.keepExtras(CHOICE_PARTS, value, spec.field, String);
      const labels = CHOICE_LABELS.get(spec)!;
      out.push(spec.kind === 'choiceInt' ? reader.integer(labels.value, raw) : reader.text(labels.value, raw));
      out.push(reader.text(labels.display, display));
      return;
    }
  }
}

/**
 * What a text column stores of a value CPQ sent: a string as it is, a number as it was written
 * (1.50 stays 1.50), true or false; null for null or absent; undefined for what no text column
 * holds (an object, an array).
 */
export function storedText(value: unknown): string | null | undefined {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return markedNumberLiteral(value) ?? value;
  return numberLiteralOf(value) ?? (typeof value === 'boolean' ? String(value) : undefined);
}

/**
 * Whether a groups or accessPermissions value carries its members: an array of items, or an
 * object whose items is one. Anything else ({links} of a collection not expanded, {}, items null,
 * null) says nothing of them (itemsOf).
 */
export function carriesItems(value: unknown): boolean {
  return Array.isArray(value) || (isJsonObject(value) && Array.isArray(ITEMS.pick(value)[0]));
}

/**
 * The items of a group or permission list, or undefined when the record does not carry them.
 * `parts`: an item's fields, which an object in the list's place must not hold (one item sent
 * for the list).
 */
function itemsOf(reader: FieldReader, field: string, value: unknown, parts: FieldPicker): unknown[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) return Array.isArray(value) ? (value as unknown[]) : reader.fail(`${field}.items`, `must be an array, got ${describeValue(value)}`);
  const [items, hasMore, totalValue] = ITEMS.pick(value);
  // items in two spellings ("items" beside "Items"): the picker takes one, and the members of the
  // other were dropped unseen (review DC). Refused, as a page with two "items" keys is (TwoItemsError).
  if (ITEMS.losers > 0) {
    const spellings = Object.keys(value).filter((key) => fieldNameKey(key) === 'items');
    if (spellings.length > 1)
      return reader.fail(
        field,
        `has items in ${spellings.length} spellings (${spellings.map((k) => `"${shownName(k)}"`).join(', ')}); refused rather than take one`,
      );
  }
  reader.keepExtras(ITEMS, value, field, String);
  // A paging field in two spellings that disagree ("hasMore": false beside "HasMore": true): the
  // picked one may be the one saying the list is whole. (One spelling twice is one key by the time
  // the item is parsed: JSON.parse keeps the last.) offset, count and limit are read from here, in
  // any case as hasMore is.
  let paging: PagingFields;
  try {
    paging = PagingFields.of(value, EXPANDED_LIST_PAGING);
  } catch (err) {
    if (err instanceof RepeatedPagingFieldError) return reader.fail(field, `says ${err.said}; refused rather than take one`);
    throw err;
  }
  if (items === undefined || items === null) {
    // One item where the list belongs ({"variableName": "sales", ...}): taken for a list not
    // expanded, it would leave the user's memberships as they were, and what it says unread.
    if (parts.pick(value).some((part) => part !== undefined)) {
      return reader.fail(field, 'is one item, not a list of items ({"items": [...]}); refused rather than leave the stored list as it was');
    }
    // A collection without items ({links} of one not expanded, {}, items null) says nothing of its
    // members: not carried, as a missing field. Read as empty, every membership would be removed.
    return undefined;
  }
  if (!Array.isArray(items)) return reader.fail(`${field}.items`, `must be an array, got ${describeValue(items)}`);
  // A list CPQ says it sent in part: taken as whole, every member it left out would be removed.
  // hasMore as true or false, or their text; totalResults, offset, count and limit as a JSON number
  // in any notation (3, 3.0, 3E0), not as text; a form that says nothing certain is refused.
  let more: boolean | undefined;
  if (hasMore !== undefined && hasMore !== null) {
    more = hasMore === true || hasMore === 'true' ? true : hasMore === false || hasMore === 'false' ? false : undefined;
    if (more === undefined) return reader.fail(`${field}.hasMore`, `must be true or false, got ${describeValue(hasMore)}`);
    if (more)
      return reader.fail(`${field}.hasMore`, `is true: CPQ sent ${items.length} items of a longer list; refused rather than take it for the whole list`);
  }
  const total = listCount(reader, field, 'totalResults', totalValue);
  if (total !== undefined && total > items.length)
    return reader.fail(`${field}.totalResults`, `is ${total} but ${items.length} items were sent; refused rather than take them for the whole list`);
  // The paging of a page of the list (review DC): past its start, said to hold another number of
  // items than were sent, or full without hasMore false (a JSON page of users is read on then:
  // readCollection), it is not the whole list.
  const offset = listCount(reader, field, 'offset', paging.get('offset'));
  if (offset !== undefined && offset > 0)
    return reader.fail(
      `${field}.offset`,
      `is ${offset}: CPQ sent the list from its item ${offset} on (counting from 0); refused rather than take it for the whole list`,
    );
  const count = listCount(reader, field, 'count', paging.get('count'));
  if (count !== undefined && count !== items.length)
    return reader.fail(`${field}.count`, `is ${count} but ${items.length} items were sent; refused rather than take them for the whole list`);
  const limit = listCount(reader, field, 'limit', paging.get('limit'));
  if (limit !== undefined && items.length >= limit && more !== false) {
    return reader.fail(
      `${field}.limit`,
      `is ${limit} and ${items.length} items were sent, without hasMore false: a full page may be followed by more; refused rather than take it for the whole list`,
    );
  }
  // A link to the next page says the same, with no count at all (review DJ).
  if (more !== false && linksToNext(value))
    return reader.fail(`${field}.links`, `name a next page: CPQ sent ${items.length} items of a longer list; refused rather than take it for the whole list`);
  return items as unknown[];
}

/** Whether a collection's links (any spelling of the key) hold one whose rel is "next". */
function linksToNext(collection: Record<string, unknown>): boolean {
  for (const key of Object.keys(collection)) {
    if (fieldNameKey(key) !== 'links') continue;
    const links = collection[key];
    if (Array.isArray(links) && links.some((l) => isJsonObject(l) && typeof l.rel === 'string' && l.rel.toLowerCase() === 'next')) return true;
  }
  return false;
}

/** A list's totalResults, offset, count or limit: undefined when it does not say it (or says null); a value that is no count fails the record. */
function listCount(reader: FieldReader, field: string, name: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const count = countValue(value);
  return count ?? reader.fail(`${field}.${name}`, `must be a count, got ${describeValue(value)}`);
}

/**
 * The error labels of item `i` of a list (`groups.items[3]` and its parts), made once per index
 * and kept for the first MAX_KEPT_LABELS: they are passed for every group and permission of every
 * user, and used only when one is wrong.
 */
function itemLabels<P extends string>(list: string, parts: readonly P[]): (i: number) => { item: string } & Record<P, string> {
  const kept: ({ item: string } & Record<P, string>)[] = [];
  const make = (i: number) => {
    const item = `${list}.items[${i}]`;
    return Object.assign({ item }, Object.fromEntries(parts.map((p) => [p, `${item}.${p}`])) as Record<P, string>);
  };
  return (i) => {
    if (i >= MAX_KEPT_LABELS) return make(i);
    return (kept[i] ??= make(i));
  };
}
const MAX_KEPT_LABELS = 1000;
const GROUP_LABELS = itemLabels('groups', ['variableName', 'label', 'type']);
const PERMISSION_LABELS = itemLabels('accessPermissions', ['type', 'variableName', 'name', 'hasAccess']);

/** A copy of a group in a user's list: its row, whether it says its label or type, and (once its name is listed again) what no column holds of it. */
interface GroupCopy {
  row: GroupRow;
  described: boolean;
  text?: string;
}

function readGroups(reader: FieldReader, value: unknown): GroupRow[] | undefined {
  const items = itemsOf(reader, 'groups', value, GROUP_PARTS);
  if (items === undefined) return undefined;
  // Per name, the copy that counts.
  const byName = new Map<string, GroupCopy>();
  items.forEach((item, i) => {
    const at = GROUP_LABELS(i);
    if (!isJsonObject(item)) reader.fail(at.item, `must be an object, got ${describeValue(item)}`);
    const [name, label, type] = GROUP_PARTS.pick(item);
    reader.beginItem();
    const variableName = reader.key(at.variableName, name);
    if (!variableName) reader.fail(at.variableName, 'is missing');
    const path = groupPath(variableName);
    const kept = byName.get(variableName);
    const before = kept && reader.itemState(path);
    reader.keepExtras(GROUP_PARTS, item, variableName, groupPath);
    const copy: GroupCopy = {
      row: { variableName, label: reader.text(at.label, label), type: reader.text(at.type, type) },
      described: label !== undefined || type !== undefined,
    };
    reader.endItem(path);
    // Listed again: one copy counts, the same whatever the order (see groupOutranks).
    byName.set(variableName, kept === undefined || before === undefined ? copy : reader.countingCopy(path, kept, before, copy, groupOutranks));
  });
  // The names whose copy that counts says neither label nor type; most reads have none.
  let bare = 0;
  for (const copy of byName.values()) if (!copy.described) bare++;
  reader.groupsDescribed =
    bare === 0 ? true : bare === byName.size ? false : new Set([...byName.values()].filter((c) => c.described).map((c) => c.row.variableName));
  return [...byName.values()].map((c) => c.row).sort((a, b) => (a.variableName < b.variableName ? -1 : a.variableName > b.variableName ? 1 : 0));
}

/**
 * Of two different copies of one group in a user's list, whether `a` is the one that counts
 * rather than `b`, whatever their order (CPQ gives expanded lists none), as for permissions
 * (permissionOutranks): the one saying its label or type (a copy saying neither leaves the stored ones),
 * then the greater label, then the greater type (null, cleared, below any text), then the greater
 * text of what no column holds (FieldReader.itemText). The last copy counted, and the same CPQ data
 * sent in another order flipped cpq.groups' label or type, a change row and a version at every
 * other run (review DC).
 */
function groupOutranks(a: GroupCopy, b: GroupCopy): boolean {
  if (a.described !== b.described) return a.described;
  const [x, y] = [a.row, b.row];
  if (x.label !== y.label) return x.label !== null && (y.label === null || x.label > y.label);
  if (x.type !== y.type) return x.type !== null && (y.type === null || x.type > y.type);
  return a.text! > b.text!;
}

/** A copy of a permission in a user's list: its row and (once its key is listed again) what no column holds of it. */
interface PermissionCopy {
  row: AccessPermissionRow;
  text?: string;
}

function readAccessPermissions(reader: FieldReader, value: unknown): AccessPermissionRow[] | undefined {
  const items = itemsOf(reader, 'accessPermissions', value, PERMISSION_PARTS);
  if (items === undefined) return undefined;
  // Per key, the copy that counts.
  const byKey = new Map<string, PermissionCopy>();
  items.forEach((item, i) => {
    const at = PERMISSION_LABELS(i);
    if (!isJsonObject(item)) reader.fail(at.item, `must be an object, got ${describeValue(item)}`);
    const [typeValue, nameValue, label, hasAccess] = PERMISSION_PARTS.pick(item);
    reader.beginItem();
    const type = reader.key(at.type, typeValue);
    const variableName = reader.key(at.variableName, nameValue);
    if (!type) reader.fail(at.type, 'is missing');
    if (!variableName) reader.fail(at.variableName, 'is missing');
    // Keyed by the type's length, not a separator: either part may hold any character, and two
    // permissions must never share a key (one would be lost).
    const key = `${type.length}:${type}${variableName}`;
    const path = permissionPath([type, variableName]);
    const kept = byKey.get(key);
    const before = kept && reader.itemState(path);
    reader.keepExtras(PERMISSION_PARTS, item, [type, variableName], permissionPath);
    const copy: PermissionCopy = { row: { type, variableName, name: reader.text(at.name, label), hasAccess: reader.boolean(at.hasAccess, hasAccess) } };
    reader.endItem(path);
    // Listed again: one copy counts, the same whatever the order (see permissionOutranks).
    byKey.set(key, kept === undefined || before === undefined ? copy : reader.countingCopy(path, kept, before, copy, permissionOutranks));
  });
  // By type, then variable name (the order of the digest and of the rows).
  const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...byKey.values()].map((k) => k.row).sort((a, b) => byCodeUnit(a.type, b.type) || byCodeUnit(a.variableName, b.variableName));
}

/**
 * A flag as a boolean column stores it: true or false, also written as text ("true"), null when
 * unsaid; undefined for anything else (FieldReader.boolean refuses it).
 */
export function booleanValue(value: unknown): boolean | null | undefined {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return undefined;
}

/** How a copy of a permission ranks by its hasAccess (permissionOutranks): granting, then denying, then unsaid. */
export function accessRank(access: boolean | null | undefined): number {
  return access === true ? 2 : access === false ? 1 : 0;
}

/**
 * Of two different copies of one permission in a user's list, whether `a` is the one that counts
 * rather than `b`, whatever their order (CPQ gives expanded lists none): the one granting access,
 * then the greater name, then the greater text of what no column holds (FieldReader.itemText).
 * The last copy counted, and the same CPQ data sent in another order flipped hasAccess, logging a
 * change and raising an alert at every other run (review CF).
 */
function permissionOutranks(a: PermissionCopy, b: PermissionCopy): boolean {
  const [x, y] = [a.row, b.row];
  if (accessRank(x.hasAccess) !== accessRank(y.hasAccess)) return accessRank(x.hasAccess) > accessRank(y.hasAccess);
  if (x.name !== y.name) return x.name !== null && (y.name === null || x.name > y.name);
  return a.text! > b.text!;
}

/** Fields we have no column for (kept in raw), in a stable order, as JSON; '' when there are none. */
function unknownFieldsJson(record: Record<string, unknown>): string {
  const unknown = Object.keys(record)
    .filter((k) => !isMappedField(k))
    .sort();
  return unknown.length === 0 ? '' : stringifyExactJson(unknown.map((k) => [k, withSortedKeys(record[k])]));
}

/**
 * The fields of a record sent under a second spelling whose value lost to another's (of
 * `lastname` and `lastName`, lastname's), as JSON; '' when there are none. No column holds them,
 * yet raw does: a change to one alone is a changed record. As keepExtras keeps nested parts: by
 * lower-cased key, so that their spelling does not count, unless two share it.
 */
function lostSpellingsJson(record: Record<string, unknown>): string {
  if (RECORD_FIELDS.losers === 0) return '';
  const lost = Object.keys(record).filter((k) => RECORD_FIELDS.lost(k));
  const lower = lost.map(fieldNameKey);
  // Counted once, not searched per key: a record of many spellings would cost their square (review DD).
  const sharing = new Map<string, number>();
  for (const l of lower) sharing.set(l, (sharing.get(l) ?? 0) + 1);
  const entries = lost.map((k, i): [string, unknown] => {
    const shared = sharing.get(lower[i]!)! > 1;
    return [shared ? `${lower[i]!}\u0000${k}` : lower[i]!, withSortedKeys(record[k])];
  });
  return stringifyExactJson(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const groupPath = (variableName: string) => `groups[${JSON.stringify(variableName)}]`;
const permissionPath = (key: [string, string]) => `accessPermissions[${JSON.stringify(key)}]`;

/**
 * A JSON value with the keys of its objects in string order, for the digest: JSON objects are
 * unordered, so CPQ sending the same custom object with its keys in another order is no change.
 * Returns `value` itself when its keys are in order already (the common case: no copy).
 */
function withSortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const sorted = withSortedKeys(item);
      if (sorted !== item) (copy ??= value.slice())[i] = sorted;
    }
    return copy ?? value;
  }
  if (!isJsonObject(value)) return value;
  const keys = Object.keys(value);
  let changed = false;
  const values: unknown[] = [];
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i > 0 && keys[i - 1]! > key) changed = true;
    values.push(withSortedKeys(value[key]));
    if (values[i] !== value[key]) changed = true;
  }
  if (!changed) return value;
  // No prototype: a key "__proto__" is then an own key like any other, as JSON.parse made it.
  const out = Object.create(null) as Record<string, unknown>;
  for (const i of keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1))) out[keys[i]!] = values[i];
  return out;
}

/**
 * Digest of everything a record says: every mapped value, the sorted groups and permissions,
 * and the unmapped fields. Links, key order and field-name spelling do not count.
 */
function contentDigest(row: Omit<UserRow, 'contentHash' | 'raw' | 'dateModified'>, unknown: string, holdsDigestMarks: boolean): string {
  let text: string;
  // The text "null" as a company name reads like none: such a record takes the JSON form too.
  if (holdsDigestMarks || NUL_OR_DIGEST_MARK.test(row.companyLogin) || row.companyName === 'null') {
    // A value holding a separator could read as two (Ann\u0001Marie, Smith against Ann, Marie\u0001Smith):
    // such a record's values are written as JSON instead, marked so as to read unlike any other.
    text = `\u0005${JSON.stringify([row.companyLogin, row.login, row.isIntegrationUser, row.companyName, row.values])}`;
  } else {
    text = `${row.companyLogin}\u0001${row.login}\u0001${row.isIntegrationUser}\u0001${row.companyName}\u0001`;
    for (const v of row.values) text += v === null ? '\u0002' : `${v}\u0001`;
  }
  text += row.groups === undefined ? '\u0003' : JSON.stringify(row.groups);
  text += row.accessPermissions === undefined ? '\u0003' : JSON.stringify(row.accessPermissions);
  // The one-shot hash: no Hash object per user.
  return hash('sha1', text + unknown, 'base64');
}

/**
 * Where in a record a string (value or key) holds what Postgres cannot store: a NUL character,
 * or an unpaired UTF-16 surrogate (a `\\ud800` escape alone), which jsonb rejects.
 */
function findUnstorable(value: unknown, path: string): { path: string; problem: string } | undefined {
  if (typeof value === 'string') {
    if (markedNumberLiteral(value) !== undefined) return undefined;
    const overflow = unstorableNumber(value);
    if (overflow !== undefined) return { path, problem: `holds the number ${overflow}` };
    if (value.includes(NUL)) return { path, problem: 'contains a NUL character, which Postgres cannot store' };
    if (LONE_SURROGATE.test(value)) return { path, problem: 'contains an unpaired UTF-16 surrogate (not valid Unicode), which Postgres cannot store' };
    return undefined;
  }
  if (isLosslessNumber(value)) {
    const overflow = unstorableNumber(value);
    return overflow === undefined ? undefined : { path, problem: `holds the number ${overflow}` };
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const bad = findUnstorable(item, `${path}[${i}]`);
      if (bad) return bad;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const at = path === '' ? key : `${path}.${key}`;
    const badName = findUnstorable(key, at);
    if (badName) return { path: at, problem: `has a name that ${badName.problem}` };
    const bad = findUnstorable(item, at);
    if (bad) return bad;
  }
  return undefined;
}

/** A RangeError of the stack, not of a value (an invalid date, a length). */
function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message);
}

/** Fails the record naming its most deeply nested field: one that exhausted the stack of a recursive walk. */
function tooDeep(reader: FieldReader, record: Record<string, unknown>): never {
  let deepest: string | undefined;
  let most = 0;
  for (const key of Object.keys(record)) {
    const depth = nestingDepth(record[key]);
    if (depth > most) [deepest, most] = [key, depth];
  }
  return reader.fail(deepest === undefined ? '(record)' : shownName(deepest), 'is nested too deeply to be stored');
}

/** How many arrays and objects deep `value` goes, by a walk of its own (no recursion: this is for values too deep for one). */
function nestingDepth(value: unknown): number {
  let most = 0;
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next;
    if (typeof item !== 'object' || item === null || isLosslessNumber(item)) continue;
    if (depth + 1 > most) most = depth + 1;
    for (const child of Array.isArray(item) ? item : Object.values(item)) pending.push([child, depth + 1]);
  }
  return most;
}

/** The record as exact JSON text for raw; a record Postgres cannot store fails naming the field. */
function rawJson(reader: FieldReader, record: Record<string, unknown>): string {
  const raw = stringifyExactJson(record);
  // JSON.stringify writes NUL and lone surrogates (and other control characters) as \u escapes:
  // one fast scan, then the walk names the field (and rules out an escaped backslash).
  if (raw.includes('\\u')) {
    const bad = findUnstorable(record, '');
    if (bad) reader.fail(shownName(bad.path), bad.problem);
  }
  return raw;
}

/**
 * Where a record is, as errors about it begin: `user "company/login" (record 3 of URL)` when its
 * login is one normalizeUser takes (text, not blank), else only `where`.
 */
export function recordPlace(companyLogin: string, login: unknown, where: string): string {
  return usableLogin(login) ? `user "${companyLogin}/${shownName(login)}" (${where})` : where;
}

function usableLogin(login: unknown): login is string {
  // Not a number, however long: {"login": 12345678901234567890} is refused as {"login": 12345} is.
  return (sentString(login)?.trim() ?? '') !== '';
}

/**
 * Turns one user record as received into the row we store. Throws RecordError naming record and
 * field. `storedAsSent`: the record's own text, when the parser found it can be stored as sent
 * (parseExactRecord); it becomes raw as it is, else the record is stringified.
 */
export function normalizeUser(record: unknown, source: RecordSource, index: number, storedAsSent?: string): UserRow {
  const where = () => `${source.position ?? `record ${index}`} of ${source.origin}`;
  if (!isJsonObject(record)) {
    throw new RecordError(`${where()}: expected a user object, got ${describeValue(record)}`);
  }
  const fields = RECORD_FIELDS.pick(record);
  const loginValue = fields[FIELD_COUNT];
  if (!usableLogin(loginValue)) {
    throw new RecordError(`${where()}: field "login" is missing or not text (got ${describeValue(loginValue)})`);
  }
  const reader = new FieldReader(() => recordPlace(source.companyLogin, loginValue, where()));
  try {
    return readUser(reader, record, fields, source, storedAsSent);
  } catch (err) {
    // Walks of the record recurse (JSON.stringify for raw, the check of what Postgres cannot
    // store, the sort of unknown fields' keys), each to a depth its frames and the stack allow:
    // thousands of nested levels exhaust it in one or another. Whichever, the record fails naming
    // its deepest field, not as an internal error naming nothing.
    if (!isStackOverflow(err)) throw err;
    return tooDeep(reader, record);
  }
}

/** normalizeUser once the record is an object with a usable login: its row and digest. */
function readUser(reader: FieldReader, record: Record<string, unknown>, fields: unknown[], source: RecordSource, storedAsSent: string | undefined): UserRow {
  const loginValue = fields[FIELD_COUNT];
  const company = fields[FIELD_COUNT + 1];
  const login = reader.key('login', loginValue)!;
  // The company's loginName (an integration user's own company.loginName, else the company read) is part of the users' key: bounded like the login.
  if (source.companyLogin.length * 3 > MAX_KEY_BYTES) reader.key('company.loginName', source.companyLogin);
  const values: ColumnValue[] = [];
  for (let i = 0; i < FIELD_COUNT; i++) readField(reader, USER_FIELDS[i]!, fields[i], values);
  let companyName: string | null = null;
  if (isJsonObject(company)) {
    companyName = reader.text('company.name', COMPANY_PARTS.pick(company)[0]);
    reader.keepExtras(COMPANY_PARTS, company, 'company', String);
  }
  const dateModified = reader.timestamp('dateModified', fields[DATE_MODIFIED]);
  const raw = storedAsSent ?? rawJson(reader, record);
  const row: UserRow = {
    companyLogin: source.companyLogin,
    login,
    companyName,
    isIntegrationUser: source.isIntegrationUser,
    values,
    groups: readGroups(reader, fields[FIELD_COUNT + 2]),
    groupsDescribed: reader.groupsDescribed,
    accessPermissions: readAccessPermissions(reader, fields[FIELD_COUNT + 3]),
    raw,
    contentHash: '',
    dateModified,
  };
  // One object per user: the digest reads the row it is stored in.
  // Apart, so that a top-level key "status.reason" and the part reason of status cannot read alike.
  const extras = reader.extrasJson();
  let unknown = unknownFieldsJson(record);
  const otherForms = reader.otherFormsText();
  const lost = lostSpellingsJson(record);
  if (extras !== '') unknown += `\u0004${extras}`;
  if (otherForms !== '') unknown += `\u0006${otherForms}`;
  if (lost !== '') unknown += `\u0007${lost}`;
  row.contentHash = contentDigest(row, unknown, reader.holdsDigestMarks);
  return row;
}
