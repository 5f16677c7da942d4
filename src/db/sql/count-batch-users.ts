import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** How many users the last merge batch inserted (batch_users, made by the batch steps). */
export async function countBatchUsers(client: pg.PoolClient): Promise<number> {
  // batch_users is a temporary table of the run, not in Database: the sql tag types the row.
  const rows = await runCompiled(client, sql<{ n: number }>`SELECT count(*)::int AS n FROM batch_users`.compile(queryBuilder));
  return rows[0]!.n;
}
