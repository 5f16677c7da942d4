import type pg from 'pg';
import { knownBeforeRun } from './known-before-run.js';
// Not converted: knownBeforeRun is an SQL text shared with the merge, with a hand-numbered placeholder Kysely could only splice in as sql.raw.

export interface DeletionCandidates {
  company: string;
  /** Users of the company the database holds as present. */
  known: number;
  /** Of those, how many this full read did not return. */
  missing: number;
}

/** Which of a company's stored users a deletion concerns (see MergeDeletions). */
export type DeletionScope = 'all users' | 'all but integration users' | 'integration users';

/**
 * The deletion guard's count ($1 companies, $2 run id, $3 site, $4 the DeletionScope). The staged users are joined, not
 * probed per user: a NOT EXISTS in the FILTER ran as a subplan per stored user, which Postgres
 * hashes only while the staged logins fit in work_mem (they did at 100,000 users); past that, it
 * scanned every staged row for every stored one, and a full re-read of a million users never
 * finished. test/deletion-guard-plan.test.ts holds the plan free of subplans.
 */
export const DELETION_CANDIDATES_SQL = `SELECT c.company, count(k.login) AS known, count(k.login) FILTER (WHERE k.missing) AS missing
     FROM unnest($1::text[]) AS c(company)
     LEFT JOIN (
       SELECT u.company_login, u.login, s.login IS NULL AS missing
       FROM cpq.users u
       -- each staged user once: a user read twice is staged twice
       LEFT JOIN (SELECT DISTINCT company_login, login FROM stage_users) s ON s.company_login = u.company_login AND s.login = u.login
       WHERE u.site = $3 AND u.company_login = ANY($1::text[]) AND u.deleted_at IS NULL AND ${knownBeforeRun('u', '$2')}
         AND CASE $4::text WHEN 'integration users' THEN u.is_integration_user WHEN 'all but integration users' THEN NOT u.is_integration_user ELSE true END
     ) k ON k.company_login = c.company
     GROUP BY c.company`;

/**
 * The deletion guard's input: per company, how many known users of `scope` the run did not read
 * (staged users, in the run's transaction).
 */
export async function countDeletionCandidates(
  client: pg.PoolClient,
  site: string,
  runId: string,
  companies: readonly string[],
  scope: DeletionScope,
): Promise<DeletionCandidates[]> {
  if (companies.length === 0) return [];
  const { rows } = await client.query<{ company: string; known: string; missing: string }>(DELETION_CANDIDATES_SQL, [companies, runId, site, scope]);
  return rows.map((r) => ({ company: r.company, known: Number(r.known), missing: Number(r.missing) }));
}
