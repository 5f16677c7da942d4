import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginChecksum } from '../../src/sync/login-checksum.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * The sync sums the logins it receives in TypeScript (src/sync/login-checksum.ts); the database
 * sums the logins it holds in SQL (migration 0012's cpq.login_hash and cpq.login_checksum). The
 * completeness check compares the two, so they must agree on every multiset of logins.
 */

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const inSql = async (logins: string[]) =>
  (await t.query<{ sum: string }>(`SELECT cpq.login_checksum(sum(cpq.login_hash(l))) AS sum FROM unnest($1::text[]) AS l`, [logins]))[0]!.sum;
const inTs = (logins: string[]) => {
  const checksum = new LoginChecksum();
  for (const login of logins) checksum.add(login);
  return checksum.hex;
};

// Any Unicode text Postgres can hold (no NUL), short and long, with repeats (a login read twice counts twice).
const login = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.emailAddress(),
    fc.constantFrom('', 'a', 'admin', 'Ä', '😀'),
  )
  .map((s) => s.replaceAll('\u0000', ''));

describe('login checksum', () => {
  it(
    'TypeScript and SQL give the same checksum for any multiset of logins, in any order',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(login, { maxLength: 60 }), async (logins) => {
          const ts = inTs(logins);
          expect(ts).toMatch(/^[0-9a-f]{16}$/);
          expect(await inSql(logins)).toBe(ts);
          expect(inTs([...logins].reverse())).toBe(ts);
        }),
        runs(60, propertyTimeout(60_000)),
      );
    },
    propertyTimeout(60_000),
  );

  it('the sum wraps at 2^64 the same way, and tells sets apart', async () => {
    // Enough logins for the sum to pass 2^64 many times over.
    const many = Array.from({ length: 5000 }, (_, i) => `user${i}@example.com`);
    expect(await inSql(many)).toBe(inTs(many));
    expect(inTs(many)).not.toBe(inTs(many.slice(1)));
    expect(inTs([])).toBe('0000000000000000');
    expect(await inSql([])).toBe('0000000000000000');
    // A login counted twice is not the same multiset as once.
    expect(inTs(['a', 'a'])).not.toBe(inTs(['a']));
  });
});
