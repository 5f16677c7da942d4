import { describe, expect } from 'vitest';
import { DATABASE_COLUMNS } from '../src/db/schema.js';
import type { ColumnOf, UserValueColumn } from '../src/normalize/user-fields.js';
import { USER_VALUE_COLUMNS } from '../src/normalize/user-fields.js';
import type { TestDatabase } from './helpers/database.js';
import { it } from './helpers/fixtures.js';

/*
 * The Kysely `Database` interface (src/db/schema.ts) against a freshly migrated database: every
 * table and view of schema cpq is in it, with exactly its columns. DATABASE_COLUMNS is the
 * interface's runtime twin (the compiler ties the two); Kysely's own migration tables are left out.
 */

// Compile-time checks (`npm test` type-checks the tests first): the column type of a field is its
// snake_case, as the runtime mapping computes it, for every kind of character a name holds.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the exact-equality trick: each T exists only to compare the two conditional types
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
export type SnakeCaseAsTypes = [
  Expect<Equal<ColumnOf<'billCompany2'>, 'bill_company2'>>,
  Expect<Equal<ColumnOf<'isUserAdminPermEnabled'>, 'is_user_admin_perm_enabled'>>,
  Expect<Equal<ColumnOf<'id'>, 'cpq_id'>>,
  Expect<Equal<ColumnOf<'units'>, 'units'>>,
  Expect<Equal<Extract<UserValueColumn, 'status_display' | 'email_display'>, 'status_display'>>,
];

async function relationColumns(t: TestDatabase): Promise<Record<string, string[]>> {
  const rows = await t.query<{ relation: string; column_name: string }>(
    `SELECT c.table_schema || '.' || c.table_name AS relation, c.column_name FROM information_schema.columns c
     WHERE c.table_schema = 'cpq' AND c.table_name NOT LIKE 'kysely\\_migration%'
     ORDER BY 1, c.column_name COLLATE "C"`,
  );
  const out: Record<string, string[]> = {};
  for (const r of rows) (out[r.relation] ??= []).push(r.column_name);
  return out;
}

const sorted = (names: readonly string[]) => [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

describe('the Kysely Database interface', () => {
  it('derives the user value column names as the runtime mapping does', () => {
    expect(USER_VALUE_COLUMNS).toEqual(expect.arrayContaining(['bill_company2', 'is_user_admin_perm_enabled', 'cpq_id', 'units', 'status_display']));
  });

  it('names every table and view of schema cpq, each with exactly its columns', async ({ fileDatabase: t }) => {
    const actual = await relationColumns(t);
    const declared = Object.fromEntries(Object.entries(DATABASE_COLUMNS).map(([relation, names]) => [relation, sorted(names)]));
    expect(declared).toEqual(actual);
  });

  it('fails when a migration adds a column the interface lacks (the check itself can fail)', async ({ createDatabase }) => {
    const scratch = await createDatabase();
    await scratch.query(`ALTER TABLE cpq.groups ADD COLUMN description text`);
    expect((await relationColumns(scratch))['cpq.groups']).toContain('description');
    expect(DATABASE_COLUMNS['cpq.groups']).not.toContain('description');
  });
});
