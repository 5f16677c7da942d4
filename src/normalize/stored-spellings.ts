import { canonicalFieldName, isChoice, spellingWins } from '../cpq/user-fields.js';
import { isJsonObject, numberAsWritten, numberLiteralOf } from '../exact-json.js';
import { storedText } from './user-record.js';
import { USER_FIELDS } from './user-fields.js';

/**
 * A stored record re-read from `raw` with the spelling of its numbers put back where a text column
 * kept it. jsonb keeps a number's value, not its spelling (1E2 reads back as 100), while a text
 * column keeps a number as written (storedText): a field a run takes from the stored record
 * (feed-fields.ts: keepCompanyFeedFields, keepIntegrationFeedFields) then reads as the first read
 * did, and its row and change detection are as that read made them.
 */

type Raw = Record<string, unknown>;

/** A stored permission row, as the first read of its item wrote it. */
export interface StoredPermission {
  type: string;
  variableName: string;
  name: string | null;
  hasAccess: boolean | null;
}

/** What a user's stored row holds as text, read with its `raw` (readStoredRecords). */
export interface StoredSpellings {
  /** Per text column of cpq.users (USER_FIELDS' text columns and choice columns, SPELLED_COLUMNS), its text or null. */
  texts: readonly (string | null)[];
  permissions: readonly StoredPermission[];
}

/** A text column of a field: the field's canonical name, the part of its {value, displayValue} ('' for a plain text field), the column. */
interface SpelledColumn {
  field: string;
  part: '' | 'value' | 'displayValue';
  column: string;
}

/** The text columns of cpq.users whose value a record's field gives, in the order of StoredSpellings.texts. */
export const SPELLED_COLUMNS: readonly SpelledColumn[] = USER_FIELDS.flatMap((f): SpelledColumn[] => {
  if (f.kind === 'text') return [{ field: f.field, part: '', column: f.column }];
  if (!isChoice(f.kind)) return [];
  const display: SpelledColumn = { field: f.field, part: 'displayValue', column: `${f.column}_display` };
  return f.kind === 'choiceText' ? [{ field: f.field, part: 'value', column: f.column }, display] : [display];
});

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
function permissionsRespelled(value: unknown, rows: readonly StoredPermission[]): unknown {
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
 * (no number) before any: so an item that fits only one row gets it.
 */
function itemsRespelled(items: unknown[], rows: readonly StoredPermission[]): unknown[] | undefined {
  const parts = items.map((item): ItemParts | undefined => {
    if (!isJsonObject(item)) return undefined;
    const keys = PERMISSION_TEXTS.map((p) => pickedKey(item, p));
    return { keys, hasNumber: keys.some((k) => k !== undefined && numberLiteralOf(item[k]) !== undefined) };
  });
  const fits = (i: number, row: StoredPermission) => {
    const item = items[i] as Raw;
    const { keys } = parts[i]!;
    const access = pickedKey(item, 'hasAccess');
    if (accessOf(access === undefined ? undefined : item[access]) !== row.hasAccess) return false;
    return PERMISSION_TEXTS.every((p, j) => {
      const v = keys[j] === undefined ? undefined : item[keys[j]];
      return numberLiteralOf(v) !== undefined ? respelled(v, row[p]) !== undefined : storedText(v) === row[p];
    });
  };
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
  for (const i of order) {
    const fitting = choices.get(i)!;
    const r = fitting.find((x) => !taken.has(x)) ?? fitting[0];
    if (r === undefined) continue;
    taken.add(r);
    if (!parts[i]!.hasNumber) continue;
    let item = items[i] as Raw;
    PERMISSION_TEXTS.forEach((p, j) => {
      const key = parts[i]!.keys[j];
      if (key !== undefined) item = withPart(item, key, respelled(item[key], rows[r]![p]));
    });
    if (item !== items[i]) (out ??= items.slice())[i] = item;
  }
  return out;
}
