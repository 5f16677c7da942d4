import { canonicalFieldName, isChoice, spellingWins } from '../cpq/user-fields.js';
import { isJsonObject, numberAsWritten, numberLiteralOf, numberSignature, spelledLow } from '../exact-json.js';
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
 * Per canonical name, the key of `object` whose value a reader takes for it: the one FieldPicker
 * picks (spellingWins) of the keys of that name. One pass over the keys: looked up per name, a
 * record of many keys cost their square.
 */
function pickedKeys(object: Raw): Map<string, string> {
  const picked = new Map<string, string>();
  for (const key of Object.keys(object)) {
    const name = canonicalFieldName(key);
    if (name !== undefined && spellingWins(key, name, picked.get(name))) picked.set(name, key);
  }
  return picked;
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
  const replaced = new Map<string, unknown>();
  for (const [name, key] of pickedKeys(record)) {
    const value = record[key];
    if (name === 'accessPermissions') {
      const permissions = permissionsRespelled(value, stored.permissions);
      if (permissions !== undefined) replaced.set(key, permissions);
      continue;
    }
    const columns = COLUMNS_OF.get(name);
    if (columns === undefined) continue;
    if (!isJsonObject(value)) {
      // A bare scalar of a choice field is read as its value.
      const at = columns.get('') ?? columns.get('value');
      const spelled = at === undefined ? undefined : respelled(value, stored.texts[at]!);
      if (spelled !== undefined) replaced.set(key, spelled);
      continue;
    }
    const partKeys = pickedKeys(value);
    let choice = value;
    for (const [part, at] of columns) {
      const partKey = part === '' ? undefined : partKeys.get(part);
      if (partKey !== undefined) choice = withPart(choice, partKey, respelled(choice[partKey], stored.texts[at]!));
    }
    if (choice !== value) replaced.set(key, choice);
  }
  // One copy of the record, its keys in their places.
  return replaced.size === 0 ? record : Object.fromEntries(Object.entries(record).map(([k, v]) => [k, replaced.has(k) ? replaced.get(k) : v]));
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
  const key = pickedKeys(value).get('items');
  const items = key === undefined ? undefined : value[key];
  const respelledItems = Array.isArray(items) ? itemsRespelled(items, rows) : undefined;
  return respelledItems === undefined ? undefined : withPart(value, key!, respelledItems);
}

/** One permission item: its keys of each part (pickedKeys) and whether a text part is a number. */
interface ItemParts {
  keys: (string | undefined)[];
  hasNumber: boolean;
}

/**
 * How one text part of a permission is matched, as a key of the indexes below: a number by what
 * Postgres numeric keeps of it (numberSignature: 1E2 and 100 alike), anything else by the text a
 * column stores of it (storedText). A row's text that is a number literal is found both ways (an
 * item may hold it as text or as a number). Undefined for an item's part no row can hold.
 */
function itemPartKey(value: unknown): string | undefined {
  const literal = numberLiteralOf(value);
  if (literal !== undefined) return `n${numberSignature(literal)}`;
  const text = storedText(value);
  return text === undefined ? undefined : text === null ? 'z' : `s${text}`;
}
function rowPartKeys(text: string | null): string[] {
  if (text === null) return ['z'];
  const signature = numberSignature(text);
  return signature === undefined ? [`s${text}`] : [`s${text}`, `n${signature}`];
}

/** The rows under each key their parts can be matched by (every combination of their parts' keys), in the rows' order. */
function rowIndex(rows: readonly AccessPermissionRow[], keysOf: (row: AccessPermissionRow) => string[][]): Map<string, number[]> {
  const index = new Map<string, number[]>();
  rows.forEach((row, r) => {
    let keys = [''];
    for (const alternatives of keysOf(row)) keys = keys.flatMap((k) => alternatives.map((a) => `${k}\u0000${a}`));
    for (const key of keys) {
      const list = index.get(key);
      if (list === undefined) index.set(key, [r]);
      else list.push(r);
    }
  });
  return index;
}

/**
 * The items with their numbers spelled as the rows hold them; undefined when none changes. Each
 * item is matched with a row it reads as (a text part equal, a number part a spelling of that
 * number, hasAccess the same), each row with one item where it can be: two items whose key differs
 * only in a number's spelling (1E2 and 100) are two rows, and stay two, never merged into one. The
 * items with the fewest rows to choose from choose first, and an item with nothing to put back
 * (no number) before any: so an item that fits only one row gets it. Rows are found through an
 * index of their parts' keys, not by comparing each item with each row: a hostile user of many
 * permissions cost the square of their number.
 */
function itemsRespelled(items: unknown[], rows: readonly AccessPermissionRow[]): unknown[] | undefined {
  const parts = items.map((item): ItemParts | undefined => {
    if (!isJsonObject(item)) return undefined;
    const picked = pickedKeys(item);
    const keys = [...PERMISSION_TEXTS.map((p) => picked.get(p)), picked.get('hasAccess')];
    return { keys, hasNumber: keys.slice(0, 3).some((k) => k !== undefined && numberLiteralOf(item[k]) !== undefined) };
  });
  // Nothing to spell back: no item holds a number in a text part.
  if (!parts.some((p) => p?.hasNumber)) return undefined;
  const part = (i: number, j: number) => {
    const key = parts[i]!.keys[j];
    return key === undefined ? undefined : (items[i] as Raw)[key];
  };
  const accessAt = (i: number) => accessOf(part(i, 3));
  const accessKey = (access: boolean | null) => (access === null ? 'z' : String(access));
  const byKey = rowIndex(rows, (row) => [rowPartKeys(row.type), rowPartKeys(row.variableName)]);
  const byRow = rowIndex(rows, (row) => [rowPartKeys(row.type), rowPartKeys(row.variableName), rowPartKeys(row.name), [accessKey(row.hasAccess)]]);
  /** The index key of item i's parts (`count` of them, hasAccess as a fourth), or undefined when a part fits no row. */
  const itemKey = (i: number, count: number) => {
    let key = '';
    for (let j = 0; j < count; j++) {
      const k = j === 3 ? (accessAt(i) === undefined ? undefined : accessKey(accessAt(i)!)) : itemPartKey(part(i, j));
      if (k === undefined) return undefined;
      key += `\u0000${k}`;
    }
    return key;
  };
  const none: number[] = [];
  const choices = new Map<number, number[]>();
  items.forEach((_, i) => {
    if (parts[i] !== undefined) choices.set(i, byRow.get(itemKey(i, 4) ?? '') ?? none);
  });
  const order = [...choices.keys()].sort(
    (a, b) => Number(parts[a]!.hasNumber) - Number(parts[b]!.hasNumber) || choices.get(a)!.length - choices.get(b)!.length || a - b,
  );
  const taken = new Set<number>();
  // Per list of rows (items of one key share it), how far its rows are taken: each row is passed over once.
  const next = new Map<number[], number>();
  const untaken = (fitting: number[]) => {
    let at = next.get(fitting) ?? 0;
    while (at < fitting.length && taken.has(fitting[at]!)) at++;
    next.set(fitting, at);
    return fitting[at];
  };
  let out: unknown[] | undefined;
  const respell = (i: number, row: AccessPermissionRow, which: readonly number[]) => {
    let item = items[i] as Raw;
    for (const j of which) {
      const key = parts[i]!.keys[j];
      if (key !== undefined) item = withPart(item, key, respelled(item[key], row[PERMISSION_TEXTS[j]!]));
    }
    if (item !== items[i]) (out ??= items.slice())[i] = item;
  };
  // The copies listed twice (below) search the rows of their key; bounded, the rest keep jsonb's spelling.
  // Linear in what the user holds: its items, its rows and their names (a name spelled low is as long as the row's).
  let searchesLeft = 8 * (items.length + rows.length + rows.reduce((n, row) => n + (row.name?.length ?? 0), 0));
  const decisions = new Map<string, { row: AccessPermissionRow | undefined; low: unknown }>();
  for (const i of order) {
    if (!parts[i]!.hasNumber && choices.get(i)!.length === 0) continue;
    const fitting = choices.get(i)!;
    const r = untaken(fitting) ?? fitting[0];
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
    // Copies alike (the same key, access and name) are decided once: a permission listed many
    // times costs one search.
    const ofKeyAt = itemKey(i, 2) ?? '';
    const decisionKey = `${ofKeyAt}\u0001${mine}\u0001${numberLiteralOf(nameValue) === undefined ? 't' : 'n'}${name === undefined ? 'u' : name === null ? 'z' : `s${name}`}`;
    let decision = decisions.get(decisionKey);
    if (decision === undefined) {
      // Spent: no more searching (nor counting), so each further copy costs nothing.
      if (searchesLeft < 0) continue;
      const ofKey = byKey.get(ofKeyAt) ?? none;
      // Counted before the search, which it bounds: its rows, and their names where one may be spelled low.
      searchesLeft -= ofKey.length + (numberLiteralOf(nameValue) === undefined ? 0 : ofKey.reduce((n, r) => n + (rows[r]!.name?.length ?? 0), 0));
      if (searchesLeft < 0) continue;
      const keyed = ofKey.map((r) => rows[r]!);
      const asItIs = keyed.find(losesAsItIs);
      const found = asItIs ?? keyed.find((candidate) => lowName(candidate) !== undefined) ?? keyed[0];
      decision = { row: found, low: asItIs === undefined && found !== undefined ? lowName(found) : undefined };
      decisions.set(decisionKey, decision);
    }
    const { row, low } = decision;
    if (row === undefined) continue;
    respell(i, row, [0, 1]);
    const nameKey = parts[i]!.keys[2];
    if (nameKey === undefined || low === undefined) continue;
    (out ??= items.slice())[i] = withPart(out[i] as Raw, nameKey, low);
  }
  return out;
}
