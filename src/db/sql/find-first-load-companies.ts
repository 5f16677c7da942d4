import type pg from 'pg';

/** Those of `companies` the database holds no user of, deleted ones included: their read is a first load. */
export async function findFirstLoadCompanies(client: pg.PoolClient, companies: readonly string[]): Promise<Set<string>> {
  const { rows } = await client.query<{ company: string }>(
    `SELECT c.company FROM unnest($1::text[]) AS c(company)
     WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.company_login = c.company)`,
    [companies],
  );
  return new Set(rows.map((r) => r.company));
}
