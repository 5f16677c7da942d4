import { canonicalFieldName, isChoice, spellingWins } from '../cpq/user-fields.js';
import { isJsonObject, numberAsWritten, numberLiteralOf, spelledLow } from '../exact-json.js';
import { storedText, type AccessPermissionRow } from './user-record.js';
import { USER_FIELDS } from './user-fields.js';

/**
 * A stored record re-read from `raw` with the spelling of its numbers put back where a text column
 * kept it. jsonb keeps a number's value, not its spelling (1E2 reads back as 100), while a text
 * column keeps a number as written (storedText): a field a run takes from the stored record
 * (feed-fields.ts: keepCompanyFeedFields, keepIntegrationFeedFields) then reads as the first read
 * did, and its row and change detection are as that read made them.
 */

type Raw = Record<string, unknown>;

/** What a user's stored row holds as text, read with its `raw` (readStoredRecords). */
export interface StoredSpellings {
  /** Per text column of cpq.users a record's field gives (SPELLED_COLUMNS), its text or null. */
  texts: readonly (string | null)[];
  permissions: readonly AccessPermissionRow[];
}

/** A text column of a field: the field's canonical name, the part of it ('' for a plain text field), the column. */
interface SpelledColumn {
  field: string;
  part: '' | 'value' | 'displayValue' | 'name';
  column: string;
}

/**
 * The text columns of cpq.users whose value a record's field gives, in the order of
 * StoredSpellings.texts: USER_FIELDS' text and choice columns, and company.name's.
 */
export const SPELLED_COLUMNS: readonly SpelledColumn[] = [
  ...USER_FIELDS.flatMap((f): SpelledColumn[] => {
    if (f.kind === 'text') return [{ field: f.field, part: '', column: f.column }];
    if (!isChoice(f.kind)) return [];
    const display: SpelledColumn = { field: f.field, part: 'displayValue', column: `${f.column}_display` };
    return f.kind === 'choiceText' ? [{ field: f.field, part: 'value', column: f.column }, display] : [display];
  }),
  { field: 'company', part: 'name', column: 'company_name' },
];

/** Per canonical field, its columns' places in StoredSpellings.texts by part. */
const COLUMNS_OF = new Map<string, Map<string, number>>();
SPELLED_COLUMNS.forEach((c, i) => {
  const parts = COLUMNS_OF.get(c.field) ?? new Map<string, number>();
  COLUMNS_OF.set(c.field, parts.set(c.part, i));
});

/**
 * The key of `object` whose value a reader takes for the part `name` (canonical): the one
 * FieldPicker picks (spellingWins) of the keys of that canonical name; undefined when none.
 */
function pickedKey(object: Raw, name: string): string | undefined {
  let kept: string | undefined;
  for (const key of Object.keys(object)) if (canonicalFieldName(key) === name && spellingWins(key, name, kept)) kept = key;
  return kept;
}

/** `value` spelled as `text` when it is a number Postgres writes out as the number `text` spells; else undefined. */
function respelled(value: unknown, text: string | null): unknown {
  const literal = numberLiteralOf(value);
  return literal === undefined || text === null ? undefined : numberAsWritten(text, literal);
}

/** `object` with `key`'s value replaced (a copy, the key's place kept); `object` itself when `value` is undefined. */
function withPart(object: Raw, key: string, value: unknown): Raw {
  return value === undefined ? object : Object.fromEntries(Object.entries(object).map(([k, v]) => [k, k === key ? value : v]));
}

/**
 * `record` (a stored record, parsed from raw) with each number of a text field, a choice's parts
 * and an access permission's parts spelled as the stored columns and rows hold it, where they hold
 * a spelling of that very number. Other values, custom fields included, are as `record` has them.
 * Returns `record` itself when nothing is put back.
 */
export function withStoredSpellings(record: Raw, stored: StoredSpellings): Raw {
  let out = record;
  for (const key of Object.keys(record)) {
    const name = canonicalFieldName(key);
    if (name === undefined || pickedKey(record, name) !== key) continue;
    const value = record[key];
    if (name === 'accessPermissions') {
      out = withPart(out, key, permissionsRespelled(value, stored.permissions));
      continue;
    }
    const columns = COLUMNS_OF.get(name);
    if (columns === undefined) continue;
    if (!isJsonObject(value)) {
      // A bare scalar of a choice field is read as its value.
      const at = columns.get('') ?? columns.get('value');
      out = withPart(out, key, at === undefined ? undefined : respelled(value, stored.texts[at]!));
      continue;
    }
    let choice = value;
    for (const [part, at] of columns) {
      const partKey = part === '' ? undefined : pickedKey(choice, part);
      if (partKey !== undefined) choice = withPart(choice, partKey, respelled(choice[partKey], stored.texts[at]!));
    }
    if (choice !== value) out = withPart(out, key, choice);
  }
  return out;
}

const PERMISSION_TEXTS = ['type', 'variableName', 'name'] as const;

/** hasAccess as the permission row stores it (FieldReader.boolean). */
function accessOf(value: unknown): boolean | null | undefined {
  if (value === null || value === undefined) return null;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return undefined;
}

/** accessPermissions (a list, or {items}) with its items' numbers spelled as the stored rows hold them; undefined when nothing is put back. */
function permissionsRespelled(value: unknown, rows: readonly AccessPermissionRow[]): unknown {
  if (rows.length === 0) return undefined;
  if (Array.isArray(value)) return itemsRespelled(value, rows);
  if (!isJsonObject(value)) return undefined;
  const key = pickedKey(value, 'items');
  const items = key === undefined ? undefined : value[key];
  const respelledItems = Array.isArray(items) ? itemsRespelled(items, rows) : undefined;
  return respelledItems === undefined ? undefined : withPart(value, key!, respelledItems);
}

/** One permission item: its keys of each part (pickedKey) and whether a text part is a number. */
interface ItemParts {
  keys: (string | undefined)[];
  hasNumber: boolean;
}

/**
 * The items with their numbers spelled as the rows hold them; undefined when none changes. Each
 * item is matched with a row it reads as (a text part equal, a number part a spelling of that
 * number, hasAccess the same), each row with one item where it can be: two items whose key differs
 * only in a number's spelling (1E2 and 100) are two rows, and stay two, never merged into one. The
 * items with the fewest rows to choose from choose first, and an item with nothing to put back
 * (no number) before any: so an item that fits only one row gets it. Each item is compared with
 * each row: quadratic in a user's permissions, paid only by the few users these reads concern.
 */
function itemsRespelled(items: unknown[], rows: readonly AccessPermissionRow[]): unknown[] | undefined {
  const parts = items.map((item): ItemParts | undefined => {
    if (!isJsonObject(item)) return undefined;
    const keys = PERMISSION_TEXTS.map((p) => pickedKey(item, p));
    return { keys, hasNumber: keys.some((k) => k !== undefined && numberLiteralOf(item[k]) !== undefined) };
  });
  const part = (i: number, j: number) => {
    const key = parts[i]!.keys[j];
    return key === undefined ? undefined : (items[i] as Raw)[key];
  };
  const partFits = (value: unknown, text: string | null) =>
    numberLiteralOf(value) !== undefined ? respelled(value, text) !== undefined : storedText(value) === text;
  const keyFits = (i: number, row: AccessPermissionRow) => partFits(part(i, 0), row.type) && partFits(part(i, 1), row.variableName);
  const accessAt = (i: number) => {
    const key = pickedKey(items[i] as Raw, 'hasAccess');
    return accessOf(key === undefined ? undefined : (items[i] as Raw)[key]);
  };
  const fits = (i: number, row: AccessPermissionRow) => keyFits(i, row) && partFits(part(i, 2), row.name) && accessAt(i) === row.hasAccess;
  const choices = new Map<number, number[]>();
  items.forEach((_, i) => {
    if (parts[i] !== undefined)
      choices.set(
        i,
        rows.flatMap((row, r) => (fits(i, row) ? [r] : [])),
      );
  });
  const order = [...choices.keys()].sort(
    (a, b) => Number(parts[a]!.hasNumber) - Number(parts[b]!.hasNumber) || choices.get(a)!.length - choices.get(b)!.length || a - b,
  );
  const taken = new Set<number>();
  let out: unknown[] | undefined;
  const respell = (i: number, row: AccessPermissionRow, which: readonly number[]) => {
    let item = items[i] as Raw;
    for (const j of which) {
      const key = parts[i]!.keys[j];
      if (key !== undefined) item = withPart(item, key, respelled(item[key], row[PERMISSION_TEXTS[j]!]));
    }
    if (item !== items[i]) (out ??= items.slice())[i] = item;
  };
  for (const i of order) {
    if (!parts[i]!.hasNumber && choices.get(i)!.length === 0) continue;
    const fitting = choices.get(i)!;
    const r = fitting.find((x) => !taken.has(x)) ?? fitting[0];
    if (r !== undefined) {
      taken.add(r);
      if (parts[i]!.hasNumber) respell(i, rows[r]!, [0, 1, 2]);
      continue;
    }
    // No row reads as this item: a copy of a permission listed twice that does not count (the row
    // is the other copy's). Its key is that of a row it loses to (permissionOutranks: the copy
    // granting access, then the greater name), spelled so. Its name, where the spelling jsonb gave
    // it would now outrank the row's (1.0E2 lost to 1.5e-3; 100 does not), is spelled as the
    // row's (the same number) or low (0.000100E6): the copy still loses, and its value is as stored.
    const rank = (a: boolean | null | undefined) => (a === true ? 2 : a === false ? 1 : 0);
    const mine = rank(accessAt(i));
    const nameValue = part(i, 2);
    const name = storedText(nameValue);
    // Equal in hasAccess, whether the name as jsonb gave it outranks the row's.
    const nameOutranks = (row: AccessPermissionRow) => name !== null && name !== undefined && (row.name === null || name > row.name);
    const losesAsItIs = (row: AccessPermissionRow) => (mine !== rank(row.hasAccess) ? mine < rank(row.hasAccess) : !nameOutranks(row));
    // The name spelled to lose to the row's: the row's spelling of the same number, else a low one.
    const lowName = (row: AccessPermissionRow) => {
      const literal = numberLiteralOf(nameValue);
      if (literal === undefined || row.name === null || mine !== rank(row.hasAccess)) return undefined;
      const low = respelled(nameValue, row.name) ?? spelledLow(literal, row.name.length);
      const text = storedText(low);
      return typeof text === 'string' && text <= row.name ? low : undefined;
    };
    const keyed = rows.filter((candidate) => keyFits(i, candidate));
    const asItIs = keyed.find(losesAsItIs);
    const row = asItIs ?? keyed.find((candidate) => lowName(candidate) !== undefined) ?? keyed[0];
    if (row === undefined) continue;
    respell(i, row, [0, 1]);
    const nameKey = parts[i]!.keys[2];
    const low = asItIs === undefined ? lowName(row) : undefined;
    if (nameKey === undefined || low === undefined) continue;
    (out ??= items.slice())[i] = withPart(out[i] as Raw, nameKey, low);
  }
  return out;
}
