import { LosslessNumber, isLosslessNumber } from 'lossless-json';

export { LosslessNumber, isLosslessNumber };

/**
 * Exact JSON for CPQ payloads, at close to native speed.
 *
 * JSON.parse turns integers above 2^53 (CPQ partyIds such as 181556695830934950) into the
 * nearest double. Before parsing, such integers are rewritten as marked strings
 * ("\u0000int64:<digits>"); after stringifying, the marks become bare digits again. A JSON
 * string cannot hold a raw NUL (JSON.stringify writes it as the six characters \u0000), so a
 * mark can only come from here. LosslessNumber values (lossless-json) are understood too.
 */
const MARK = '\u0000int64:';
const MARKED = /"\\u0000int64:(-?\d+)"/g;
// A string literal (skipped as a whole) or an integer literal of 16 or more digits.
const STRING_OR_LONG_INTEGER = /"(?:[^"\\]|\\.)*"|(-?\d{16,})(?![.\deE])/g;

function isUnsafeInteger(digits: string): boolean {
  return !Number.isSafeInteger(Number(digits));
}

/** JSON.parse that keeps every integer digit for digit. Throws SyntaxError on bad JSON. */
export function parseExactJson(text: string): unknown {
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  const marked = text.replace(STRING_OR_LONG_INTEGER, (match, digits: string | undefined) =>
    digits !== undefined && isUnsafeInteger(digits) ? `"\\u0000int64:${digits}"` : match,
  );
  return JSON.parse(marked);
}

/** A JSON object (not an array, null or an int64 value) as parseExactJson returns them. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isLosslessNumber(value);
}

/** The digits of a marked int64 string, or undefined for any other value. */
export function markedIntegerDigits(value: unknown): string | undefined {
  return typeof value === 'string' && value.startsWith(MARK) ? value.slice(MARK.length) : undefined;
}

function losslessReplacer(_key: string, value: unknown): unknown {
  return isLosslessNumber(value) ? `${MARK}${value.value}` : value;
}

/** JSON.stringify that writes int64 values back as the digits they were read as. */
export function stringifyExactJson(value: unknown, options: { hasLosslessNumbers?: boolean } = {}): string {
  let text = JSON.stringify(value, options.hasLosslessNumbers ? losslessReplacer : undefined) ?? 'null';
  // A LosslessNumber from elsewhere would otherwise come out as {"value":...,"isLosslessNumber":true}.
  if (!options.hasLosslessNumbers && text.includes('"isLosslessNumber":true')) text = JSON.stringify(value, losslessReplacer) ?? 'null';
  return text.includes('\\u0000int64:') ? text.replace(MARKED, '$1') : text;
}

/** The decimal digits of an integer value read by parseExactJson, or undefined when it is not an integer. */
export function integerText(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  const marked = markedIntegerDigits(value);
  if (marked !== undefined) return marked;
  if (isLosslessNumber(value)) return /^-?\d+$/.test(value.value) ? value.value : undefined;
  if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) return value.trim();
  return undefined;
}

/** A value as JSON-ish text for messages: marked integers show their digits. */
export function displayValue(value: unknown): string | undefined {
  return markedIntegerDigits(value) ?? (isLosslessNumber(value) ? value.value : undefined);
}
