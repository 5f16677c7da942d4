import type pg from 'pg';

/** Every column of cpq.users, quoted, from the catalog: history versions copy them all, whatever later migrations add. */
export async function userColumns(client: pg.PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT quote_ident(column_name) AS name FROM information_schema.columns
     WHERE table_schema = 'cpq' AND table_name = 'users' ORDER BY ordinal_position`,
  );
  return rows.map((r) => r.name);
}
