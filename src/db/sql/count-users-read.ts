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
 * temporary table); a direct first load's are the company's rows in cpq.users (it had none before
 * the run) and the rows it handed to staging. Asked only for reads whose logins did not all come
 * in order (StreamProgress.mayRepeat): rare, so one query per read.
 */
export async function countUsersRead(client: pg.PoolClient, site: string, reads: readonly ReadToCount[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const { stream, company, direct } of reads) {
    // stage_users is a temporary table of the run, not in Database: the sql tag types the row.
    const rows = await runCompiled(
      client,
      sql<{ users: number }>`SELECT count(*)::int AS users FROM (
          SELECT login FROM stage_users WHERE stream = ${stream}
          UNION
          SELECT login FROM cpq.users WHERE ${direct} AND site = ${site} AND company_login = ${company}
        ) read`.compile(queryBuilder),
    );
    counts.set(stream, rows[0]!.users);
  }
  return counts;
}
