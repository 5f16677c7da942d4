import { isLosslessNumber, LosslessNumber } from 'lossless-json';

/*
 * Responses can hold 1000 users of ~70 fields each, so serialization goes through the native
 * JSON.stringify. int64 values travel through it as marked strings and are turned back into
 * bare digits afterwards. JSON.stringify always escapes U+0000 as the six characters \u0000,
 * so the marker pattern below can only come from markInt64 (or from a stored string that
 * literally starts with NUL + "int64:", which generated and test data never contain).
 */
const INT64_MARK = '\u0000int64:';
const MARKED_INT64 = /"\\u0000int64:(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"/g;

function markInt64(value: LosslessNumber | bigint): string {
  return INT64_MARK + value.toString();
}

/**
 * A JSON value held as the exact text to send, for values no JavaScript value can carry as
 * written: a number literal such as 0.1234567890123456789, 1E+400 or -0, or a string with the
 * escapes spelled one particular way. Tests use it for custom fields; the text must be valid JSON.
 */
export class RawJson {
  constructor(readonly text: string) {
    JSON.parse(text); // throws SyntaxError for text that is not one JSON value
    Object.freeze(this);
  }
}

/* RawJson travels through JSON.stringify as a marked string holding its text, unescaped after. */
const RAW_MARK = '\u0000rawjson:';
const MARKED_RAW = /"\\u0000rawjson:((?:[^"\\]|\\.)*)"/g;

/**
 * Sets an own property as JSON.parse does, a "__proto__" key included: plain assignment would set
 * the object's prototype instead, and the key would never be sent.
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Copies a JSON-like value into a form JSON.stringify can write, replacing LosslessNumber and
 * bigint by markers. Frozen shared sub-objects without numbers are returned as they are.
 */
export function toWireValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'bigint' ? markInt64(value) : value;
  }
  if (isLosslessNumber(value)) return markInt64(value);
  if (value instanceof RawJson) return RAW_MARK + value.text;
  if (Array.isArray(value)) return value.map(toWireValue);
  let copy: Record<string, unknown> | undefined;
  const source = value as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const item = source[key];
    const wire = toWireValue(item);
    if (wire !== item && copy === undefined) copy = { ...source };
    if (copy !== undefined) setOwn(copy, key, wire);
  }
  return copy ?? source;
}

/**
 * A key's value sent after earlier copies of the key (`key` as sent): marked as a RawJson is, its
 * text `earlier,"key":…,"key":value`, which follows the key's first `"key":` in the record.
 */
export function saidAfter(key: string, earlier: readonly unknown[], value: unknown): string {
  return RAW_MARK + [...earlier, value].map(stringifyExact).join(`,${JSON.stringify(key)}:`);
}

/** JSON text of a value prepared by toWireValue, with int64 digits and RawJson texts written verbatim. */
export function stringifyWire(value: unknown): string {
  let text = JSON.stringify(value);
  if (text.includes('\\u0000int64:')) text = text.replace(MARKED_INT64, '$1');
  if (text.includes('\\u0000rawjson:')) text = text.replace(MARKED_RAW, (_match, escaped: string) => JSON.parse(`"${escaped}"`) as string);
  return text;
}

/** Exact JSON for any value holding LosslessNumber / bigint. */
export function stringifyExact(value: unknown): string {
  return stringifyWire(toWireValue(value));
}

/** Deep copy that keeps LosslessNumber instances (structuredClone would strip their class). */
export function deepCopy<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (isLosslessNumber(value)) return new LosslessNumber(value.value) as T;
  if (value instanceof RawJson) return value; // immutable
  if (Array.isArray(value)) return value.map(deepCopy) as T;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) setOwn(copy, key, deepCopy(item));
  return copy as T;
}

/** Deep-freezes a value so it can be shared between stored records. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const item of Object.values(value as Record<string, unknown>)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
