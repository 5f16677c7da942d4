import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyRows, copyBytes, copyTarget, type CopyValue } from '../src/db/copy.js';
import { canonicalTimestampMs } from '../src/date-time.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { anyText, propertyTimeout, runs } from './properties/arbitraries.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

const TARGET = copyTarget('copy_check', [
  ['n', 'integer'],
  ['t', 'text'],
  ['b', 'boolean'],
  ['i8', 'bigint'],
  ['i4', 'integer'],
  ['ts', 'timestamptz'],
  ['j', 'jsonb'],
]);
const TABLE = 'CREATE TEMP TABLE copy_check (n integer, t text, b boolean, i8 bigint, i4 integer, ts timestamptz, j jsonb)';
/** How Postgres prints each column back: text forms that say exactly what was stored (a timestamp in microseconds since 1970). */
const READ_BACK = `SELECT t, b, i8::text, i4, (extract(epoch FROM ts) * 1000000)::bigint::text AS ts, j::text FROM copy_check ORDER BY n`;

/** The same rows as Postgres reads them from text (query parameters), read back the same way: what COPY's text format stored. */
async function viaText(rows: CopyValue[][]): Promise<Record<string, unknown>[]> {
  const client = await database.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(TABLE);
    for (const [n, row] of rows.entries()) {
      const params = [n, ...row].map((v) => (v === null || v === undefined ? null : String(v)));
      await client.query('INSERT INTO copy_check VALUES ($1::integer, $2::text, $3::boolean, $4::bigint, $5::integer, $6::timestamptz, $7::jsonb)', params);
    }
    const read = await client.query(READ_BACK);
    await client.query('ROLLBACK');
    return read.rows as Record<string, unknown>[];
  } finally {
    client.release();
  }
}

/** Writes rows (each without its leading `n`) with COPY in the binary format and reads them back. */
async function roundTrip(rows: CopyValue[][]): Promise<Record<string, unknown>[]> {
  const client = await database.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(TABLE);
    const copy = new CopyRows(TARGET);
    rows.forEach((row, n) => copy.add([n], row));
    await copyBytes(client, copy.target, copy.bytes());
    const read = await client.query(READ_BACK);
    await client.query('ROLLBACK');
    return read.rows as Record<string, unknown>[];
  } finally {
    client.release();
  }
}

const TIMEOUT = propertyTimeout(120_000);

/** Microseconds since 1970 of a canonical date-time, as READ_BACK prints them. */
const micros = (iso: string) => String(BigInt(Date.parse(iso)) * 1000n);

const expected = (t: string | null, b: boolean | null, i8: string | null, i4: number | null, ts: string | null, j: string | null) => ({
  t,
  b,
  i8,
  i4,
  ts: ts === null ? null : micros(ts),
  j,
});

describe('COPY in the binary format', () => {
  it('stores every type exactly: text with the characters the text format escapes, int64 and int32 extremes, dates from year 1 to 9999, jsonb', async () => {
    const rows: CopyValue[][] = [
      ['a\tb\nc\rd\\e', true, '9223372036854775807', 2147483647, '0001-01-01T00:00:00.000Z', '{"a":[1,"\\t"]}'],
      ['é日本😀', false, '-9223372036854775808', -2147483648, '9999-12-31T23:59:59.999Z', '{"big":123456789012345678901234567890}'],
      ['', null, '0', 0, '2000-01-01T00:00:00.000Z', '[]'],
      [null, true, '-1', -1, '1999-12-31T23:59:59.999Z', 'null'],
      ['x'.repeat(60), false, 4294967296, 65536, '1970-01-01T00:00:00.001Z', '"s"'],
      ['ü'.repeat(60), true, -4294967297, '-12', '2262-04-11T23:47:16.854Z', '1.50'],
      ['µs', true, '1', 1, '2025-09-26T12:17:59.123456Z', '{}'],
      ['µs before 1970', false, '2', 2, '1969-12-31T23:59:59.999999Z', '{}'],
      [null, null, null, null, null, null],
    ];
    expect(await roundTrip(rows)).toEqual([
      expected('a\tb\nc\rd\\e', true, '9223372036854775807', 2147483647, '0001-01-01T00:00:00.000Z', '{"a": [1, "\\t"]}'),
      expected('é日本😀', false, '-9223372036854775808', -2147483648, '9999-12-31T23:59:59.999Z', '{"big": 123456789012345678901234567890}'),
      expected('', null, '0', 0, '2000-01-01T00:00:00.000Z', '[]'),
      expected(null, true, '-1', -1, '1999-12-31T23:59:59.999Z', 'null'),
      expected('x'.repeat(60), false, '4294967296', 65536, '1970-01-01T00:00:00.001Z', '"s"'),
      expected('ü'.repeat(60), true, '-4294967297', -12, '2262-04-11T23:47:16.854Z', '1.50'),
      { ...expected('µs', true, '1', 1, null, '{}'), ts: '1758889079123456' },
      { ...expected('µs before 1970', false, '2', 2, null, '{}'), ts: '-1' },
      expected(null, null, null, null, null, null),
    ]);
  });

  it('writes rows across pieces of any size, one value larger than any piece', async () => {
    const rows: CopyValue[][] = [];
    for (let i = 0; i < 3000; i++) rows.push([`${i}:${'ü'.repeat(i % 700)}`, i % 2 === 0, String(i), i, null, null]);
    rows.push(['x'.repeat(3 << 20), null, null, null, null, null]);
    const copy = new CopyRows(TARGET);
    rows.forEach((row, n) => copy.add([n], row));
    expect(copy.rows).toBe(3001);
    expect(copy.bytes().length).toBeGreaterThan(3);
    const read = await roundTrip(rows);
    expect(read.map((r) => r.t)).toEqual(rows.map((r) => r[0]));
    expect(read.map((r) => r.i4)).toEqual(rows.map((r) => r[3]));
  });

  it('has no bytes without rows, and refuses a value of the wrong type or count naming the column', () => {
    expect(new CopyRows(TARGET).bytes()).toEqual([]);
    const copy = new CopyRows(TARGET);
    expect(() => copy.add([0], ['t', 'yes', null, null, null, null])).toThrow('column b of copy_check');
    expect(() => copy.add([0], ['t', true, '1.5', null, null, null])).toThrow('column i8 of copy_check');
    expect(() => copy.add([0], ['t', true, '99999999999999999999', null, null, null])).toThrow('column i8 of copy_check');
    expect(() => copy.add([0], ['t', true, '9223372036854775808', null, null, null])).toThrow('column i8 of copy_check');
    expect(() => copy.add([0], ['t', true, '-9223372036854775809', null, null, null])).toThrow('column i8 of copy_check');
    expect(() => copy.add([0], ['t', true, 2 ** 53, null, null, null])).toThrow('column i8 of copy_check');
    expect(() => copy.add([0], ['t', true, null, 2 ** 31, null, null])).toThrow('column i4 of copy_check');
    expect(() => copy.add([0], ['t', true, null, null, '2025-01-01T00:00:00Z', null])).toThrow('column ts of copy_check');
    expect(() => copy.add([0], ['t', true, null, null, '0000-12-31T23:00:00.000Z', null])).toThrow('column ts of copy_check');
    expect(() => copy.add([0], ['t', true])).toThrow('has 3 values, not 7');
    // The message names the column and the kind of value, never the value (it may be a user's data).
    expect(() => copy.add([0], ['t', 'secret value', null, null, null, null])).toThrow('column b of copy_check cannot take a string of 12 characters');
  });

  it('takes a refused row back whole: the rows before and after it are stored, it is not', async () => {
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(TABLE);
      const copy = new CopyRows(TARGET);
      copy.add([0], ['before', true, '1', 1, '2025-01-01T00:00:00.000Z', '{}']);
      // Refused at its timestamp, after its text (larger than the first piece), boolean and integers were written.
      expect(() => copy.add([1], ['x'.repeat(70_000), false, '2', 2, 'not a date', null])).toThrow('column ts of copy_check');
      copy.add([2], ['after', false, '3', 3, null, '[]']);
      expect(copy.rows).toBe(2);
      await copyBytes(client, copy.target, copy.bytes());
      const read = await client.query(READ_BACK);
      await client.query('ROLLBACK');
      expect(read.rows).toEqual([expected('before', true, '1', 1, '2025-01-01T00:00:00.000Z', '{}'), expected('after', false, '3', 3, null, '[]')]);
    } finally {
      client.release();
    }
  });

  it(
    'stores any text, integer and date-time as Postgres reads its text form (property)',
    async () => {
      const MIN_MS = Date.parse('0001-01-01T00:00:00.000Z');
      const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');
      const int64 = fc.oneof(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, -(2n ** 53n), 2n ** 53n, BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MIN_SAFE_INTEGER), -1n, 0n),
      );
      const row = fc.tuple(
        fc.option(anyText),
        fc.option(fc.boolean()),
        fc.option(int64),
        fc.option(fc.integer()),
        fc.option(fc.integer({ min: MIN_MS, max: MAX_MS })),
        fc.boolean(),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 40 }), async (generated) => {
          const rows: CopyValue[][] = generated.map(([t, b, i8, i4, ms, asNumber]) => [
            t,
            b,
            // An int64 column takes a safe integer as a number, any as its digits.
            i8 === null ? null : asNumber && Number.isSafeInteger(Number(i8)) ? Number(i8) : String(i8),
            i4,
            ms === null ? null : new Date(ms).toISOString(),
            t === null ? null : JSON.stringify(t),
          ]);
          expect(await roundTrip(rows)).toEqual(await viaText(rows));
        }),
        runs(30, TIMEOUT),
      );
    },
    TIMEOUT,
  );

  it('reads a date-time exactly when it is in the canonical form of a real day, as Date reads and prints it (property)', () => {
    const MIN_MS = Date.parse('0001-01-01T00:00:00.000Z');
    const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');
    const oracle = (text: string) => {
      const ms = Date.parse(text);
      return Number.isFinite(ms) && ms >= MIN_MS && ms <= MAX_MS && new Date(ms).toISOString() === text ? ms : undefined;
    };
    const printed = fc.integer({ min: MIN_MS, max: MAX_MS }).map((ms) => new Date(ms).toISOString());
    // Canonical-looking texts with any digits (days the calendar lacks, hour 24, year 0000), and damaged ones.
    const lookalike = fc
      .tuple(...[4, 2, 2, 2, 2, 2, 3].map((n) => fc.integer({ min: 0, max: 10 ** n - 1 }).map((d) => String(d).padStart(n, '0'))))
      .map(([y, mo, d, h, mi, s, ms]) => `${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}Z`);
    // Near the calendar's edges, where a uniform draw of digits rarely lands (review CA: a day 00 or
    // 1900-02-29 taken for a real day survived): century years, months 0-13, days 0-32.
    const pad = (n: number, width: number) => String(n).padStart(width, '0');
    const edge = fc
      .tuple(
        fc.oneof(fc.constantFrom(1600, 1700, 1900, 2000, 2023, 2024, 2100, 2400), fc.integer({ min: 1, max: 9999 })),
        fc.integer({ min: 0, max: 13 }),
        fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 24 }),
      )
      .map(([y, mo, d, h]) => `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:00:00.000Z`);
    const damaged = fc.tuple(printed, fc.nat(), fc.string({ maxLength: 2 })).map(([t, at, insert]) => t.slice(0, at % 25) + insert + t.slice((at % 25) + 1));
    fc.assert(
      fc.property(fc.oneof(printed, lookalike, edge, damaged), (text) => {
        expect(canonicalTimestampMs(text)).toBe(oracle(text));
      }),
      runs(2000, TIMEOUT),
    );
    expect(canonicalTimestampMs('2024-02-29T23:59:59.999Z')).toBe(Date.parse('2024-02-29T23:59:59.999Z'));
    expect(canonicalTimestampMs('2025-02-29T00:00:00.000Z')).toBeUndefined();
    expect(canonicalTimestampMs('0000-01-01T00:00:00.000Z')).toBeUndefined();
    expect(canonicalTimestampMs('2025-09-00T00:00:00.000Z')).toBeUndefined();
    expect(canonicalTimestampMs('1900-02-29T00:00:00.000Z')).toBeUndefined();
    expect(canonicalTimestampMs('2000-02-29T00:00:00.000Z')).toBe(Date.parse('2000-02-29T00:00:00.000Z'));
  });
});
