import { isNumeric, isPlainObject, numericKey, QueryError, valuesAtPath } from './query.js';

/* orderby: "field:asc,other:desc", and the order the simulator sorts by. */

export interface SortKey {
  path: string[];
  descending: boolean;
}

/** "field:asc,other:desc"; asc is the default. */
export function parseOrderBy(raw: string): SortKey[] {
  const keys: SortKey[] = [];
  for (const part of raw.split(',')) {
    const spec = part.trim();
    if (spec === '') continue;
    const [field = '', direction = 'asc', ...rest] = spec.split(':').map((s) => s.trim());
    const dir = direction.toLowerCase();
    if (field === '' || rest.length > 0 || (dir !== 'asc' && dir !== 'desc')) throw new QueryError(`bad orderby "${spec}"`);
    const path = field.split('.');
    if (path.some((segment) => segment === '')) throw new QueryError(`bad orderby field "${field}"`);
    keys.push({ path, descending: dir === 'desc' });
  }
  return keys;
}

type SortValue = undefined | boolean | number | bigint | string | object;

function sortValue(root: unknown, path: readonly string[]): SortValue {
  const [first] = valuesAtPath(root, path);
  const value = isPlainObject(first) && 'value' in first ? first.value : first;
  if (value === null || value === undefined) return undefined;
  if (isNumeric(value)) return numericKey(value);
  return value;
}

function typeRank(value: SortValue): number {
  switch (typeof value) {
    case 'undefined':
      return 0;
    case 'boolean':
      return 1;
    case 'number':
    case 'bigint':
      return 2;
    case 'string':
      return 3;
    default:
      return 4;
  }
}

/** Missing/null first, then booleans, numbers, strings (by UTF-16 code unit, case-sensitive). */
function compareSortValues(a: SortValue, b: SortValue): number {
  const rankA = typeRank(a);
  const rankB = typeRank(b);
  if (rankA !== rankB) return rankA - rankB;
  if (rankA === 0 || rankA === 4) return 0;
  const x = a as boolean | number | bigint | string;
  const y = b as boolean | number | bigint | string;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Stable sort; keys are extracted once per item. */
export function sortByKeys<T>(items: readonly T[], keys: readonly SortKey[], rootOf: (item: T) => unknown): T[] {
  if (keys.length === 0) return items.slice();
  const decorated = items.map((item, index) => ({ item, index, values: keys.map((key) => sortValue(rootOf(item), key.path)) }));
  decorated.sort((a, b) => {
    for (let i = 0; i < keys.length; i++) {
      const order = compareSortValues(a.values[i], b.values[i]);
      if (order !== 0) return keys[i]?.descending ? -order : order;
    }
    return a.index - b.index;
  });
  return decorated.map((d) => d.item);
}
