import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/**
 * The first `first` stored logins, in code-point order, the final merge found held by another
 * user than the one stored (run_users.another_holder, updated in place): what the run's warning
 * names, since the change log shows them as an update of the login, not a deletion and an insert.
 */
export async function readLoginsGivenToAnother(client: pg.PoolClient, first: number): Promise<{ company_login: string; login: string }[]> {
  // run_users is a temporary table of the run, not in Database: the sql tag types the rows.
  return runCompiled(
    client,
    sql<{ company_login: string; login: string }>`SELECT company_login, login FROM run_users WHERE another_holder AND action = 'update'
     ORDER BY company_login COLLATE "C", login COLLATE "C" LIMIT ${first}`.compile(queryBuilder),
  );
}
