import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** Every column of cpq.users, quoted, from the catalog: history versions copy them all, whatever later migrations add. */
export async function userColumns(client: pg.PoolClient): Promise<string[]> {
  // information_schema is not in Database: the sql tag types the row.
  const rows = await runCompiled(
    client,
    sql<{ name: string }>`SELECT quote_ident(column_name) AS name FROM information_schema.columns
     WHERE table_schema = 'cpq' AND table_name = 'users' ORDER BY ordinal_position`.compile(queryBuilder),
  );
  return rows.map((r) => r.name);
}
