import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { MAX_WRITTEN_OUT_GROWTH, parseExactRecord } from '../../src/exact-json.js';
import { normalizeUser } from '../../src/normalize/user-record.js';
import { it } from '../helpers/fixtures.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * jsonb keeps a number's value, not its notation: Postgres writes 1e131071 (8 characters) out
 * as 131072 digits, wherever raw is read as text (the next run's stored records, an export, a
 * change's diff). A record is refused when its numbers, written out, would add more than
 * MAX_WRITTEN_OUT_GROWTH characters beyond its own length; otherwise it is stored. Postgres
 * itself is the oracle of how long each number is written out.
 */

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'.split('')), minLength: min, maxLength: max });

/**
 * A number literal Postgres numeric holds: an exponent small, or large either way (up to what
 * numeric holds: 131072 digits before the point, a scale of 16383), a zero among them (written
 * out as 0, whatever its exponent), in either case of e and with any sign.
 */
const literal = fc
  .record({
    sign: fc.constantFrom('', '-'),
    int: fc.oneof(
      fc.constant('0'),
      fc.tuple(fc.constantFrom(...'123456789'.split('')), digits(0, 4)).map(([a, b]) => a + b),
    ),
    fraction: fc.option(digits(1, 4), { nil: undefined }),
    e: fc.constantFrom('e', 'E', 'e+', 'E-', 'e-'),
    exponent: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1000, max: 131_000 })),
  })
  // A negative exponent at most 16000: the scale numeric holds.
  .map(
    ({ sign, int, fraction, e, exponent }) =>
      `${sign}${int}${fraction === undefined ? '' : `.${fraction}`}${e}${e.endsWith('-') ? exponent % 16_000 : exponent}`,
  );

/**
 * Literals a double gives back as written that Postgres writes out longer (a double's smallest and
 * largest, JavaScript's own exponent forms): never marked as inexact, counted all the same.
 */
const doubleKept = fc.constantFrom('5e-324', '1e+308', '1.7976931348623157e+308', '1e-7', '1e+21', '2.5e-10');

/** A record of a few such numbers, or of many doubles, and a text field that makes it longer (its length is part of the bound). */
const numbers = fc.oneof(
  fc.array(literal, { minLength: 1, maxLength: 5 }),
  fc.tuple(doubleKept, fc.integer({ min: 1, max: 500 }), literal).map(([double, count, other]) => [...Array<string>(count).fill(double), other]),
);
const record = fc.record({ numbers, padding: fc.integer({ min: 0, max: 70_000 }) }).map(({ numbers, padding }) => ({
  numbers,
  text: `{"login":"u1","pad":"${'x'.repeat(padding)}","n":[${numbers.join(',')}]}`,
}));

const settings = runs(60, propertyTimeout(120_000));

describe('numbers that Postgres writes out longer than sent', () => {
  it('a record is stored when its numbers, written out, add at most the bound to it, refused naming the number otherwise', async ({ fileDatabase }) => {
    await fc.assert(
      fc.asyncProperty(record, async ({ numbers, text }) => {
        const rows = await fileDatabase.query<{ length: number }>(
          'SELECT length(x::numeric::text) AS length FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i',
          [numbers],
        );
        const writtenOut = rows.map((r) => r.length);
        const growth = numbers.reduce((sum, n, i) => sum + Math.max(0, writtenOut[i]! - n.length), 0);
        const { value, storedAsSent } = parseExactRecord(text);
        let stored: string | undefined;
        let refusal: string | undefined;
        try {
          stored = normalizeUser(value, { companyLogin: '_host', isIntegrationUser: false, origin: 'x' }, 0, storedAsSent).raw;
        } catch (err) {
          refusal = (err as Error).message;
        }
        if (growth <= MAX_WRITTEN_OUT_GROWTH + text.length) {
          expect(refusal).toBeUndefined();
          // And what Postgres then writes out of raw is bounded by what was sent.
          const [read] = await fileDatabase.query<{ length: number }>('SELECT length($1::jsonb::text) AS length', [stored]);
          expect(read!.length).toBeLessThanOrEqual(MAX_WRITTEN_OUT_GROWTH + 3 * text.length);
        } else {
          // The first number past the bound is named, with its length as Postgres writes it out.
          let left = MAX_WRITTEN_OUT_GROWTH + text.length;
          const first = numbers.findIndex((n, i) => (left -= Math.max(0, writtenOut[i]! - n.length)) < 0);
          expect(refusal).toBe(
            `user "_host/u1" (record 0 of x): field "n[${first}]" holds the number ${numbers[first]}, ${writtenOut[first]} characters as Postgres writes it out (jsonb drops the exponent): past what one record's numbers may add to its length (${MAX_WRITTEN_OUT_GROWTH} characters and the record's own length)`,
          );
        }
      }),
      settings,
    );
  });
});
