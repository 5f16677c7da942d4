import { randomBytes } from 'node:crypto';
import { LosslessNumber, isLosslessNumber } from 'lossless-json';

export { LosslessNumber, isLosslessNumber };

/**
 * Exact JSON for CPQ payloads, at close to native speed.
 *
 * JSON.parse turns every number into the nearest double: partyId 318766884429645907 becomes
 * 318766884429645900, 0.1234567890123456789 loses its tail, 1e400 becomes Infinity (and is then
 * written as null), -0 and 1.50 lose their sign and scale. Before parsing, every number literal
 * that a double would not give back as written is rewritten as a marked string (MARK followed
 * by the literal); after stringifying, the marks become the literals again. Numbers that
 * survive a double unchanged (most ids, counts, codes) are left to JSON.parse.
 *
 * The pre-pass is one regular-expression scan whose every alternative consumes a whole token
 * without backtracking, so it is linear in the text on any input, valid or not (a string never
 * closed runs to the end; JSON.parse then reports the error).
 *
 * MARK holds a random nonce drawn once per process: a CPQ string cannot forge a number by
 * starting with "\u0000" and a guess. (A string that does hold NUL is refused by normalize,
 * since Postgres cannot store it.)
 */
const NONCE = randomBytes(12).toString('hex');
const MARK = `\u0000${NONCE}:`;
/** MARK as JSON.stringify writes it inside a string literal. */
const MARK_ESCAPED = `\\u0000${NONCE}:`;
/**
 * The mark of a literal Postgres numeric cannot hold (1e999999). It is not turned back into a
 * number by stringifyExactJson: the record's raw text then holds an escaped NUL, which sends
 * normalize looking for what cannot be stored, and it names the field.
 */
const UNSTORABLE = `\u0000${NONCE}!`;
const UNSTORABLE_ESCAPED = `\\u0000${NONCE}!`;
const MARKED = new RegExp(`"${MARK_ESCAPED.replace(/\\/g, '\\\\')}([-+.\\deE]+)"`, 'g');
/** A string literal (to its closing quote, or to the end when never closed) or a number literal. */
const STRING_OR_NUMBER = /"[^"\\]*(?:\\[\s\S][^"\\]*)*"?|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const QUOTE = 34;
/**
 * A cheap test that lets most texts skip the scan: true for every text holding a number literal
 * that a double would not give back as written. Such a literal has 16 or more digits, an
 * exponent, a fraction ending in 0, a value below 1e-6 (six zeros after the point), or is -0;
 * a literal of 15 digits or fewer otherwise prints back as written. The rules that strings would
 * often match too (dates end in ".000Z") require what follows a number in JSON: a delimiter or
 * the end. A string can still match (it then only costs the scan); a number cannot slip by.
 */
const MAYBE_INEXACT = /[\d.]{16}|\d[eE][+-]?\d+(?=[\s,\]}]|$)|\.\d*0(?=[\s,\]}]|$)|-0(?=[\s,\]}]|$)|\.0{6}/;

function markInexact(token: string): string {
  // Strings pass through whole; only their first character is looked at.
  if (token.charCodeAt(0) === QUOTE) return token;
  if (String(Number(token)) === token) return token;
  return `"${mayOverflowNumeric(token) && numericOverflow(token) ? UNSTORABLE_ESCAPED : MARK_ESCAPED}${token}"`;
}

/** Only a long literal or one with an exponent can be beyond Postgres numeric. */
function mayOverflowNumeric(literal: string): boolean {
  return literal.length > NUMERIC_MAX_SCALE || literal.includes('e') || literal.includes('E');
}

/**
 * JSON.parse that keeps every number literal as sent (see above): a literal a double would
 * change comes back as a marked string, read with `numberLiteral`. Throws SyntaxError on bad JSON.
 */
export function parseExactJson(text: string): unknown {
  if (!MAYBE_INEXACT.test(text)) return JSON.parse(text);
  return JSON.parse(text.replace(STRING_OR_NUMBER, markInexact));
}

/** A JSON object (not an array, null or an exact number) as parseExactJson returns them. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isLosslessNumber(value);
}

/** The literal of a number parseExactJson kept as sent, or undefined for any other value. */
export function markedNumberLiteral(value: unknown): string | undefined {
  return typeof value === 'string' && value.startsWith(MARK) ? value.slice(MARK.length) : undefined;
}

/**
 * Why a value is a number Postgres numeric cannot hold ("needs 131073 digits before the decimal
 * point; ..."), or undefined for any other value.
 */
export function unstorableNumber(value: unknown): string | undefined {
  if (typeof value === 'string' && value.startsWith(UNSTORABLE))
    return `${shortLiteral(value.slice(UNSTORABLE.length))} ${numericOverflow(value.slice(UNSTORABLE.length))}`;
  if (isLosslessNumber(value) && mayOverflowNumeric(value.value)) {
    const overflow = numericOverflow(value.value);
    if (overflow) return `${shortLiteral(value.value)} ${overflow}`;
  }
  return undefined;
}

function shortLiteral(literal: string): string {
  return literal.length > 40 ? `${literal.slice(0, 40)}… (${literal.length} characters)` : literal;
}

function losslessReplacer(_key: string, value: unknown): unknown {
  if (!isLosslessNumber(value)) return value;
  return `${mayOverflowNumeric(value.value) && numericOverflow(value.value) ? UNSTORABLE : MARK}${value.value}`;
}

/** JSON.stringify as it behaves: undefined for undefined, a function or a symbol (its lib type says string). */
const jsonText = JSON.stringify as (value: unknown, replacer?: (key: string, value: unknown) => unknown) => string | undefined;

/** JSON.stringify that writes every exact number back as the literal it was read as. */
export function stringifyExactJson(value: unknown, options: { hasLosslessNumbers?: boolean } = {}): string {
  let text = jsonText(value, options.hasLosslessNumbers ? losslessReplacer : undefined) ?? 'null';
  // A LosslessNumber from elsewhere would otherwise come out as {"value":...,"isLosslessNumber":true}.
  if (!options.hasLosslessNumbers && text.includes('"isLosslessNumber":true')) text = jsonText(value, losslessReplacer) ?? 'null';
  return text.includes(MARK_ESCAPED) ? text.replace(MARKED, '$1') : text;
}

/** The literal of an exact number in any of its forms (double, marked, LosslessNumber), or undefined. */
export function numberLiteralOf(value: unknown): string | undefined {
  if (typeof value === 'number') return String(value);
  return markedNumberLiteral(value) ?? (isLosslessNumber(value) ? value.value : undefined);
}

const NUMBER_PARTS = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;
/** Postgres numeric (and so jsonb) holds at most this many digits before the decimal point... */
const NUMERIC_MAX_INTEGER_DIGITS = 131072;
/** ...and this many after it, counting the written scale (1.50 has two). */
const NUMERIC_MAX_SCALE = 16383;

/** The parts of a JSON number literal: value = sign (digits) x 10^exponent, digits without leading zeros. */
function decimalParts(literal: string): { negative: boolean; digits: string; exponent: number; scale: number } | undefined {
  const m = NUMBER_PARTS.exec(literal);
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  const written = Number(m[4] ?? '0');
  const all = (m[2]! + fraction).replace(/^0+/, '');
  return { negative: m[1] === '-', digits: all, exponent: written - fraction.length, scale: Math.max(0, fraction.length - written) };
}

/**
 * Why Postgres numeric cannot hold a number literal (it would fail the whole COPY), or
 * undefined when it can: at most 131072 digits before the point and a scale of 16383.
 */
export function numericOverflow(literal: string): string | undefined {
  const parts = decimalParts(literal);
  if (!parts) return undefined;
  const integerDigits = parts.digits.length + parts.exponent;
  if (parts.digits !== '' && integerDigits > NUMERIC_MAX_INTEGER_DIGITS)
    return `needs ${integerDigits} digits before the decimal point; Postgres stores at most ${NUMERIC_MAX_INTEGER_DIGITS}`;
  if (parts.scale > NUMERIC_MAX_SCALE) return `needs ${parts.scale} digits after the decimal point; Postgres stores at most ${NUMERIC_MAX_SCALE}`;
  return undefined;
}

/** Whole numbers in a typed column: int64 at most, so anything past 20 digits is out of range. */
const MAX_INTEGER_DIGITS = 20;
const BEYOND_EVERY_INTEGER_COLUMN = 10n ** BigInt(MAX_INTEGER_DIGITS);

/**
 * The value of a whole number, exactly: a JSON number whose value is whole in any notation
 * (100, 1E2, 100.0, -0), or a string of digits. Undefined for anything else, fractions
 * included (0.99999999999999999999 is not 1). A whole number of more than 20 digits comes
 * back as +-10^20, beyond every integer column, so that the caller's range check refuses it
 * without expanding a hostile 1e999999999.
 */
export function integerValue(value: unknown): bigint | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  const literal = numberLiteralOf(value) ?? (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? value.trim() : undefined);
  if (literal === undefined) return undefined;
  const parts = decimalParts(literal);
  if (!parts) return undefined;
  let { digits, exponent } = parts;
  if (exponent < 0) {
    // Whole only when every digit past the point is zero.
    const cut = digits.length + exponent;
    if (cut < 0 ? digits !== '' : !/^0*$/.test(digits.slice(cut))) return undefined;
    digits = digits.slice(0, Math.max(cut, 0));
    exponent = 0;
  }
  if (digits === '') return 0n;
  const magnitude = digits.length + exponent > MAX_INTEGER_DIGITS ? BEYOND_EVERY_INTEGER_COLUMN : BigInt(digits) * 10n ** BigInt(exponent);
  return parts.negative ? -magnitude : magnitude;
}

/** A value as JSON-ish text for messages: exact numbers show their literal, at most 40 characters of it. */
export function displayValue(value: unknown): string | undefined {
  const literal =
    markedNumberLiteral(value) ??
    (typeof value === 'string' && value.startsWith(UNSTORABLE) ? value.slice(UNSTORABLE.length) : undefined) ??
    (isLosslessNumber(value) ? value.value : undefined);
  return literal === undefined ? undefined : shortLiteral(literal);
}
