import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseExactJson, parseExactRecord, stringifyExactJson } from '../../src/exact-json.js';
import { compactJsonText } from '../../src/history/exact-text.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { comparable, jsonText, literal, oracle } from './json-texts.js';

/*
 * Every JSON number literal comes back as written, wherever it stands (a value, an array item,
 * the whole text) and whatever strings stand around it; in particular the pre-pass's cheap
 * test (only long literals, fractions and exponents are checked) never lets an inexact literal
 * slip through. Generated JSON texts are read as lossless-json reads them (every number its
 * literal), and a text JSON.parse refuses is refused too: the pre-pass never makes it valid.
 */

// Strings that look like numbers, dates among them: they must stay strings.
const nearby = fc.constantFrom('"2024-03-19T01:31:00.000Z"', '"1.50"', '"-0"', '"1e5"', '"x\\"1.0"', '"12345678901234567"');

// The shared settings: FC_NUM_RUNS, FC_SEED and FC_PATH (a failure's replay), a time limit that reports.
const settings = runs(300, propertyTimeout(120_000));

describe('exact JSON, generated literals', () => {
  it('a number literal comes back as written, alone, in an array or in an object', () => {
    fc.assert(
      fc.property(literal, nearby, (n, s) => {
        for (const text of [n, `[${n}]`, `{"s":${s},"n":${n}}`, `[${s},${n},${s}]`, `{"n":${n}}`]) {
          expect(stringifyExactJson(parseExactJson(text))).toBe(text);
        }
      }),
      settings,
    );
  });
});

/** parseExactJson reads `text` as the oracle does: the same value, or refused when JSON.parse refuses it. */
function readsAsTheOracle(text: string) {
  let got: unknown;
  try {
    got = comparable(parseExactJson(text));
  } catch {
    got = 'invalid';
  }
  expect(got).toEqual(oracle(text));
}

describe('exact JSON, generated texts', () => {
  it('reads every text as JSON.parse does, each number exact, and refuses what JSON.parse refuses', () => {
    fc.assert(fc.property(jsonText, readsAsTheOracle), settings);
  });

  it('compactJsonText (how exports write jsonb) drops the whitespace between tokens and nothing else', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        if (oracle(text) === 'invalid') return;
        const compact = compactJsonText(text);
        expect(oracle(compact)).toEqual(oracle(text));
        // No whitespace left outside strings: the same text with its strings taken out has none.
        expect(compact.replace(/"(?:[^"\\]|\\.)*"/g, '""')).not.toMatch(/[ \t\r\n]/);
      }),
      settings,
    );
    expect(compactJsonText('{"a": "say \\"hi there\\" now"}')).toBe('{"a":"say \\"hi there\\" now"}');
  });

  it('a text cut, doubled or spliced stays as valid or invalid as JSON.parse says', () => {
    const damaged = fc
      .tuple(jsonText, fc.nat(), fc.nat(), fc.constantFrom('', '"', '\\', '1', '-', '.', 'e', ':', ',', '{', '}', '[', ']', '01', '12345678901234567890'))
      .map(([text, at, cut, insert]) => {
        const i = at % (text.length + 1);
        return text.slice(0, i) + insert + text.slice(i + (cut % 3));
      })
      // Not an exponent of 5 or 6 digits, which a splice makes of one of 3 (0.6e90100): numeric holds
      // it, but written out it grows past the bound, and the oracle does not model that bound
      // (number-growth's property does, with Postgres the judge; deep run of review GE, seed 235771138).
      .filter((text) => !/[eE][+-]?0*\d{5,6}(?!\d)/.test(text));
    fc.assert(fc.property(damaged, readsAsTheOracle), settings);
  });

  it('a key said twice with copies that differ reads as its last copy (a damaged text the soak found)', () => {
    const text = '{"\u{10000}"\r\n:9007199254740990,\t"12345678901234567890":0,"12345678901234567890":0e0}';
    readsAsTheOracle(text);
    expect(comparable(parseExactJson(text))).toEqual({ '\u{10000}': 9007199254740990, '12345678901234567890': { literal: '0e0' } });
  });

  it('a record kept as sent means what the stringified record means', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        fc.pre(oracle(text) !== 'invalid');
        const { value, storedAsSent } = parseExactRecord(text);
        if (storedAsSent === undefined) return;
        expect(storedAsSent).toBe(text);
        // As the oracle reads it: a key said twice counts as its last copy (lossless-json would refuse it).
        expect(oracle(storedAsSent)).toEqual(oracle(stringifyExactJson(value)));
      }),
      settings,
    );
  });
});
