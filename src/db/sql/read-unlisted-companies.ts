import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** Companies the database holds present users of that a company list does not name. */
export interface UnlistedCompanies {
  count: number;
  /** The first of them by name, at most `first`. */
  first: string[];
}

/**
 * Of `site`, the companies that `listed` does not name and the database holds present users of,
 * integration users aside (the integration feed reads them, whatever the list names). One
 * statement along the (site, company_login, login) index: it steps from one company to the next
 * (a probe per company the site has, deleted ones included) rather than grouping every user,
 * which a run of a site of a million users would pay for each time.
 */
export async function readUnlistedCompanies(on: Queryable, site: string, listed: readonly string[], first: number): Promise<UnlistedCompanies> {
  const [row] = await runCompiled(
    on,
    sql<{ n: number; first: string[] | null }>`
      WITH RECURSIVE c(company) AS (
        (SELECT u.company_login FROM cpq.users u WHERE u.site = ${site} ORDER BY u.company_login LIMIT 1)
        UNION ALL
        SELECT (SELECT u.company_login FROM cpq.users u WHERE u.site = ${site} AND u.company_login > c.company ORDER BY u.company_login LIMIT 1)
        FROM c WHERE c.company IS NOT NULL
      ), unlisted AS (
        SELECT c.company FROM c
        WHERE c.company IS NOT NULL AND c.company NOT IN (SELECT unnest(${[...listed]}::text[]))
          AND EXISTS (
            SELECT 1 FROM cpq.users u
            WHERE u.site = ${site} AND u.company_login = c.company AND u.deleted_at IS NULL AND NOT u.is_integration_user
          )
      )
      SELECT count(*)::int AS n, (array_agg(company ORDER BY company))[1:${first}::int] AS first FROM unlisted`.compile(queryBuilder),
  );
  return { count: row!.n, first: row!.first ?? [] };
}
