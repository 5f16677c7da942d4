import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseExactJson, stringifyExactJson } from '../../src/exact-json.js';

/*
 * Every JSON number literal comes back as written, wherever it stands (a value, an array item,
 * the whole text) and whatever strings stand around it; in particular the cheap test that lets
 * most pages skip the marking scan never lets an inexact literal slip through.
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
