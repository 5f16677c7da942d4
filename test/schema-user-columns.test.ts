import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { USER_VALUE_COLUMN_TYPES } from '../src/normalize/user-fields.js';
import { FIELD_DIFF, INSERTED_UNMAPPED_DIFF } from '../src/sync/merge-sql.js';
import type { TestDatabase } from './helpers/database.js';
import { it } from './helpers/fixtures.js';

/*
 * The user columns have one source of truth, src/cpq/user-fields.ts (the fields) and
 * src/normalize/user-fields.ts (their columns); the migrations repeat them in cpq.users,
 * cpq.user_versions, the cpq.user_history view, cpq.users_as_of and cpq.insert_diff_row. These tests
 * fail when a migration leaves any of them behind (README "Adding a CPQ field").
 */

/** Columns the history keeps besides the user's own: when a version ended, and which run ended it. */
const VERSION_COLUMNS: Record<string, string[]> = {
  users: [],
  user_versions: ['valid_to', 'ended_by_run_id', 'version_id'],
  user_history: ['valid_to'],
};

type Columns = { name: string; type: string }[];

async function columnsOf(t: TestDatabase, relation: string): Promise<Columns> {
  return t.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [`cpq.${relation}`],
  );
}

/** The differences between the data columns of users, user_versions and user_history (empty when they agree). */
async function parityProblems(t: TestDatabase): Promise<string[]> {
  const users = await columnsOf(t, 'users');
  const problems: string[] = [];
  for (const relation of ['user_versions', 'user_history']) {
    const data = (await columnsOf(t, relation)).filter((c) => !VERSION_COLUMNS[relation]!.includes(c.name));
    const show = (cs: Columns) => cs.map((c) => `${c.name} ${c.type}`).join(', ');
    if (show(data) !== show(users)) problems.push(`cpq.${relation} has (${show(data)}), cpq.users has (${show(users)})`);
  }
  return problems;
}

/** The statement that redefines cpq.insert_diff_row (migrations/0027; cpq.insert_diff before it: 0005, 0018, 0020) as it is, around the current FIELD_DIFF and INSERTED_UNMAPPED_DIFF. */
function insertDiffStatement(body: string): string {
  const replaced = body
    .replace(/^ {2}SELECT \('\{' \|\| (?:pg_catalog\.)?concat_ws\(.*$/m, () => `  SELECT ${FIELD_DIFF}`)
    .replace(/^ {4}\|\| \(SELECT coalesce\((?:pg_catalog\.)?jsonb_object_agg\('raw\.'.*$/m, () => `    || ${INSERTED_UNMAPPED_DIFF}`);
  return `CREATE OR REPLACE FUNCTION cpq.insert_diff_row(p_user_id bigint, p_valid_from timestamptz) RETURNS TABLE (diff jsonb)\nLANGUAGE sql STABLE ROWS 1 AS $body$${replaced}$body$;\n`;
}

describe('user columns: one source of truth, every copy checked', () => {
  it('cpq.users, cpq.user_versions and cpq.user_history have the same data columns, same types, same order', async ({ fileDatabase: t }) => {
    expect(await parityProblems(t)).toEqual([]);
    for (const [relation, extra] of Object.entries(VERSION_COLUMNS)) {
      expect((await columnsOf(t, relation)).map((c) => c.name)).toEqual(expect.arrayContaining(extra));
    }
  });

  it('has every column of USER_FIELDS, with its type, in cpq.users, cpq.user_versions and cpq.user_history', async ({ fileDatabase: t }) => {
    const expected = await Promise.all(
      USER_VALUE_COLUMN_TYPES.map(async ({ column, pgType }) => {
        const [row] = await t.query<{ type: string }>(`SELECT format_type($1::regtype, -1) AS type`, [pgType]);
        return { name: column, type: row!.type };
      }),
    );
    expect(expected.length).toBe(USER_VALUE_COLUMN_TYPES.length);
    for (const relation of Object.keys(VERSION_COLUMNS)) {
      expect(await columnsOf(t, relation), relation).toEqual(expect.arrayContaining(expected));
    }
  });

  it('cpq.users_as_of returns cpq.users rows (its column list matches the table)', async ({ fileDatabase: t }) => {
    await expect(t.query(`SELECT * FROM cpq.users_as_of(now())`)).resolves.toEqual([]);
  });

  it("computes an insert's field diff with the merge's own expression: cpq.insert_diff_row, as migrated, holds FIELD_DIFF, which names every user column", async ({
    fileDatabase: t,
  }) => {
    const [fn] = await t.query<{ body: string }>(`SELECT prosrc AS body FROM pg_proc WHERE oid = 'cpq.insert_diff_row(bigint, timestamptz)'::regprocedure`);
    if (!fn!.body.includes(`SELECT ${FIELD_DIFF}\n    || ${INSERTED_UNMAPPED_DIFF}\n`)) {
      // What the new migration needs (README "Adding a CPQ field"): the same function around the current FIELD_DIFF.
      // In a folder of its own: a fixed name in the shared temp folder could be a link another account planted.
      const file = join(mkdtempSync(join(tmpdir(), 'cpq-insert-diff-')), 'insert-diff.sql');
      writeFileSync(file, insertDiffStatement(fn!.body));
      expect.fail(
        `cpq.insert_diff_row does not hold the merge's FIELD_DIFF and INSERTED_UNMAPPED_DIFF: add ${file} to the migration that changes the user columns`,
      );
    }
    for (const { column } of USER_VALUE_COLUMN_TYPES) expect(FIELD_DIFF).toContain(`'"${column}":{"old":'`);
  });

  it('README\'s migration for a new field ("Adding a CPQ field") keeps the three relations and users_as_of in step', async ({ createDatabase }) => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Adding a CPQ field'));
    const migration = /```plpgsql\n([\s\S]*?)```/.exec(section)?.[1]?.replace(/^ {3}/gm, '');
    expect(migration).toContain('ALTER TABLE cpq.users ADD COLUMN nickname text;');
    const scratch = await createDatabase();
    const before = (await columnsOf(scratch, 'user_history')).map((c) => c.name);
    await scratch.query(migration!);
    expect(await parityProblems(scratch)).toEqual([]);
    // Every column keeps its place (valid_to before site), the new one last: a reader's SELECT * is unchanged but for it (review CR).
    expect((await columnsOf(scratch, 'user_history')).map((c) => c.name)).toEqual([...before, 'nickname']);
    await expect(scratch.query(`SELECT nickname FROM cpq.users_as_of(now())`)).resolves.toEqual([]);
  });

  it('fails when a migration adds a user column to cpq.users alone (the checks themselves can fail)', async ({ createDatabase }) => {
    const scratch = await createDatabase();
    await scratch.query(`ALTER TABLE cpq.users ADD COLUMN shoe_size integer`);
    expect(await parityProblems(scratch)).toHaveLength(2);
    await expect(scratch.query(`SELECT * FROM cpq.users_as_of(now())`)).rejects.toThrow(/return type mismatch|final statement returns too few columns/);
    await scratch.query(`ALTER TABLE cpq.user_versions ADD COLUMN shoe_size integer`);
    expect(await parityProblems(scratch)).toEqual([expect.stringContaining('cpq.user_history has')]);
  });
});
