import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/**
 * How many users the final merge gave each action (run_users.action: insert, update, restore,
 * unchanged, restated, batched, reinsert), how many it marked deleted (as 'delete'), and how many
 * stored users it found a record of another user for (as 'another holder': a login given to
 * someone new, run_users.another_holder, updated in place).
 */
export async function countMergeActions(client: pg.PoolClient): Promise<Map<string, number>> {
  // run_users and run_deleted are temporary tables of the run, not in Database: the sql tag types the rows.
  const rows = await runCompiled(
    client,
    sql<{ action: string; n: string }>`SELECT action, count(*) AS n FROM run_users GROUP BY action
     UNION ALL SELECT 'delete', count(*) FROM run_deleted
     UNION ALL SELECT 'another holder', count(*) FROM run_users WHERE another_holder AND action = 'update'`.compile(queryBuilder),
  );
  return new Map(rows.map((r) => [r.action, Number(r.n)]));
}
