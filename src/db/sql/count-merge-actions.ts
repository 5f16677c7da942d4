import type pg from 'pg';

/**
 * How many users the final merge gave each action (run_users.action: insert, update, restore,
 * unchanged, restated, batched, reinsert), and how many it marked deleted (as 'delete').
 */
export async function countMergeActions(client: pg.PoolClient): Promise<Map<string, number>> {
  const { rows } = await client.query<{ action: string; n: string }>(
    `SELECT action, count(*) AS n FROM run_users GROUP BY action
     UNION ALL SELECT 'delete', count(*) FROM run_deleted`,
  );
  return new Map(rows.map((r) => [r.action, Number(r.n)]));
}
