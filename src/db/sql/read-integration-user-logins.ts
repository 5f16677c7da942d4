import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The logins of a company's present users stored as integration users, by the partial index of
 * migration 0015: a company read learns once which of its users may need their stored
 * integration fields (keepStoredIntegrationFields), instead of asking page by page. A deleted
 * user's fields are not kept for a user of that login coming back (see readStoredRecords).
 */
export async function readIntegrationUserLogins(on: Queryable, site: string, company: string): Promise<Set<string>> {
  const rows = await runCompiled(
    on,
    sql<{
      login: string;
    }>`SELECT login FROM cpq.users WHERE site = ${site} AND company_login = ${company} AND is_integration_user AND deleted_at IS NULL`.compile(queryBuilder),
  );
  return new Set(rows.map((r) => r.login));
}
