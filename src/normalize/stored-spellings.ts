import { canonicalFieldName, isChoice, spellingWins } from '../cpq/user-fields.js';
import { isJsonObject, numberAsWritten, numberLiteralOf, numberSignature, spelledLow } from '../exact-json.js';
import { accessRank, booleanValue, storedText, type AccessPermissionRow, type GroupRow } from './user-record.js';
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
  /** Its group rows, each with the label and type cpq.groups holds of the group. */
  groups: readonly GroupRow[];
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
 * `record` (a stored record, parsed from raw) with each number of a text field, a choice's parts,
 * an access permission's parts and a group's parts spelled as the stored columns and rows hold it,
 * where they hold a spelling of that very number. Other values, custom fields included, are as `record` has them.
 * Returns `record` itself when nothing is put back.
 */
export function withStoredSpellings(record: Raw, stored: StoredSpellings): Raw {
  const replaced = new Map<string, unknown>();
  for (const [name, key] of pickedKeys(record)) {
    const value = record[key];
    if (name === 'accessPermissions' || name === 'groups') {
      const list = name === 'groups' ? listRespelled(value, stored.groups, groupsRespelled) : listRespelled(value, stored.permissions, itemsRespelled);
      if (list !== undefined) replaced.set(key, list);
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
// hasAccess last: a boolean, never a number to put back (itemParts looks at it too; no number reads as one).
const PERMISSION_PARTS = [...PERMISSION_TEXTS, 'hasAccess'] as const;

/** accessPermissions or groups (a list, or {items}) with its items' numbers spelled as the stored rows hold them; undefined when nothing is put back. */
function listRespelled<Row>(value: unknown, rows: readonly Row[], respellItems: (items: unknown[], rows: readonly Row[]) => unknown[] | undefined): unknown {
  if (rows.length === 0) return undefined;
  if (Array.isArray(value)) return respellItems(value, rows);
  if (!isJsonObject(value)) return undefined;
  const key = pickedKeys(value).get('items');
  const items = key === undefined ? undefined : value[key];
  const respelledItems = Array.isArray(items) ? respellItems(items, rows) : undefined;
  return respelledItems === undefined ? undefined : withPart(value, key!, respelledItems);
}

/** The length of a row's texts: what spelling an item as the row costs. */
function rowLength(...texts: (string | null)[]): number {
  return texts.reduce((n, text) => n + (text?.length ?? 0), 1);
}

/** One permission or group item: its keys of each part (pickedKeys) and whether a text part is a number. */
interface ItemParts {
  keys: (string | undefined)[];
  hasNumber: boolean;
}

/**
 * How one text part of a permission or group is matched, as a key of the indexes below: a number by what
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
function rowIndex<Row>(rows: readonly Row[], keysOf: (row: Row) => string[][]): Map<string, number[]> {
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
 * Rows claimed one item each: `untaken(list)` is the first row of `list` (a list of an index of
 * rows) not in `taken`. Per list (items of one key share it), how far its rows are taken is kept,
 * so each row of it is passed over once.
 */
function rowClaims(): { taken: Set<number>; untaken: (fitting: number[]) => number | undefined } {
  const taken = new Set<number>();
  const next = new Map<number[], number>();
  const untaken = (fitting: number[]) => {
    let at = next.get(fitting) ?? 0;
    while (at < fitting.length && taken.has(fitting[at]!)) at++;
    next.set(fitting, at);
    return fitting[at];
  };
  return { taken, untaken };
}

/** What item i of `items` holds in its part j (its key `parts` found), undefined where it holds none. */
function partOf(items: unknown[], parts: readonly (ItemParts | undefined)[]): (i: number, j: number) => unknown {
  return (i, j) => {
    const key = parts[i]!.keys[j];
    return key === undefined ? undefined : (items[i] as Raw)[key];
  };
}

/**
 * Rows for items, one item to a row at most, each item given one of the rows it fits. In stages,
 * each item of a stage without a row takes the first untaken row of its list; then each item of
 * `order` still without one looks for a row through the others (an augmenting path: a row taken
 * by an item that can move to another free row of its list, and so on), so that as many rows get
 * an item as can: each row was read from an item of this record, and greedy alone could give an
 * item a row that only another one fits (type "100" and variableName 1E2 took row 100/100 of an
 * item 1E2/"100" that jsonb made 100/"100" too). Steps bound the search: once spent, greedy's
 * answer stands (linear in what the user holds: a hostile list of many alike items).
 */
function matchRows(stages: readonly (readonly [readonly number[], (i: number) => number[]])[], order: readonly number[], steps: number): Map<number, number> {
  const rowOf = new Map<number, number>();
  const owner = new Map<number, number>();
  const { taken, untaken } = rowClaims();
  const give = (i: number, r: number) => {
    rowOf.set(i, r);
    owner.set(r, i);
    taken.add(r);
  };
  for (const [items, fitting] of stages) {
    for (const i of items) {
      const r = rowOf.has(i) ? undefined : untaken(fitting(i));
      if (r !== undefined) give(i, r);
    }
  }
  const fittingOf = stages[stages.length - 1]![1];
  for (const start of order) {
    if (rowOf.has(start) || steps <= 0) continue;
    // Depth first, without recursion: each frame an item and how far along its rows; `via` the row it holds.
    const visited = new Set<number>();
    const stack: { item: number; at: number; via: number | undefined }[] = [{ item: start, at: 0, via: undefined }];
    while (stack.length > 0 && steps-- > 0) {
      const frame = stack[stack.length - 1]!;
      const list = fittingOf(frame.item);
      if (frame.at >= list.length) {
        stack.pop();
        continue;
      }
      const r = list[frame.at++]!;
      if (visited.has(r)) continue;
      visited.add(r);
      const holder = owner.get(r);
      if (holder !== undefined) {
        stack.push({ item: holder, at: 0, via: r });
        continue;
      }
      // A free row: each item on the path takes the next one's row, the last this one.
      let row = r;
      for (let k = stack.length - 1; k >= 0; k--) {
        give(stack[k]!.item, row);
        row = stack[k]!.via!;
      }
      break;
    }
  }
  return rowOf;
}

/** One item's parts: the keys of `names` it holds (pickedKeys), and whether one of them is a number. */
function itemParts(item: unknown, names: readonly string[]): ItemParts | undefined {
  if (!isJsonObject(item)) return undefined;
  const picked = pickedKeys(item);
  const keys = names.map((p) => picked.get(p));
  return { keys, hasNumber: keys.some((k) => k !== undefined && numberLiteralOf(item[k]) !== undefined) };
}

/**
 * The items with their numbers spelled as the rows hold them; undefined when none changes. Each
 * item is matched with a row it reads as (a text part equal, a number part a spelling of that
 * number, hasAccess the same), each row with one item where it can be: two items whose key differs
 * only in a number's spelling (1E2 and 100) are two rows, and stay two, never merged into one. The
 * items with the fewest rows to choose from choose first, and an item with nothing to put back
 * (no number) before any; an item left without a row then looks for one through the others
 * (matchRows): so an item that fits only one row gets it. Rows are found through an
 * index of their parts' keys, not by comparing each item with each row: a hostile user of many
 * permissions cost the square of their number.
 */
function itemsRespelled(items: unknown[], rows: readonly AccessPermissionRow[]): unknown[] | undefined {
  const parts = items.map((item) => itemParts(item, PERMISSION_PARTS));
  // Nothing to spell back: no item holds a number in a text part.
  if (!parts.some((p) => p?.hasNumber)) return undefined;
  const part = partOf(items, parts);
  const accessAt = (i: number) => booleanValue(part(i, 3));
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
  const matched = matchRows([[order, (i) => choices.get(i)!]], order, 8 * (items.length + rows.length));
  let out: unknown[] | undefined;
  const respell = (i: number, row: AccessPermissionRow, which: readonly number[]) => {
    let item = items[i] as Raw;
    for (const j of which) {
      const key = parts[i]!.keys[j];
      if (key !== undefined) item = withPart(item, key, respelled(item[key], row[PERMISSION_TEXTS[j]!]));
    }
    if (item !== items[i]) (out ??= items.slice())[i] = item;
  };
  // The copies listed twice (below) search the rows of their key and take a row's spelling, a
  // copy each: bounded, the rest keep jsonb's spelling. Linear in what the user holds: its items,
  // its rows and their texts (a row's text may be a long spelling of a short number: 1E000…0 is 1).
  let searchesLeft = 8 * (items.length + rows.length + rows.reduce((n, row) => n + rowLength(row.type, row.variableName, row.name), 0));
  const decisions = new Map<string, { row: AccessPermissionRow | undefined; low: unknown }>();
  for (const i of order) {
    if (!parts[i]!.hasNumber && choices.get(i)!.length === 0) continue;
    const own = matched.get(i);
    if (own !== undefined) {
      respell(i, rows[own]!, [0, 1, 2]);
      continue;
    }
    const r = choices.get(i)![0];
    if (r !== undefined) {
      // A copy that reads as a row another copy took: spelled as it, charged.
      searchesLeft -= rowLength(rows[r]!.type, rows[r]!.variableName, rows[r]!.name);
      if (searchesLeft >= 0) respell(i, rows[r]!, [0, 1, 2]);
      continue;
    }
    // No row reads as this item: a copy of a permission listed twice that does not count (the row
    // is the other copy's). Its key is that of a row it loses to (permissionOutranks: the copy
    // granting access, then the greater name), spelled so. Its name, where the spelling jsonb gave
    // it would now outrank the row's (1.0E2 lost to 1.5e-3; 100 does not), is spelled as the
    // row's (the same number) or low (0.000100E6): the copy still loses, and its value is as stored.
    const mine = accessRank(accessAt(i));
    const nameValue = part(i, 2);
    const name = storedText(nameValue);
    // Equal in hasAccess, whether the name as jsonb gave it outranks the row's.
    const nameOutranks = (row: AccessPermissionRow) => name !== null && name !== undefined && (row.name === null || name > row.name);
    const losesAsItIs = (row: AccessPermissionRow) => (mine !== accessRank(row.hasAccess) ? mine < accessRank(row.hasAccess) : !nameOutranks(row));
    // The name spelled to lose to the row's: the row's spelling of the same number, else a low one.
    const lowName = (row: AccessPermissionRow) => {
      const literal = numberLiteralOf(nameValue);
      if (literal === undefined || row.name === null || mine !== accessRank(row.hasAccess)) return undefined;
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
    searchesLeft -= rowLength(row.type, row.variableName, row.name);
    if (searchesLeft < 0) continue;
    respell(i, row, [0, 1]);
    const nameKey = parts[i]!.keys[2];
    if (nameKey === undefined || low === undefined) continue;
    (out ??= items.slice())[i] = withPart(out[i] as Raw, nameKey, low);
  }
  return out;
}

const GROUP_PARTS = ['variableName', 'label', 'type'] as const;

/**
 * The group items with their numbers spelled as the rows hold them (the user's group rows, each
 * with the label and type cpq.groups holds of it); undefined when none changes. Two steps:
 * - Which group each item names. Each row was read from an item of this record, so each gets one
 *   (groups 1E2 and "100" stay two): an item whose name fits one row is of it; the others, through
 *   an index of the rows' parts, take the rows left, first an item that reads as a row in name,
 *   label and type, then one that does not describe its group, then any (cpq.groups' label is the
 *   site's, which another user's record may have changed), then through the others (matchRows).
 *   An item left over is a copy listed twice: of a row it reads as (and may be the copy that
 *   counts), else of one whose copy that counts it loses to, else of the first of its name.
 * - Which copy of a group counts (groupOutranks, comparing texts: jsonb's 100 for 1.0E2 outranks
 *   1.5e-3): the one that reads as the row in label and type, else the first given the row. It is
 *   spelled as the row; the other copies get the row's name and, only where the one that counts
 *   reads as the row (else which copy counted is not known), a label or type that would outrank
 *   it spelled low (spelledLow) or as it, so that they still lose (copyAs).
 */
function groupsRespelled(items: unknown[], rows: readonly GroupRow[]): unknown[] | undefined {
  const parts = items.map((item) => itemParts(item, GROUP_PARTS));
  if (!parts.some((p) => p?.hasNumber)) return undefined;
  const part = partOf(items, parts);
  const itemKey = (i: number, count: number) => {
    let key = '';
    for (let j = 0; j < count; j++) {
      const k = itemPartKey(part(i, j));
      if (k === undefined) return undefined;
      key += `\u0000${k}`;
    }
    return key;
  };
  // By label and type only an item that says them: one that does not leaves the site's, whatever they are.
  const describes = (i: number) => parts[i]!.keys[1] !== undefined || parts[i]!.keys[2] !== undefined;
  const byName = rowIndex(rows, (row) => [rowPartKeys(row.variableName)]);
  const byRow = rowIndex(rows, (row) => [rowPartKeys(row.variableName), rowPartKeys(row.label), rowPartKeys(row.type)]);
  const none: number[] = [];
  const listed = [...items.keys()].filter((i) => parts[i] !== undefined);
  const named = new Map(listed.map((i) => [i, byName.get(itemKey(i, 1) ?? '') ?? none]));
  const described = new Map(listed.map((i) => [i, describes(i) ? (byRow.get(itemKey(i, 3) ?? '') ?? none) : none]));
  // Per row, the keys its label and type are found by (made once: a row may have many copies).
  const rowKeys = new Map<number, [string[], string[]]>();
  /** Whether item i reads as row r in label and type (its name it was given r by). */
  const readsAs = (i: number, r: number) => {
    if (!describes(i)) return false;
    let keys = rowKeys.get(r);
    if (keys === undefined) rowKeys.set(r, (keys = [rowPartKeys(rows[r]!.label), rowPartKeys(rows[r]!.type)]));
    return keys.every((alternatives, j) => alternatives.includes(itemPartKey(part(i, j + 1)) ?? '\u0001'));
  };

  // Which group each item names.
  const ofName = (i: number) => named.get(i)!;
  const rowOf = matchRows(
    [
      [listed.filter((i) => named.get(i)!.length === 1), ofName],
      [
        listed.filter((i) => described.get(i)!.length > 0).sort((a, b) => described.get(a)!.length - described.get(b)!.length || a - b),
        (i) => described.get(i)!,
      ],
      [listed.filter((i) => !describes(i)), ofName],
      [listed.filter((i) => describes(i)), ofName],
    ],
    listed,
    8 * (items.length + rows.length),
  );

  // An item left over that reads as a row in name, label and type is a copy of it, and may be the one that counts.
  for (const i of listed) if (!rowOf.has(i) && described.get(i)!.length > 0) rowOf.set(i, described.get(i)![0]!);
  // Which copy counts, per row: one that reads as it in label and type, else the first matched.
  const takers = new Map<number, number>();
  // Per row, whether its copy that counts reads as it: decided once (a long label compared per copy cost their product).
  const counts = new Map<number, boolean>();
  for (const [i, r] of rowOf) {
    if (counts.get(r) === true) continue;
    const reads = readsAs(i, r);
    if (!takers.has(r) || reads) {
      takers.set(r, i);
      counts.set(r, reads);
    }
  }
  // Spelling a copy as a row costs the row's texts, a copy each: bounded by what was read (the
  // user's items, its rows and their texts), linear in it; once spent, a copy keeps jsonb's
  // spelling. A row's text may be a long spelling of a short number (1E000…0 is 1).
  let budget = 8 * (items.length + rows.reduce((n, row) => n + rowLength(row.variableName, row.label, row.type), 0));
  const spelled = new Map<number, Raw>();
  for (const [r, t] of takers) {
    let item = items[t] as Raw;
    [rows[r]!.variableName, rows[r]!.label, rows[r]!.type].forEach((text, j) => {
      const key = parts[t]!.keys[j];
      if (key !== undefined) item = withPart(item, key, respelled(item[key], text));
    });
    spelled.set(t, item);
  }
  /** What item i holds as text in part j: what the columns store of it (storedText), null where it says nothing. */
  const textOf = (i: number, item: Raw, j: number) => {
    const key = parts[i]!.keys[j];
    return key === undefined ? null : (storedText(item[key]) ?? null);
  };
  // Per row, the texts of the copy that counts, as spelled (read once: copies of a row share them).
  const takerTexts = new Map<number, [string | null, string | null]>();
  const textsOf = (r: number) => {
    let texts = takerTexts.get(r);
    if (texts === undefined) {
      const t = takers.get(r)!;
      takerTexts.set(r, (texts = [textOf(t, spelled.get(t)!, 1), textOf(t, spelled.get(t)!, 2)]));
    }
    return texts;
  };
  /**
   * Copy i of row r, spelled to lose to the copy that counts (groupOutranks, comparing texts),
   * or undefined when it cannot be or the budget is spent. Its name as the row's. Its label, then
   * its type, where it would outrank as jsonb spells it (jsonb's 100 for 1.0E2 outranks 1.5e-3):
   * spelled low (spelledLow) where a spelling of it sorts below, else as the copy that counts
   * where it is that number (a tie: the next part decides). Where the copy that counts does not
   * read as the row (the site's label is another user's), which copy counted is not known, and
   * the copy keeps jsonb's label and type.
   */
  const copyAs = (i: number, r: number): Raw | undefined => {
    const t = takers.get(r)!;
    const nameKey = parts[i]!.keys[0];
    budget -= rowLength(rows[r]!.variableName);
    if (budget < 0 || nameKey === undefined) return undefined;
    let item = withPart(items[i] as Raw, nameKey, respelled((items[i] as Raw)[nameKey], rows[r]!.variableName));
    if (counts.get(r) !== true || describes(i) !== describes(t)) return item;
    const theirs = textsOf(r);
    /** The copy with part j spelled low, below `other`, where it is a number that can be (charged), else undefined. */
    const lowered = (j: number, other: string | null): Raw | undefined => {
      const key = parts[i]!.keys[j];
      const literal = key === undefined ? undefined : numberLiteralOf(item[key]);
      if (literal === undefined || other === null) return undefined;
      budget -= rowLength(other) + literal.length;
      if (budget < 0) return undefined;
      const low = spelledLow(literal, other.length);
      const lowText = storedText(low);
      return typeof lowText === 'string' && lowText < other ? withPart(item, key!, low) : undefined;
    };
    for (const j of [1, 2]) {
      const mine = textOf(i, item, j);
      const other = j === 1 ? theirs[0] : theirs[1];
      if (mine === other) continue;
      if (mine === null || (other !== null && mine < other)) return item;
      // It outranks as jsonb spells it: spelled low here, or in the label it ties on, else as the
      // copy that counts where it is that number (a tie: the next part decides).
      const low = lowered(j, other) ?? (j === 2 && textOf(i, item, 1) === theirs[0] ? lowered(1, theirs[0]) : undefined);
      if (low !== undefined) return low;
      const key = parts[i]!.keys[j]!;
      const same = respelled(item[key], other);
      if (same === undefined) return undefined;
      item = withPart(item, key, same);
    }
    return item;
  };
  /** Whether copy i, spelled as copyAs spells it, loses to the copy that counts of row r (where that one is known to count). */
  const losesTo = (i: number, r: number) => {
    const t = takers.get(r)!;
    if (describes(i) !== describes(t)) return !describes(i);
    return counts.get(r) === true && copyAs(i, r) !== undefined;
  };
  // Per copy alike (the same parts as jsonb gave them, saying them or not), the row of a copy left over: searched once.
  const copyRows = new Map<string, number | undefined>();
  const copyRow = (i: number): number | undefined => {
    const alike = itemKey(i, 3);
    if (alike === undefined) return named.get(i)![0];
    const decision = `${alike}\u0001${describes(i)}`;
    if (copyRows.has(decision)) return copyRows.get(decision);
    let found: number | undefined;
    for (const r of named.get(i)!) {
      if (budget < 0) break;
      if (losesTo(i, r)) {
        found = r;
        break;
      }
    }
    copyRows.set(decision, found ?? named.get(i)![0]);
    return found ?? named.get(i)![0];
  };
  let out: unknown[] | undefined;
  for (const i of listed) {
    if (!parts[i]!.hasNumber) continue;
    let item = spelled.get(i);
    if (item === undefined) {
      const r = rowOf.get(i) ?? (budget < 0 ? undefined : copyRow(i));
      item = r === undefined ? undefined : copyAs(i, r);
    }
    if (item !== undefined && item !== items[i]) (out ??= items.slice())[i] = item;
  }
  return out;
}
