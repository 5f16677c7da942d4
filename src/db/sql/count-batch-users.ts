import type pg from 'pg';

/** How many users the last merge batch inserted (batch_users, made by the batch steps). */
export async function countBatchUsers(client: pg.PoolClient): Promise<number> {
  const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM batch_users');
  return rows[0]!.n;
}
