import { sql } from 'kysely';
import { parseExactJson } from '../../exact-json.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The stored records (`raw`, numbers exact) of the given present users, keyed by
 * `key(company, login)`; `integrationOnly` leaves out users not stored as integration users. A
 * deleted user's record is left out: a user of that login coming back may be someone else (a new
 * integration user), and must not be given the old one's name, email or access permissions.
 */
export async function readStoredRecords(
  on: Queryable,
  site: string,
  users: readonly { company: string; login: string }[],
  { integrationOnly, key }: { integrationOnly: boolean; key: (company: string, login: string) => string },
): Promise<Map<string, Record<string, unknown>>> {
  const companies = users.map((u) => u.company);
  const logins = users.map((u) => u.login);
  const onlyIntegration = integrationOnly ? sql` AND is_integration_user` : sql``;
  // The sql tag, not the builder: a row-value IN over unnest() of two parameters reads better as SQL.
  // raw as text: node-postgres would parse jsonb with JSON.parse and round the int64s.
  const rows = await runCompiled(
    on,
    sql<{ company_login: string; login: string; raw: string }>`SELECT company_login, login, raw::text AS raw FROM cpq.users
     WHERE site = ${site} AND (company_login, login) IN (SELECT * FROM unnest(${companies}::text[], ${logins}::text[]))
       AND deleted_at IS NULL${onlyIntegration}`.compile(queryBuilder),
  );
  return new Map(rows.map((r) => [key(r.company_login, r.login), parseExactJson(r.raw) as Record<string, unknown>]));
}
