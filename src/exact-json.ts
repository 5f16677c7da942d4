import { randomBytes } from 'node:crypto';
import { LosslessNumber, isLosslessNumber } from 'lossless-json';
import { REORDERING_CHARACTER_CLASS } from './errors.js';

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
 * The pre-pass (markInexactNumbers) walks the text once: string literals are skipped with
 * indexOf, which runs natively over their bytes, so only punctuation and numbers are looked at
 * one character at a time, and only a number of 16 or more characters, or with a fraction or an
 * exponent, is checked further. It is linear in the text on any input, valid or not (a string
 * never closed runs to the end; JSON.parse then reports the error), and it never makes invalid
 * JSON valid: it marks only a well-formed number literal in a value's place.
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
/**
 * The mark of a literal Postgres can hold but would write out far longer than it was sent: past
 * the growth a text's numbers may take (MAX_WRITTEN_OUT_GROWTH). Refused as UNSTORABLE is.
 */
const OVERGROWN = `\u0000${NONCE}~`;
const OVERGROWN_ESCAPED = `\\u0000${NONCE}~`;
/** What MARK, UNSTORABLE and OVERGROWN start with. */
const MARKS_START = `\u0000${NONCE}`;
const MARKED = new RegExp(`"${MARK_ESCAPED.replace(/\\/g, '\\\\')}([-+.\\deE]+)"`, 'g');
/**
 * How many characters the numbers of one text (a record, a body) may add, beyond the text's own
 * length, when Postgres writes them out. jsonb keeps a number's value, not its notation, and
 * writes it without an exponent: 1e131071 (8 characters) reads back from raw::text, an export or
 * a change's diff as 131072 digits. Unbounded, a record of a few kilobytes read back as
 * gigabytes: a hostile site's way to exhaust the next run's memory (readStoredRecords) or an
 * export's. 1e400 or a double's largest value (309 digits) stay far inside it; counted all the
 * same (1e+308, as a double gives it back, is 309 characters too).
 */
export const MAX_WRITTEN_OUT_GROWTH = 65_536;
/** Only a long literal or one with an exponent can be beyond Postgres numeric. */
function mayOverflowNumeric(literal: string): boolean {
  return literal.length > NUMERIC_MAX_SCALE || literal.includes('e') || literal.includes('E');
}

const QUOTE = 34;
const BACKSLASH = 92;
const MINUS = 45;
const DOT = 46;
const ZERO = 48;
const NINE = 57;
const COLON = 58;
const COMMA = 44;
const LBRACKET = 91;
const RBRACKET = 93;
const LBRACE = 123;
const RBRACE = 125;
const LOWER_E = 101;
const UPPER_E = 69;
const PLUS = 43;
/** A JSON number literal, whole: what JSON.parse would read as one number. */
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
/**
 * Deeper than this, a record's own text is not stored as sent (see parseExactRecord): Postgres
 * parses jsonb recursively, and the stringifying path names the field that is too deep.
 */
const MAX_DEPTH_STORED_AS_SENT = 64;

/**
 * The most values (objects, arrays and their members, counted by their brackets and commas) one
 * user record may hold, and one body read whole (a page of the company list, a detail, a
 * collection's envelope, a page of users the item cutter does not take apart, which a real CPQ
 * never sends). Parsed, a value costs tens of bytes: one record of 8 MB of `{},{},...` (2.7
 * million objects, far under the page cap) filled the image's 192 MB heap, and so did four
 * whole pages of a million values at once. A real record holds hundreds; a page of a thousand
 * companies, tens of thousands.
 */
export const MAX_RECORD_VALUES = 100_000;
export const MAX_BODY_VALUES = 300_000;

/** A text holding more values than it may (MAX_RECORD_VALUES, MAX_BODY_VALUES): refused before it is parsed. */
export class TooComplexError extends Error {
  constructor(limit: number) {
    super(`holds more than ${limit} values (objects, arrays and their members); refused before parsing, as too complex`);
    this.name = 'TooComplexError';
  }
}

/** What the pre-pass found in a text. */
interface Marked {
  /** The text with every inexact number literal marked; the text itself when none is. */
  text: string;
  /** A literal Postgres numeric cannot hold, or that took the text past its growth (OVERGROWN), was marked as such. */
  unstorable: boolean;
  /** The deepest nesting of arrays and objects. */
  depth: number;
  /** The text holds more values than the pre-pass was given leave to count: it stopped there. */
  tooComplex: boolean;
  /** The values counted (brackets and commas), as maxValues bounds them. */
  values: number;
}

/** The end of the string literal opening at `start` (the index of its closing quote), or -1 when it is never closed. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  while (end > 0 && text.charCodeAt(end - 1) === BACKSLASH) {
    // The quote is escaped when an odd number of backslashes precede it. Each run is counted
    // once (it ends at this quote), so the walk stays linear.
    let k = end - 1;
    while (text.charCodeAt(k) === BACKSLASH) k--;
    if ((end - 1 - k) % 2 === 0) break;
    end = text.indexOf('"', end + 1);
  }
  return end;
}

/**
 * The marked string that stands for a literal (an inexact one, or one a double gives back that
 * grows past the bound), and how much longer Postgres writes it out than it is written (0 for one
 * it cannot hold, or that is marked OVERGROWN). `growthLeft`: what the text's numbers may still
 * add; a literal growing past it is marked OVERGROWN.
 */
function markOf(literal: string, growthLeft: number): { mark: string; unstorable: boolean; growth: number } {
  const parts = mayOverflowNumeric(literal) ? decimalParts(literal) : undefined;
  if (parts === undefined) return { mark: `"${MARK_ESCAPED}${literal}"`, unstorable: false, growth: 0 };
  if (partsOverflow(literal, parts) !== undefined) return { mark: `"${UNSTORABLE_ESCAPED}${literal}"`, unstorable: true, growth: 0 };
  const growth = Math.max(0, writtenOutLength(parts) - literal.length);
  const overgrown = growth > growthLeft;
  // An overgrown literal fails the record by itself: not counted, so that a later literal that
  // fits is not marked too (a partyId of 1E2 named as the culprit instead of the number that was).
  return { mark: `"${overgrown ? OVERGROWN_ESCAPED : MARK_ESCAPED}${literal}"`, unstorable: overgrown, growth: overgrown ? 0 : growth };
}

/**
 * The pre-pass: marks every number literal a double would not give back as written. `open`
 * holds the containers entered (LBRACE or LBRACKET), so a number is marked only in a value's
 * place: after `:`, after `[`, after `,` in an array, or alone (a number as an object key is
 * invalid JSON, and a marked string there would be valid).
 */
function markInexactNumbers(text: string, maxValues: number): Marked {
  const n = text.length;
  const open: number[] = [];
  let depth = 0;
  // Brackets and commas: one more than the values of the text, or a few more in invalid JSON.
  let values = 0;
  let parts: string[] | undefined;
  let copied = 0;
  let unstorable = false;
  let growthLeft = MAX_WRITTEN_OUT_GROWTH + n;
  /** The last character that was not whitespace, outside strings and numbers (0 at the start). */
  let previous = 0;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) break;
      previous = QUOTE;
      i = end + 1;
    } else if ((c >= ZERO && c <= NINE) || c === MINUS) {
      let j = i + 1;
      let simple = true;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d >= ZERO && d <= NINE) continue;
        if (d === DOT || d === LOWER_E || d === UPPER_E || d === PLUS || d === MINUS) simple = false;
        else break;
      }
      // An integer of 15 digits or fewer is exact as a double (-0 aside); only longer literals,
      // fractions and exponents need the exact check.
      if (!simple || j - i >= 16 || (j - i === 2 && c === MINUS && text.charCodeAt(i + 1) === ZERO)) {
        const literal = text.slice(i, j);
        const inValuePlace = previous === COLON || previous === LBRACKET || previous === 0 || (previous === COMMA && open[open.length - 1] === LBRACKET);
        const exact = String(Number(literal)) === literal;
        // A double gives 1e+308 and 5e-324 back as written (String writes a lowercase e), yet
        // Postgres writes them out in 309 and 326 characters: their growth counts too, and they
        // are marked only when it passes the bound.
        if (inValuePlace && (!exact || literal.includes('e')) && JSON_NUMBER.test(literal)) {
          const marked = markOf(literal, growthLeft);
          growthLeft -= marked.growth;
          unstorable ||= marked.unstorable;
          if (!exact || marked.unstorable) {
            (parts ??= []).push(text.slice(copied, i), marked.mark);
            copied = j;
          }
        }
      }
      previous = ZERO;
      i = j;
    } else {
      if (c === LBRACE || c === LBRACKET) {
        if (++values > maxValues) return { text, unstorable, depth, tooComplex: true, values };
        open.push(c);
        if (open.length > depth) depth = open.length;
      } else if (c === RBRACE || c === RBRACKET) open.pop();
      else if (c === COMMA && ++values > maxValues) return { text, unstorable, depth, tooComplex: true, values };
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) previous = c;
      i++;
    }
  }
  if (parts === undefined) return { text, unstorable, depth, tooComplex: false, values };
  parts.push(text.slice(copied));
  return { text: parts.join(''), unstorable, depth, tooComplex: false, values };
}

/**
 * JSON.parse that keeps every number literal as sent (see above): a literal a double would
 * change comes back as a marked string, read with `markedNumberLiteral`. Throws SyntaxError on bad JSON,
 * TooComplexError past `maxValues` values (a body's bound by default).
 */
export function parseExactJson(text: string, maxValues = MAX_BODY_VALUES): unknown {
  return parseMarked(text, markInexactNumbers(text, maxValues), maxValues);
}

/**
 * parseExactJson of one part of a body, with the values it holds: for a body parsed in parts
 * under one bound. Past `leftValues`, TooComplexError of `bodyValues`, the body's bound.
 */
export function parseExactJsonPart(text: string, leftValues: number, bodyValues = MAX_BODY_VALUES): { value: unknown; values: number } {
  const marked = markInexactNumbers(text, leftValues);
  if (marked.tooComplex) throw new TooComplexError(bodyValues);
  return { value: parseMarked(text, marked, leftValues), values: marked.values };
}

/**
 * JSON.parse of the marked text. Its error is that of the text as sent: the marked text would
 * show the nonce in the message's excerpt and shift its positions. (The marks never make a text
 * invalid, so the text as sent fails too.)
 */
function parseMarked(text: string, marked: Marked, maxValues: number): unknown {
  if (marked.tooComplex) throw new TooComplexError(maxValues);
  try {
    return JSON.parse(marked.text);
  } catch (err) {
    if (marked.text !== text) JSON.parse(text);
    throw err;
  }
}

/**
 * parseExactJson for one record (at most MAX_RECORD_VALUES values, else TooComplexError), with the record's own text when it can be stored in `raw` as
 * sent, which spares stringifying the parsed record again: no `\u` escape (a NUL or an unpaired
 * surrogate, which Postgres cannot store, can only come that way from decoded bytes), no number
 * Postgres numeric cannot hold, nesting at most MAX_DEPTH_STORED_AS_SENT deep. Otherwise
 * `storedAsSent` is undefined and normalize stringifies the record, naming what it cannot store.
 */
export function parseExactRecord(text: string): { value: unknown; storedAsSent: string | undefined } {
  const marked = markInexactNumbers(text, MAX_RECORD_VALUES);
  const value = parseMarked(text, marked, MAX_RECORD_VALUES);
  const storable = !marked.unstorable && marked.depth <= MAX_DEPTH_STORED_AS_SENT && !text.includes('\\u');
  return { value, storedAsSent: storable ? text : undefined };
}

/** A JSON object (not an array, null or an exact number) as parseExactJson returns them. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isLosslessNumber(value);
}

/**
 * `value` when it is a string as CPQ sent it; undefined for anything else, a number parseExactJson
 * marked included. For text CPQ must send as text (a login, a loginName, a partyNumber): a check
 * of typeof alone takes such a number for a string that starts with the mark.
 */
export function sentString(value: unknown): string | undefined {
  return typeof value === 'string' && !value.startsWith(MARKS_START) ? value : undefined;
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
  if (typeof value === 'string' && value.startsWith(OVERGROWN)) {
    const literal = value.slice(OVERGROWN.length);
    return `${shortLiteral(literal)}, ${writtenOutLength(decimalParts(literal)!)} characters as Postgres writes it out (jsonb drops the exponent): past what one record's numbers may add to its length (${MAX_WRITTEN_OUT_GROWTH} characters and the record's own length)`;
  }
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
/** Postgres's numeric input refuses an exponent of INT_MAX / 2 or more, in either direction. */
const NUMERIC_MAX_EXPONENT = 1073741823;

/** The parts of a JSON number literal: value = sign (digits) x 10^exponent, digits without leading zeros; the scale as written. */
interface DecimalParts {
  negative: boolean;
  digits: string;
  exponent: number;
  scale: number;
}

function decimalParts(literal: string): DecimalParts | undefined {
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
  return parts && partsOverflow(literal, parts);
}

/** numericOverflow of a literal already taken apart. */
function partsOverflow(literal: string, parts: DecimalParts): string | undefined {
  // Postgres refuses a written exponent this large whatever the digits, even 0e2000000000
  // (Postgres 15 from 2^30 - 1 on; later versions from 2^31).
  const written = Number(/[eE]([+-]?\d+)$/.exec(literal)?.[1] ?? '0');
  if (Math.abs(written) >= NUMERIC_MAX_EXPONENT)
    return `has the exponent ${Math.abs(written) > 1e15 ? '(more than 15 digits)' : written}; Postgres accepts exponents between -${NUMERIC_MAX_EXPONENT} and ${NUMERIC_MAX_EXPONENT}, exclusive`;
  const integerDigits = parts.digits.length + parts.exponent;
  if (parts.digits !== '' && integerDigits > NUMERIC_MAX_INTEGER_DIGITS)
    return `needs ${integerDigits} digits before the decimal point; Postgres stores at most ${NUMERIC_MAX_INTEGER_DIGITS}`;
  if (parts.scale > NUMERIC_MAX_SCALE) return `needs ${parts.scale} digits after the decimal point; Postgres stores at most ${NUMERIC_MAX_SCALE}`;
  return undefined;
}

/**
 * The length of a number literal Postgres can hold as numeric (and jsonb) writes it out: no
 * exponent, the written scale (1.50e1 is 15.0), no minus before a zero.
 */
function writtenOutLength({ negative, digits, exponent, scale }: DecimalParts): number {
  const integerPart = digits === '' ? 1 : Math.max(1, digits.length + exponent);
  return (negative && digits !== '' ? 1 : 0) + integerPart + (scale > 0 ? scale + 1 : 0);
}

/**
 * The number `text` spells, as parseExactJson reads it, when `text` is a JSON number literal
 * that Postgres numeric (and so jsonb) writes out as `written` (1E2 and 100, 1.5e-3 and 0.0015,
 * -0 and 0; not 1.50 and 1.5: numeric keeps the written scale); else undefined. For a number a
 * text column stored as sent: the spelling jsonb's copy of it lost. Compared by the literals'
 * parts, never written out (a hostile 1e131071 stays 8 characters).
 */
export function numberAsWritten(text: string, written: string): unknown {
  const a = numberSignature(text);
  return a !== undefined && a === numberSignature(written) ? parseExactJson(text) : undefined;
}

/**
 * What Postgres numeric keeps of a JSON number literal, its value and written scale, as a text
 * two literals share exactly when numeric writes them out alike (1E2 and 100: "1e2/0"; 1.50 and
 * 1.5 differ); undefined for what is no JSON number literal. Never writes the number out.
 */
export function numberSignature(literal: string): string | undefined {
  const parts = JSON_NUMBER.test(literal) ? decimalParts(literal) : undefined;
  if (parts === undefined) return undefined;
  const { negative, digits, exponent, scale } = parts;
  // By hand, not /0+$/: that retries from each zero of a long inner run of zeros (quadratic).
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === ZERO) end--;
  const significant = digits.slice(0, end);
  const value = significant === '' ? '0' : `${negative ? '-' : ''}${significant}e${exponent + digits.length - significant.length}`;
  return `${value}/${scale}`;
}

/**
 * The number `literal` spells, spelled `0.` (`-0.` for a negative number), then `zeros` zeros,
 * then its digits, with the exponent that keeps its value and scale (100 with 3 zeros:
 * 0.000100E6): of the spellings Postgres numeric writes out alike, one that sorts as text before
 * any text not starting so (a text it starts with sorts before it). A zero is spelled -0 (Postgres
 * numeric writes it as 0), with its scale's zeros. Undefined for what is no JSON number literal.
 */
export function spelledLow(literal: string, zeros: number): unknown {
  const parts = JSON_NUMBER.test(literal) ? decimalParts(literal) : undefined;
  if (parts === undefined) return undefined;
  const { negative, digits, exponent, scale } = parts;
  // A zero: -0, or -0. and its scale's zeros, the first of its spellings in text order (-0 below -0.0).
  if (digits === '') return parseExactJson(scale === 0 ? '-0' : `-0.${'0'.repeat(scale)}`);
  return parseExactJson(`${negative ? '-' : ''}0.${'0'.repeat(zeros)}${digits}E${exponent + digits.length + zeros}`);
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

const MAX_COUNT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A count or a place in a list as a JSON number gives it, in any notation (4, 4.0, 4e0): a whole
 * number from 0 to 2^53 - 1; undefined for anything else, text included.
 */
export function countValue(value: unknown): number | undefined {
  if (typeof value === 'string' && markedNumberLiteral(value) === undefined) return undefined;
  const whole = integerValue(value);
  // Past 2^53 - 1 no count: no site holds that many users, and a double would round it (a proof's
  // totalResults stored as 9007199254740992 when CPQ said ...993).
  return whole === undefined || whole < 0n || whole > MAX_COUNT ? undefined : Number(whole);
}

/** A value as JSON-ish text for messages: exact numbers show their literal, at most 40 characters of it. */
export function displayValue(value: unknown): string | undefined {
  const literal =
    markedNumberLiteral(value) ??
    (typeof value === 'string' && value.startsWith(UNSTORABLE) ? value.slice(UNSTORABLE.length) : undefined) ??
    (typeof value === 'string' && value.startsWith(OVERGROWN) ? value.slice(OVERGROWN.length) : undefined) ??
    (isLosslessNumber(value) ? value.value : undefined);
  return literal === undefined ? undefined : shortLiteral(literal);
}

/**
 * The first `units` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair:
 * half of one is shown escaped (\ud83d), which names a lone surrogate the text does not hold.
 */
export function headOf(text: string, units: number): string {
  const code = text.charCodeAt(units - 1);
  const next = text.charCodeAt(units);
  return code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? text.slice(0, units - 1) : text.slice(0, units);
}

/** The last `units` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair (as headOf). */
export function tailOf(text: string, units: number): string {
  const start = text.length - units;
  if (start <= 0) return text;
  const code = text.charCodeAt(start);
  const before = text.charCodeAt(start - 1);
  return code >= 0xdc00 && code <= 0xdfff && before >= 0xd800 && before <= 0xdbff ? text.slice(start + 1) : text.slice(start);
}

/**
 * A login or field path as error messages show it: at most 100 characters, control characters
 * (C0, DEL, C1), the characters that reorder text (bidirectional overrides, line separators: review
 * HA) and lone surrogates escaped.
 */
export function shownName(text: string): string {
  const cut = text.length > 100 ? `${headOf(text, 100)}…` : text;
  return cut.replace(NOT_SHOWN_IN_NAMES, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const NOT_SHOWN_IN_NAMES = new RegExp(
  `[\\u0000-\\u001f\\u007f-\\u009f${REORDERING_CHARACTER_CLASS}]|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]`,
  'g',
);

/** A value as errors about records show it: a number's literal, a string quoted (40 characters at most), "an object". */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  const digits = displayValue(value);
  if (digits !== undefined) return digits;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${headOf(value, 40)}…` : value);
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === undefined) return String(value);
  return typeof value; // a function or a symbol: nothing a JSON parser produces
}
