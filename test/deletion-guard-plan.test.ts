import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELETION_CANDIDATES_SQL, countDeletionCandidates } from '../src/db/sql/count-deletion-candidates.js';
import { knownBeforeRun } from '../src/db/sql/known-before-run.js';
import { Stager } from '../src/sync/stager.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

/*
 * The deletion guard counts, per company read in full, the stored users the read did not return.
 * Written as a NOT EXISTS in an aggregate's FILTER, that count was a subplan run once per stored
 * user, which Postgres hashes only while the staged logins fit in work_mem: at a million users they
 * did not, and a full re-read scanned every staged row for every stored user (it never finished).
 * work_mem is set tiny here, so a few users stand for a million.
 */

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

/** How the count was written before: the check below must see its per-user subplan. */
const PROBED_PER_USER = `SELECT c.company, count(u.id) AS known,
     count(u.id) FILTER (WHERE NOT EXISTS (SELECT 1 FROM stage_users s WHERE s.company_login = u.company_login AND s.login = u.login)) AS missing
   FROM unnest($1::text[]) AS c(company)
   LEFT JOIN cpq.users u ON u.site = $3 AND u.company_login = c.company AND u.deleted_at IS NULL AND ${knownBeforeRun('u', '$2')}
   GROUP BY c.company`;

/** The names of the subplans in a JSON plan (a subplan not hashed runs once per row of its parent). */
function subplans(node: Record<string, unknown>): string[] {
  const own = typeof node['Subplan Name'] === 'string' ? [node['Subplan Name']] : [];
  const children = (node.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [...own, ...children.flatMap(subplans)];
}

async function planOf(client: pg.PoolClient, query: string): Promise<Record<string, unknown>> {
  await client.query(`PREPARE counted(text[], bigint, text, text) AS ${query}`);
  try {
    const { rows } = await client.query<{ 'QUERY PLAN': { Plan: Record<string, unknown> }[] }>(
      `EXPLAIN (FORMAT JSON) EXECUTE counted(ARRAY['_host', 'partner1'], 2, 'default', 'all users')`,
    );
    return rows[0]!['QUERY PLAN'][0]!.Plan;
  } finally {
    await client.query('DEALLOCATE counted');
  }
}

describe("the deletion guard's count", () => {
  it('joins the staged users instead of probing them per stored user, however little work_mem there is', async () => {
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      await Stager.create(client);
      // Stored and staged users, more than 64 kB of logins, and statistics that say so.
      await client.query(`INSERT INTO cpq.users (site, company_login, login, raw, content_hash, date_modified, first_seen_run_id)
        SELECT 'default', '_host', 'user' || g, '{}', '', now(), NULL FROM generate_series(1, 5000) g`);
      await client.query(`INSERT INTO stage_users (seq, stream, company_login, login, is_integration_user, has_groups, has_permissions, raw, content_hash)
        SELECT g, 'companies/_host', '_host', 'user' || g, false, false, false, '{}', '' FROM generate_series(2, 5000) g`);
      await client.query('ANALYZE stage_users');
      await client.query(`SET LOCAL work_mem = '64kB'`);

      expect(subplans(await planOf(client, PROBED_PER_USER))).not.toEqual([]);
      expect(subplans(await planOf(client, DELETION_CANDIDATES_SQL))).toEqual([]);
      // And the count: user1 was not read again; a user staged twice counts once.
      await client.query(`INSERT INTO stage_users (seq, stream, company_login, login, is_integration_user, has_groups, has_permissions, raw, content_hash)
        VALUES (5001, 'companies/_host', '_host', 'user2', false, false, false, '{}', '')`);
      const counted = await countDeletionCandidates(client, 'default', '2', ['_host', 'partner1'], 'all users');
      expect(counted.sort((a, b) => (a.company < b.company ? -1 : 1))).toEqual([
        { company: '_host', known: 5000, missing: 1 },
        { company: 'partner1', known: 0, missing: 0 },
      ]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
