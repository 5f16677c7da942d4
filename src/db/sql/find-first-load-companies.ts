import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** Those of `companies` (of `site`) the database holds no user of, deleted ones included: their read is a first load. */
export async function findFirstLoadCompanies(client: pg.PoolClient, site: string, companies: readonly string[]): Promise<Set<string>> {
  // The sql tag, not the builder: a FROM over unnest() of a parameter reads better as SQL.
  const rows = await runCompiled(
    client,
    sql<{ company: string }>`SELECT c.company FROM unnest(${companies}::text[]) AS c(company)
     WHERE NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.site = ${site} AND u.company_login = c.company)`.compile(queryBuilder),
  );
  return new Set(rows.map((r) => r.company));
}
