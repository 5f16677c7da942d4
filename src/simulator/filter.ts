import { isLosslessNumber } from 'lossless-json';
import { parseRelaxedJson, type QueryLiteral, type QueryObject } from './relaxed-json.js';
import { isNumeric, isPlainObject, numericKey, QueryError, valuesAtPath, type Numeric } from './query.js';

/* q: a MongoDB-style filter ($eq $ne $gt $gte $lt $lte $exists, $and, $or) over a user record. */

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

/** CPQ's {value, displayValue} objects compare by value: Oracle's own example is q={"status":1}. */
function comparableValue(candidate: unknown, operand: unknown): unknown {
  if (isPlainObject(candidate) && 'value' in candidate && !isPlainObject(operand) && !Array.isArray(operand)) return candidate.value;
  return candidate;
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
