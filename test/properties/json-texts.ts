import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { LosslessNumber, isLosslessNumber, parse as parseLossless } from 'lossless-json';
import { markedNumberLiteral, numericOverflow, unstorableNumber } from '../../src/exact-json.js';

/*
 * JSON texts of any shape for the parser's properties, with hostile strings (escapes, quotes,
 * backslashes, \u0000, lone surrogates), number literals no double holds, and any whitespace;
 * and the oracle they are checked against: JSON.parse's verdict, with each number as
 * lossless-json reads it.
 */

// size 'max': every length up to max alike. At the default size the integer part never passed 11
// digits, and the pre-pass's rule for literals beyond 2^53 went untried (review CA).
const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'.split('')), minLength: min, maxLength: max, size: 'max' });
export const literal = fc
  .record({
    sign: fc.constantFrom('', '-'),
    int: fc.oneof(
      fc.constant('0'),
      fc.tuple(fc.constantFrom(...'123456789'.split('')), digits(0, 24)).map(([a, b]) => a + b),
    ),
    fraction: fc.option(digits(1, 22), { nil: undefined }),
    exponent: fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3)), { nil: undefined }),
  })
  .map(({ sign, int, fraction, exponent }) => `${sign}${int}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : exponent.join('')}`)
  .chain((general) =>
    fc.oneof(
      fc.constant(general),
      // Integers alone, in the band where those of 16 digits stop being exact as doubles (2^53
      // up): the pre-pass checks integer literals from 16 characters on, and a check from 17 went
      // unseen, the literals above rarely being integers of that length (review CA).
      fc.tuple(fc.constantFrom('', '-'), fc.bigInt({ min: 2n ** 53n - 2n, max: 10n ** 16n - 1n })).map(([sign, n]) => `${sign}${n}`),
    ),
  );
/** A JSON text of any shape, with hostile strings (escapes, quotes, backslashes) and literals, and any whitespace. */
export const space = fc.constantFrom('', ' ', '\n  ', '\t', '\r\n');
export const stringLiteral = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"\\u0000"', '"\\ud800"', '"\\\\"', '"a\\"b"', '"\\\\\\""', '"\\u0031\\u0032"', '"12345678901234567890"', '"say \\"hi there\\" now"'),
);
export const { text: jsonText } = fc.letrec<{ text: string; value: string; array: string; object: string }>((tie) => ({
  text: fc.tuple(space, tie('value'), space).map((p) => p.join('')),
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, literal, stringLiteral, fc.constantFrom('true', 'false', 'null'), tie('array'), tie('object')),
  array: fc
    .array(
      fc.tuple(space, tie('value'), space).map((p) => p.join('')),
      { maxLength: 4 },
    )
    .map((items) => `[${items.join(',')}]`),
  // Keys said twice at times, the copies apart or side by side, the same or differing: JSON allows
  // it and the last copy counts, as JSON.parse and the oracle (lastCopyLossless) read it.
  object: fc
    .tuple(
      fc.array(fc.tuple(space, stringLiteral, space, tie('value'), space), { maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(), fc.nat(), space, tie('value')), { maxLength: 2 }),
    )
    .map(([members, again]) => {
      const all = members.slice();
      // A key of an earlier member said again, with another value, at a place among the members.
      for (const [which, at, a, v] of again) if (members.length > 0) all.splice(at % (all.length + 1), 0, [a, members[which % members.length]![1], '', v, '']);
      return `{${all.map(([a, k, b, v, c]) => `${a}${k}${b}:${v}${c}`).join(',')}}`;
    }),
}));

/** What a text should parse to: each number as a double when that gives its literal back, else as its literal, marked unstorable when Postgres numeric cannot hold it. */
function expected(value: unknown): unknown {
  if (isLosslessNumber(value)) {
    if (String(Number(value.value)) === value.value) return Number(value.value);
    return numericOverflow(value.value) === undefined ? { literal: value.value } : { unstorable: value.value };
  }
  if (Array.isArray(value)) return value.map(expected);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expected(v)]));
  return value;
}
export function comparable(value: unknown): unknown {
  const literal = markedNumberLiteral(value);
  if (literal !== undefined) return { literal };
  // (A text whose numbers grow past MAX_WRITTEN_OUT_GROWTH would read as unstorable too, which
  // expected() does not model: with exponents of three digits at most, it takes some 65 numbers
  // of the largest in one text.)
  if (typeof value === 'string' && unstorableNumber(value) !== undefined) return { unstorable: value.slice(value.search(/[!~]/) + 1) };
  if (Array.isArray(value)) return value.map(comparable);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]));
  return value;
}

/** JSON.parse's verdict on a text: its value with every number as lossless-json reads it, or 'invalid'. */
export function oracle(text: string): unknown {
  try {
    JSON.parse(text);
  } catch {
    return 'invalid';
  }
  return expected(lastCopyLossless(text));
}

/**
 * A valid text as lossless-json reads it, but a key said twice in one object counting as its
 * last copy, as JSON.parse and README read it: lossless-json throws on such a key when the copies
 * differ (a damaged text splices in `"k":0` beside `"k":0e0`), which failed the oracle itself.
 * Then each number literal (outside strings: the only digits a valid text has there) is sent
 * through JSON.parse as a marked string, and turned back into its exact literal.
 */
function lastCopyLossless(text: string): unknown {
  try {
    return parseLossless(text);
  } catch (err) {
    if (!(err as Error).message.startsWith('Duplicate key')) throw err;
  }
  const marker = `\u0000number ${randomUUID()} `;
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/g, (token) =>
    token.startsWith('"') ? token : JSON.stringify(marker + token),
  );
  return JSON.parse(marked, (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(marker) ? new LosslessNumber(value.slice(marker.length)) : value,
  );
}
