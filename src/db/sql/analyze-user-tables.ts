import type pg from 'pg';
// Not converted: an ANALYZE with no rows; Kysely has no builder for it and a typed result would add nothing.

/**
 * Planner statistics for what a big load wrote, without waiting for autovacuum: the next run's
 * merge joins its few changed users to these tables, and with no statistics it may scan them
 * whole instead of using keys. Only the columns the merge joins and filters on: statistics of
 * raw would take seconds.
 */
export async function analyzeUserTables(client: pg.PoolClient): Promise<void> {
  await client.query('ANALYZE cpq.users (id, site, company_login, login, deleted_at, first_seen_run_id), cpq.user_groups, cpq.user_access_permissions');
}
