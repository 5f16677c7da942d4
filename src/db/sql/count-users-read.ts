import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** A company read to count: its stream, its company, and whether it was a direct first load (its rows went into cpq.users). */
export interface ReadToCount {
  stream: string;
  company: string;
  direct: boolean;
}

/**
 * Per read, how many different users it returned: fewer than its records when CPQ sent a user
 * twice. A page that repeats one user and leaves out another still adds up to totalResults;
 * counted by user, the read shows as short. A staged read's users are in stage_users (the run's
 * temporary table); a direct first load's are also the company's rows in cpq.users (it had none
 * before the run). Asked only for reads whose logins did not all come in order
 * (StreamProgress.mayRepeat), all in one grouped query: one per read would scan stage_users once
 * per company.
 */
export async function countUsersRead(client: pg.PoolClient, site: string, reads: readonly ReadToCount[]): Promise<Map<string, number>> {
  if (reads.length === 0) return new Map();
  const direct = reads.filter((r) => r.direct);
  // stage_users is a temporary table of the run, not in Database: the sql tag types the row.
  const rows = await runCompiled(
    client,
    sql<{ stream: string; users: number }>`SELECT stream, count(*)::int AS users FROM (
        SELECT stream, login FROM stage_users WHERE stream = ANY(${reads.map((r) => r.stream)}::text[])
        UNION
        SELECT d.stream, u.login FROM unnest(${direct.map((r) => r.stream)}::text[], ${direct.map((r) => r.company)}::text[]) AS d(stream, company)
          JOIN cpq.users u ON u.site = ${site} AND u.company_login = d.company
      ) read
      GROUP BY stream`.compile(queryBuilder),
  );
  return new Map(rows.map((r) => [r.stream, r.users]));
}
