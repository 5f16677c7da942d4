import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { it } from './helpers/fixtures.js';
import { dumpSchema } from './helpers/schema-dump.js';

/*
 * The schema a fresh database gets from every migration, compared with the committed dump
 * (test/fixtures/schema.sql), as graphile/worker does: a migration's whole effect on tables,
 * views and functions shows up in review as a diff of that file. After writing a migration,
 * run `UPDATE_SCHEMA_SNAPSHOT=1 npx vitest run test/schema-snapshot.test.ts` and commit the
 * dump with it.
 */
const SNAPSHOT = new URL('./fixtures/schema.sql', import.meta.url);

describe('schema snapshot', () => {
  it('a freshly migrated database has exactly the committed schema (test/fixtures/schema.sql)', async ({ fileDatabase: t, skip }) => {
    const version = (await t.query<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`))[0]!.version;
    // Postgres 15 and older print a view's columns qualified by their table (users.login): the dump
    // would differ in every view. npm test's embedded server is 17.
    const older = `the committed dump is as Postgres 16 and later print views; this server is ${String(version)} (without TEST_DATABASE_URL the tests use an embedded 17)`;
    // Asked to write the dump, a skip would pass with the old one left in place (review JC).
    if (version < 160000 && process.env.UPDATE_SCHEMA_SNAPSHOT === '1') throw new Error(`UPDATE_SCHEMA_SNAPSHOT: not written: ${older}`);
    skip(version < 160000, older);
    const dump = await dumpSchema(t.pool);
    if (process.env.UPDATE_SCHEMA_SNAPSHOT === '1' || !existsSync(SNAPSHOT)) writeFileSync(SNAPSHOT, dump);
    expect(dump).toBe(readFileSync(SNAPSHOT, 'utf8'));
  });

  it('sees a change of any column, index or function body (the check itself can fail)', async ({ createDatabase }) => {
    const scratch = await createDatabase();
    const before = await dumpSchema(scratch.pool);
    await scratch.query(`ALTER TABLE cpq.user_versions ADD COLUMN shoe_size integer`);
    const withColumn = await dumpSchema(scratch.pool);
    expect(withColumn).not.toBe(before);
    expect(withColumn).toContain('  shoe_size integer');
    await scratch.query(`CREATE INDEX users_email_idx ON cpq.users (email)`);
    expect(await dumpSchema(scratch.pool)).toContain('CREATE INDEX users_email_idx ON cpq.users USING btree (email)');
    await scratch.query(
      `CREATE OR REPLACE FUNCTION cpq.user_groups_as_of(ts timestamptz) RETURNS SETOF cpq.user_groups LANGUAGE sql STABLE AS $$ SELECT * FROM cpq.user_groups $$`,
    );
    expect(await dumpSchema(scratch.pool)).toContain('SELECT * FROM cpq.user_groups');
  });
});
