import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { numberAsWritten, parseExactJson, stringifyExactJson } from '../../src/exact-json.js';
import { SPELLED_COLUMNS, withStoredSpellings } from '../../src/normalize/stored-spellings.js';
import { USER_VALUE_COLUMNS } from '../../src/normalize/user-fields.js';
import { RecordError, normalizeUser, type UserRow } from '../../src/normalize/user-record.js';
import { it } from '../helpers/fixtures.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { literal } from './json-texts.js';

/*
 * jsonb keeps a number's value, not its spelling; a text column keeps the spelling (1E2 stays
 * 1E2). A record re-read from raw gets each number's spelling back from the columns and
 * permission rows its first read stored (src/normalize/stored-spellings.ts), and then reads as
 * the first read did. Postgres is the judge of what jsonb gives back and of which literals it
 * writes out alike.
 */

const settings = runs(150, propertyTimeout(120_000));
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
/** The same number spelled otherwise (the point moved, a zero added, the sign of a zero), or a text that is no JSON number. */
function respell(text: string, how: number): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const [, sign = '', int = '', fraction = '', written = '0'] = m;
  const all = `${int}${fraction}`.replace(/^0+(?=\d)/, '');
  const exponent = Number(written) - fraction.length;
  const variants = [
    `${sign}${all}e${exponent}`,
    `${sign}0.${all}E${exponent + all.length}`,
    `${sign}${all}0e${exponent - 1}`,
    `${sign}${all}.0e${exponent}`,
    /^-?0(\.0+)?$/.test(text) ? text.replace(/^-?/, sign === '-' ? '' : '-') : `-${text.replace(/^-/, '')}`,
    `+${text}`,
    ` ${text}`,
    `0${text.replace(/^-/, '')}`,
  ];
  return variants[how % variants.length]!;
}

describe('the spelling of a number a text column stored', () => {
  it('numberAsWritten gives the text back exactly when Postgres numeric writes it out as the number jsonb holds', async ({ fileDatabase }) => {
    // `other` a JSON number (raw holds one); `text` the same number respelled, or another, or no JSON number at all.
    const pair = fc.tuple(literal, fc.nat(), fc.nat(), fc.option(literal, { nil: undefined })).map(([l, a, b, unrelated]) => {
      const other = respell(l, a);
      return [unrelated ?? respell(l, b), JSON_NUMBER.test(other) ? other : l] as const;
    });
    await fc.assert(
      fc.asyncProperty(pair, async ([text, other]) => {
        const [judged] = await fileDatabase.query<{ written: string; same: boolean }>(
          `SELECT $2::jsonb::text AS written,
                  CASE WHEN $1 ~ '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$' THEN $1::numeric::text = $2::numeric::text ELSE false END AS same`,
          [text, other],
        );
        const back = numberAsWritten(text, judged!.written);
        expect(back !== undefined, `${text} against ${judged!.written}`).toBe(judged!.same);
        if (back !== undefined) expect(stringifyExactJson(back)).toBe(text);
      }),
      settings,
    );
  });

  // A permission part or a text field: a number in several spellings of one value, text that reads like one, plain text.
  const part = fc.constantFrom('1E2', '100', '"100"', '1.0E2', '100.0', '-0', '0', '"0"', '1.5e-3', '0.0015', '"a"', 'null');
  const item = fc.record({
    keys: fc.constantFrom(['type', 'variableName', 'name', 'hasAccess'], ['Type', 'VariableName', 'NAME', 'hasaccess']),
    type: fc.constantFrom('"productFamily"', '1E2', '100', '"100"'),
    variableName: part.filter((p) => p !== 'null'),
    // A long name too: the search for a copy listed twice was bounded by a budget a 24-character name used up (review GD).
    name: fc.oneof(part, fc.constant('"Quote approval for partner organizations"')),
    hasAccess: fc.constantFrom('true', 'false', 'null', '"true"'),
    extra: fc.constantFrom('', ',"note":1E2'),
  });
  const record = fc.record({
    lastName: part,
    companyName: part,
    type: fc.tuple(fc.constantFrom('"Full"', '1E2', '-0'), part),
    items: fc.array(item, { maxLength: 5 }),
    itemsKey: fc.constantFrom('items', 'Items'),
  });

  it('a record re-read from raw, its spellings put back from its stored row, reads as its first read did', async ({ fileDatabase }) => {
    await fc.assert(
      fc.asyncProperty(record, async ({ lastName, companyName, type, items, itemsKey }) => {
        const permissions = items.map(
          (i) => `{"${i.keys[0]}":${i.type},"${i.keys[1]}":${i.variableName},"${i.keys[2]}":${i.name},"${i.keys[3]}":${i.hasAccess}${i.extra}}`,
        );
        const text = `{"login":"u1","lastName":${lastName},"company":{"loginName":"_host","name":${companyName}},"type":{"value":${type[0]},"displayValue":${type[1]}},"accessPermissions":{"${itemsKey}":[${permissions.join(',')}]}}`;
        const source = { companyLogin: '_host', isIntegrationUser: true, origin: 'x' };
        let first: UserRow;
        try {
          first = normalizeUser(parseExactJson(text), source, 0);
        } catch (err) {
          if (err instanceof RecordError) return;
          throw err;
        }
        const [stored] = await fileDatabase.query<{ raw: string }>('SELECT $1::jsonb::text AS raw', [first.raw]);
        const texts = SPELLED_COLUMNS.map((c) =>
          c.column === 'company_name' ? first.companyName : (first.values[USER_VALUE_COLUMNS.indexOf(c.column)] as string | null),
        );
        const reread = withStoredSpellings(parseExactJson(stored!.raw) as Record<string, unknown>, { texts, permissions: first.accessPermissions ?? [] });
        const again = normalizeUser(reread, source, 0);
        expect(again.values, text).toEqual(first.values);
        expect(again.companyName, text).toBe(first.companyName);
        expect(again.accessPermissions, text).toEqual(first.accessPermissions);
      }),
      settings,
    );
  });
});
