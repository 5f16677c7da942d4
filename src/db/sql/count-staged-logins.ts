import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/**
 * Per stream named, how many different users it staged (stage_users, the run's temporary table):
 * fewer than the records it read when CPQ sent a user twice. A page that repeats one user and
 * leaves out another still adds up to totalResults; counted by user, the read shows as short.
 */
export async function countStagedLogins(client: pg.PoolClient, streams: readonly string[]): Promise<Map<string, number>> {
  if (streams.length === 0) return new Map();
  // stage_users is a temporary table of the run, not in Database: the sql tag types the row.
  const rows = await runCompiled(
    client,
    sql<{ stream: string; users: number }>`SELECT stream, count(*)::int AS users
      FROM (SELECT DISTINCT stream, company_login, login FROM stage_users WHERE stream = ANY(${[...streams]}::text[])) staged
      GROUP BY stream`.compile(queryBuilder),
  );
  return new Map(rows.map((r) => [r.stream, r.users]));
}
