import { isLosslessNumber, LosslessNumber } from 'lossless-json';

/*
 * Oracle CPQ "Manage Collections" query parameters: q (MongoDB-style filter), orderby, fields.
 * Oracle's examples use strict JSON and relaxed forms (unquoted keys, single-quoted strings,
 * a top level without braces), so q goes through a small tolerant parser, never eval.
 */

export class QueryError extends Error {}

export type QueryLiteral = string | boolean | null | LosslessNumber | QueryLiteral[] | QueryObject;
export interface QueryObject {
  [key: string]: QueryLiteral;
}

const IDENTIFIER_START = /[A-Za-z_$]/;
const IDENTIFIER_PART = /[A-Za-z0-9_$.-]/;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** JSON plus: unquoted keys, single-quoted strings. Numbers stay exact as LosslessNumber. */
class RelaxedJsonParser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseDocument(): QueryLiteral {
    const value = this.value();
    this.skipSpace();
    if (this.pos < this.text.length) this.fail('unexpected text');
    return value;
  }

  private value(): QueryLiteral {
    this.skipSpace();
    const ch = this.text[this.pos];
    if (ch === '{') return this.object();
    if (ch === '[') return this.array();
    if (ch === '"' || ch === "'") return this.string();
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return this.number();
    if (ch !== undefined && IDENTIFIER_START.test(ch)) {
      const word = this.identifier();
      if (word === 'true') return true;
      if (word === 'false') return false;
      if (word === 'null') return null;
      this.fail(`unquoted value "${word}"`);
    }
    return this.fail(ch === undefined ? 'unexpected end' : `unexpected "${ch}"`);
  }

  private object(): QueryObject {
    this.pos++; // {
    const result: QueryObject = Object.create(null) as QueryObject;
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return result;
    }
    for (;;) {
      this.skipSpace();
      const ch = this.text[this.pos];
      let key: string;
      if (ch === '"' || ch === "'") key = this.string();
      else if (ch !== undefined && IDENTIFIER_START.test(ch)) key = this.identifier();
      else return this.fail('expected a key');
      this.skipSpace();
      this.expect(':');
      result[key] = this.value();
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect('}');
      return result;
    }
  }

  private array(): QueryLiteral[] {
    this.pos++; // [
    const result: QueryLiteral[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.value());
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect(']');
      return result;
    }
  }

  private string(): string {
    const quote = this.text[this.pos++];
    let out = '';
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos++] as string;
      if (ch === quote) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const escape = this.text[this.pos++];
      if (escape === 'u') {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
      } else if (escape !== undefined && escape in ESCAPES) {
        out += ESCAPES[escape]!;
      } else {
        this.fail('bad escape');
      }
    }
    return this.fail('unterminated string');
  }

  private number(): LosslessNumber {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) return this.fail('bad number');
    this.pos += match[0].length;
    return new LosslessNumber(match[0]);
  }

  private identifier(): string {
    const start = this.pos;
    while (this.pos < this.text.length && IDENTIFIER_PART.test(this.text[this.pos] as string)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] as string)) this.pos++;
  }

  private expect(ch: string): void {
    if (this.text[this.pos] !== ch) this.fail(`expected "${ch}"`);
    this.pos++;
  }

  private fail(message: string): never {
    throw new QueryError(`${message} at position ${this.pos}`);
  }
}

export function parseRelaxedJson(text: string): QueryLiteral {
  return new RelaxedJsonParser(text).parseDocument();
}

// ---------------------------------------------------------------- filter

export type CompareOperator = '$eq' | '$ne' | '$gt' | '$gte' | '$lt' | '$lte';
const COMPARE_OPERATORS: ReadonlySet<string> = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte']);

export type Condition =
  | { kind: 'and'; conditions: Condition[] }
  | { kind: 'or'; conditions: Condition[] }
  | { kind: 'compare'; path: string[]; operator: CompareOperator; operand: QueryLiteral }
  | { kind: 'exists'; path: string[]; exists: boolean };

function isQueryObject(value: unknown): value is QueryObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !isLosslessNumber(value);
}

/** Parses q. Empty text matches everything (undefined). Throws QueryError when malformed. */
export function parseFilter(q: string): Condition | undefined {
  const text = q.trim();
  if (text === '') return undefined;
  // Oracle's own example sends "$and:[...]" with no braces around it.
  const document = parseRelaxedJson(text.startsWith('{') ? text : `{${text}}`);
  if (!isQueryObject(document)) throw new QueryError('q must be an object');
  const condition = compileDocument(document);
  return condition.kind === 'and' && condition.conditions.length === 0 ? undefined : condition;
}

function compileDocument(document: QueryObject): Condition {
  const conditions: Condition[] = [];
  for (const [key, value] of Object.entries(document)) {
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) throw new QueryError(`${key} needs a non-empty array`);
      const parts = value.map((part) => {
        if (!isQueryObject(part)) throw new QueryError(`${key} items must be objects`);
        return compileDocument(part);
      });
      conditions.push(key === '$and' ? { kind: 'and', conditions: parts } : { kind: 'or', conditions: parts });
    } else if (key.startsWith('$')) {
      throw new QueryError(`unsupported operator ${key}`);
    } else {
      conditions.push(...compileField(key, value));
    }
  }
  return conditions.length === 1 ? (conditions[0] as Condition) : { kind: 'and', conditions };
}

function compileField(key: string, value: QueryLiteral): Condition[] {
  const path = key.split('.');
  if (path.some((segment) => segment === '')) throw new QueryError(`bad field path "${key}"`);
  if (!isQueryObject(value)) return [{ kind: 'compare', path, operator: '$eq', operand: value }];
  const keys = Object.keys(value);
  const operatorCount = keys.filter((k) => k.startsWith('$')).length;
  if (operatorCount === 0) return [{ kind: 'compare', path, operator: '$eq', operand: value }];
  if (operatorCount !== keys.length) throw new QueryError(`field "${key}" mixes operators and values`);
  return keys.map((operator): Condition => {
    const operand = value[operator] as QueryLiteral;
    if (operator === '$exists') {
      if (typeof operand !== 'boolean') throw new QueryError('$exists needs true or false');
      return { kind: 'exists', path, exists: operand };
    }
    if (!COMPARE_OPERATORS.has(operator)) throw new QueryError(`unsupported operator ${operator}`);
    if (operator !== '$eq' && operator !== '$ne' && typeof operand !== 'string' && !isLosslessNumber(operand)) {
      throw new QueryError(`${operator} needs a string or a number`);
    }
    return { kind: 'compare', path, operator: operator as CompareOperator, operand };
  });
}

/**
 * Values at a dotted path. Arrays met on the way are traversed (any element may match),
 * as MongoDB does, so "groups.items.variableName" reaches every group of a user.
 */
export function valuesAtPath(root: unknown, path: readonly string[]): unknown[] {
  let current: unknown[] = [root];
  for (const segment of path) {
    const next: unknown[] = [];
    for (const value of current) {
      if (Array.isArray(value)) {
        for (const element of value) {
          if (isPlainObject(element) && element[segment] !== undefined) next.push(element[segment]);
        }
      } else if (isPlainObject(value) && value[segment] !== undefined) {
        next.push(value[segment]);
      }
    }
    if (next.length === 0) return next;
    current = next;
  }
  const expanded: unknown[] = [];
  for (const value of current) {
    expanded.push(value);
    if (Array.isArray(value)) expanded.push(...(value as unknown[]));
  }
  return expanded;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !isLosslessNumber(value);
}

/** CPQ's {value, displayValue} objects compare by value: Oracle's own example is q={"status":1}. */
function comparableValue(candidate: unknown, operand: unknown): unknown {
  if (isPlainObject(candidate) && 'value' in candidate && !isPlainObject(operand) && !Array.isArray(operand)) return candidate.value;
  return candidate;
}

type Numeric = number | bigint | LosslessNumber;

function isNumeric(value: unknown): value is Numeric {
  return typeof value === 'number' || typeof value === 'bigint' || isLosslessNumber(value);
}

/** number when exact, bigint for integers beyond 2^53 (JS compares number and bigint exactly). */
export function numericKey(value: Numeric): number | bigint {
  if (typeof value !== 'object') return value;
  const text = value.toString();
  if (/^-?\d+$/.test(text)) {
    const asNumber = Number(text);
    return Number.isSafeInteger(asNumber) ? asNumber : BigInt(text);
  }
  return Number(text);
}

function compareNumeric(a: Numeric, b: Numeric): number {
  const x = numericKey(a);
  const y = numericKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (isNumeric(a) && isNumeric(b)) return compareNumeric(a, b) === 0;
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => deepEqual(a[key], b[key]));
  }
  return false;
}

/** Ordered comparison only within a type (string/string by code unit, number/number), like MongoDB. */
function orderedCompare(candidate: unknown, operand: unknown): number | undefined {
  if (typeof candidate === 'string' && typeof operand === 'string') return candidate < operand ? -1 : candidate > operand ? 1 : 0;
  if (isNumeric(candidate) && isNumeric(operand)) return compareNumeric(candidate, operand);
  return undefined;
}

function compareMatches(candidates: unknown[], operator: CompareOperator, operand: QueryLiteral): boolean {
  if (operator === '$eq' || operator === '$ne') {
    // MongoDB semantics: {field: null} also matches a missing field.
    const equal = candidates.some((c) => deepEqual(comparableValue(c, operand), operand)) || (operand === null && candidates.length === 0);
    return operator === '$eq' ? equal : !equal;
  }
  return candidates.some((c) => {
    const order = orderedCompare(comparableValue(c, operand), operand);
    return order !== undefined && orderedMatches(order, operator);
  });
}

function orderedMatches(order: number, operator: Exclude<CompareOperator, '$eq' | '$ne'>): boolean {
  switch (operator) {
    case '$gt':
      return order > 0;
    case '$gte':
      return order >= 0;
    case '$lt':
      return order < 0;
    case '$lte':
      return order <= 0;
  }
}

export function matchesFilter(condition: Condition, root: unknown): boolean {
  switch (condition.kind) {
    case 'and':
      return condition.conditions.every((c) => matchesFilter(c, root));
    case 'or':
      return condition.conditions.some((c) => matchesFilter(c, root));
    case 'exists':
      return valuesAtPath(root, condition.path).length > 0 === condition.exists;
    case 'compare': {
      // A top-level text field against text (an incremental window on dateModified): the same
      // answer as the general path below, without its arrays, at 250,000 users per request.
      const { path, operator, operand } = condition;
      if (path.length === 1 && typeof operand === 'string' && operator !== '$eq' && operator !== '$ne' && isPlainObject(root)) {
        const value = root[path[0]!];
        if (typeof value === 'string') return orderedMatches(value < operand ? -1 : value > operand ? 1 : 0, operator);
      }
      return compareMatches(valuesAtPath(root, path), operator, operand);
    }
  }
}

// ---------------------------------------------------------------- orderby

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
export function compareSortValues(a: SortValue, b: SortValue): number {
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

/** "a,b" -> set of top-level field names; undefined when absent. */
export function parseFieldList(raw: string | null): Set<string> | undefined {
  if (raw === null) return undefined;
  const names = raw
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  return names.length > 0 ? new Set(names) : undefined;
}
