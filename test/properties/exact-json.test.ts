import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLosslessNumber, parse as parseLossless } from 'lossless-json';
import { markedNumberLiteral, numericOverflow, parseExactJson, parseExactRecord, stringifyExactJson, unstorableNumber } from '../../src/exact-json.js';

/*
 * Every JSON number literal comes back as written, wherever it stands (a value, an array item,
 * the whole text) and whatever strings stand around it; in particular the pre-pass's cheap
 * test (only long literals, fractions and exponents are checked) never lets an inexact literal
 * slip through. Generated JSON texts are read as lossless-json reads them (every number its
 * literal), and a text JSON.parse refuses is refused too: the pre-pass never makes it valid.
 */

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'.split('')), minLength: min, maxLength: max });
const literal = fc
  .record({
    sign: fc.constantFrom('', '-'),
    int: fc.oneof(
      fc.constant('0'),
      fc.tuple(fc.constantFrom(...'123456789'.split('')), digits(0, 24)).map(([a, b]) => a + b),
    ),
    fraction: fc.option(digits(1, 22), { nil: undefined }),
    exponent: fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3)), { nil: undefined }),
  })
  .map(({ sign, int, fraction, exponent }) => `${sign}${int}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : exponent.join('')}`);
// Strings that look like numbers, dates among them: they must stay strings.
const nearby = fc.constantFrom('"2024-03-19T01:31:00.000Z"', '"1.50"', '"-0"', '"1e5"', '"x\\"1.0"', '"12345678901234567"');

const runs = Number(process.env.FC_NUM_RUNS ?? 300);

describe('exact JSON, generated literals', () => {
  it('a number literal comes back as written, alone, in an array or in an object', () => {
    fc.assert(
      fc.property(literal, nearby, (n, s) => {
        for (const text of [n, `[${n}]`, `{"s":${s},"n":${n}}`, `[${s},${n},${s}]`, `{"n":${n}}`]) {
          expect(stringifyExactJson(parseExactJson(text))).toBe(text);
        }
      }),
      { numRuns: runs },
    );
  });
});

/** A JSON text of any shape, with hostile strings (escapes, quotes, backslashes) and literals, and any whitespace. */
const space = fc.constantFrom('', ' ', '\n  ', '\t', '\r\n');
const stringLiteral = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"\\u0000"', '"\\ud800"', '"\\\\"', '"a\\"b"', '"\\\\\\""', '"\\u0031\\u0032"', '"12345678901234567890"'),
);
const { text: jsonText } = fc.letrec<{ text: string; value: string; array: string; object: string }>((tie) => ({
  text: fc.tuple(space, tie('value'), space).map((p) => p.join('')),
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, literal, stringLiteral, fc.constantFrom('true', 'false', 'null'), tie('array'), tie('object')),
  array: fc
    .array(
      fc.tuple(space, tie('value'), space).map((p) => p.join('')),
      { maxLength: 4 },
    )
    .map((items) => `[${items.join(',')}]`),
  // Keys unique by what they say (lossless-json, the oracle, refuses duplicates; JSON.parse keeps the last).
  object: fc
    .uniqueArray(fc.tuple(space, stringLiteral, space, tie('value'), space), { maxLength: 4, selector: (m) => JSON.parse(m[1]) as string })
    .map((members) => `{${members.map(([a, k, b, v, c]) => `${a}${k}${b}:${v}${c}`).join(',')}}`),
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
function comparable(value: unknown): unknown {
  const literal = markedNumberLiteral(value);
  if (literal !== undefined) return { literal };
  if (typeof value === 'string' && unstorableNumber(value) !== undefined) return { unstorable: value.slice(value.lastIndexOf('!') + 1) };
  if (Array.isArray(value)) return value.map(comparable);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]));
  return value;
}

/** JSON.parse's verdict on a text: its value with every number as lossless-json reads it, or 'invalid'. */
function oracle(text: string): unknown {
  try {
    JSON.parse(text);
  } catch {
    return 'invalid';
  }
  return expected(parseLossless(text));
}

describe('exact JSON, generated texts', () => {
  it('reads every text as JSON.parse does, each number exact, and refuses what JSON.parse refuses', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        let got: unknown;
        try {
          got = comparable(parseExactJson(text));
        } catch {
          got = 'invalid';
        }
        expect(got).toEqual(oracle(text));
      }),
      { numRuns: runs },
    );
  });

  it('a text cut, doubled or spliced stays as valid or invalid as JSON.parse says', () => {
    const damaged = fc
      .tuple(jsonText, fc.nat(), fc.nat(), fc.constantFrom('', '"', '\\', '1', '-', '.', 'e', ':', ',', '{', '}', '[', ']', '01', '12345678901234567890'))
      .map(([text, at, cut, insert]) => {
        const i = at % (text.length + 1);
        return text.slice(0, i) + insert + text.slice(i + (cut % 3));
      });
    fc.assert(
      fc.property(damaged, (text) => {
        let got: unknown;
        try {
          got = comparable(parseExactJson(text));
        } catch {
          got = 'invalid';
        }
        expect(got).toEqual(oracle(text));
      }),
      { numRuns: runs },
    );
  });

  it('a record kept as sent means what the stringified record means', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        fc.pre(oracle(text) !== 'invalid');
        const { value, storedAsSent } = parseExactRecord(text);
        if (storedAsSent === undefined) return;
        expect(storedAsSent).toBe(text);
        expect(parseLossless(storedAsSent)).toEqual(parseLossless(stringifyExactJson(value)));
      }),
      { numRuns: runs },
    );
  });
});
