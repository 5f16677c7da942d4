import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** The companies holding present users stored as integration users, by the partial index of migration 0015 (integration users are few). */
export async function readIntegrationUserCompanies(on: pg.Pool | pg.PoolClient, site: string): Promise<string[]> {
  const rows = await runCompiled(
    on,
    sql<{ company_login: string }>`SELECT DISTINCT company_login FROM cpq.users WHERE site = ${site} AND is_integration_user AND deleted_at IS NULL`.compile(
      queryBuilder,
    ),
  );
  return rows.map((r) => r.company_login);
}
