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

/**
 * The deletion guard's input: per company read in full, how many known users the read did not
 * return (staged users, in the run's transaction).
 */
export async function countDeletionCandidates(client: pg.PoolClient, site: string, runId: string, companies: readonly string[]): Promise<DeletionCandidates[]> {
  if (companies.length === 0) return [];
  const { rows } = await client.query<{ company: string; known: string; missing: string }>(
    `SELECT c.company,
            count(u.id) AS known,
            count(u.id) FILTER (WHERE NOT EXISTS (
              SELECT 1 FROM stage_users s WHERE s.company_login = u.company_login AND s.login = u.login)) AS missing
     FROM unnest($1::text[]) AS c(company)
     LEFT JOIN cpq.users u ON u.site = $3 AND u.company_login = c.company AND u.deleted_at IS NULL AND ${knownBeforeRun('u', '$2')}
     GROUP BY c.company`,
    [companies, runId, site],
  );
  return rows.map((r) => ({ company: r.company, known: Number(r.known), missing: Number(r.missing) }));
}
