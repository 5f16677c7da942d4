import { describe, expect, it } from 'vitest';
import { cutCollectionBody } from '../../src/cpq/json-items.js';
import { numericOverflow, parseExactJson, parseExactRecord, stringifyExactJson, unstorableNumber } from '../../src/exact-json.js';
import { normalizeUser } from '../../src/normalize/user-record.js';

/*
 * An attacker who controls a CPQ response (a compromised site, or anyone in between when plain
 * HTTP is allowed) sends JSON built to make the exact-number pre-pass backtrack. Before the fix,
 * one valid 40k-digit number with a fraction cost ~3.6 s and 100k digits ~25 s, with the event
 * loop blocked. The pre-pass is now linear: each of these bodies parses in well under a second
 * (a bound 50x above what it takes, so a loaded machine cannot make it flaky, and 50x below the
 * quadratic times).
 */
const DIGITS = 100_000;
const digits = '7'.repeat(DIGITS);

function timed<T>(work: () => T): { result: T; ms: number } {
  const start = performance.now();
  const result = work();
  return { result, ms: performance.now() - start };
}

describe('attack: JSON built to make number parsing quadratic', () => {
  it.each([
    ['a 100k-digit integer', digits],
    ['a 100k-digit integer with a fraction', `${digits}.5`],
    ['a 100k-digit integer with an exponent', `${digits}e5`],
    ['a fraction of 10k digits', `0.${digits.slice(0, 10_000)}`],
    ['a negative 100k-digit number with both', `-${digits}.5E-7`],
  ])('%s parses in linear time and comes back digit for digit', (_name, literal) => {
    const text = `{"items":[{"login":"u1","n":${literal},"m":[${literal},${literal}]}]}`;
    const { result, ms } = timed(() => parseExactJson(text));
    expect(ms).toBeLessThan(1000);
    expect(stringifyExactJson(result)).toBe(text);
  });

  it('a fraction of 100k digits parses in linear time and is named as more than Postgres can store', () => {
    const { result, ms } = timed(() => parseExactJson(`{"n":0.${digits}}`));
    expect(ms).toBeLessThan(1000);
    expect(unstorableNumber((result as { n: unknown }).n)).toBe(
      `0.${digits.slice(0, 38)}… (100002 characters) needs 100000 digits after the decimal point; Postgres stores at most 16383`,
    );
  });

  it('a string holding a 100k-digit run is left alone, in linear time', () => {
    const text = `{"s":"x${digits}.5e3","t":"${digits}"}`;
    const { result, ms } = timed(() => parseExactJson(text));
    expect(ms).toBeLessThan(1000);
    expect(result).toEqual({ s: `x${digits}.5e3`, t: digits });
  });

  it.each([
    ['an unterminated string of escaped quotes', `{"a":"${'\\"'.repeat(DIGITS)}`],
    ['a run of quotes and digits that never closes', `[${'"1'.repeat(DIGITS)}`],
    ['a run of minus signs', `[${'-'.repeat(DIGITS)}1.0]`],
    ['digits separated by dots', `[${'1.'.repeat(DIGITS)}0]`],
  ])('invalid JSON (%s) is refused in linear time', (_name, text) => {
    const start = performance.now();
    expect(() => parseExactJson(text)).toThrow(SyntaxError);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('attack: numbers Postgres writes out far longer than sent', () => {
  // jsonb writes 1e131071 (8 characters) as 131072 digits: stored, this 100 KiB record read back
  // from raw as 1.5 GB (the next run's stored integration users, an export), past the heap and
  // Postgres's 1 GB limit on a value. Refused before anything is stored, naming its first number
  // past the bound (the second: the first fits in 65536 characters and the record's own length),
  // in linear time.
  it('a record of 100 KiB of 1e131071 is refused, naming the number that passes the bound', () => {
    const text = `{"login":"u1","n":[${Array(11_000).fill('1e131071').join(',')}]}`;
    const { result, ms } = timed(() => parseExactRecord(text));
    expect(ms).toBeLessThan(1000);
    expect(result.storedAsSent).toBeUndefined();
    expect(() => normalizeUser(result.value, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0, result.storedAsSent)).toThrow(
      `field "n[1]" holds the number 1e131071, 131072 characters as Postgres writes it out (jsonb drops the exponent): past what one record's numbers may add to its length (65536 characters and the record's own length)`,
    );
  });

  it('a record of 100 KiB of 5e-324 (a double gives it back as written; Postgres writes 326 characters) is refused', () => {
    const { value, storedAsSent } = parseExactRecord(`{"login":"u1","n":[${Array(15_000).fill('5e-324').join(',')}]}`);
    expect(() => normalizeUser(value, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0, storedAsSent)).toThrow(
      /field "n\[\d+\]" holds the number 5e-324, 326 characters as Postgres writes it out/,
    );
  });

  it('the number that passes the bound is named, not a later one that fits (a partyId of 1E2)', () => {
    const { value, storedAsSent } = parseExactRecord('{"login":"u1","custom":{"wide":[1e60000,1e60000]},"partyId":1E2}');
    expect(() => normalizeUser(value, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0, storedAsSent)).toThrow(
      /field "custom\.wide\[1\]" holds the number 1e60000, 60001 characters/,
    );
  });

  it('a number in a typed column that passes the bound is named as such, not as a wrong type', () => {
    const { value, storedAsSent } = parseExactRecord('{"login":"u1","partyId":1e70000}');
    expect(() => normalizeUser(value, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0, storedAsSent)).toThrow(
      /field "partyId" holds the number 1e70000, 70001 characters as Postgres writes it out/,
    );
  });
});

describe('the exact-number pre-pass never makes invalid JSON valid', () => {
  // Before, a long literal was marked wherever it stood, so these became strings and parsed.
  it.each([
    ['a number as an object key', '{"login":"u1",12345678901234567890:1}'],
    ['a long literal with a leading zero', '{"login":"u1","partyId":0318766884429645907}'],
    ['a long literal after a key without its colon', '{"login":"u1","partyId" 318766884429645907}'],
  ])('%s is refused, as JSON.parse refuses it', (_name, text) => {
    expect(() => JSON.parse(text) as unknown).toThrow(SyntaxError);
    expect(() => parseExactJson(text)).toThrow(SyntaxError);
  });
});

describe('found in review', () => {
  it('a zero with an exponent Postgres refuses (0e99999999999) fails its record naming the field, not the whole COPY', () => {
    expect(numericOverflow('0e99999999999')).toBe('has the exponent 99999999999; Postgres accepts exponents between -1073741823 and 1073741823, exclusive');
    expect(numericOverflow('0.0E-1073741823')).toBeDefined();
    expect(numericOverflow('0e1073741822')).toBeUndefined();
    const { value, storedAsSent } = parseExactRecord('{"login":"a","n":0e99999999999}');
    expect(storedAsSent).toBeUndefined();
    expect(() => normalizeUser(value, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0, storedAsSent)).toThrow(
      /field "n" holds the number 0e99999999999 has the exponent 99999999999/,
    );
  });

  it('a parse error describes the text as sent: no mark, no shifted position', () => {
    for (const text of ['[-0,x]', '{"partyId":318766884429645907,}']) {
      const sent = (() => {
        try {
          JSON.parse(text);
        } catch (err) {
          return (err as Error).message;
        }
      })();
      expect(() => parseExactJson(text)).toThrow(sent);
      expect(() => parseExactRecord(text)).toThrow(sent);
    }
  });

  it('a JSON page starting with a byte-order mark is left to the whole-page parser, which refuses it as before', () => {
    expect(cutCollectionBody('\uFEFF{"items":[]}')).toBeUndefined();
    expect(() => parseExactJson('\uFEFF{"items":[]}')).toThrow(SyntaxError);
    expect(cutCollectionBody('{"items":[]}')).toEqual({ envelope: {}, itemTexts: [] });
  });
});
