import type pg from 'pg';
// Not converted: an ANALYZE with no rows; Kysely has no builder for it and a typed result would add nothing.

/**
 * Planner statistics for what a big load wrote, without waiting for autovacuum: the next run's
 * merge joins its few changed users to these tables, and with no statistics it may scan them
 * whole instead of using keys. Only the columns the merge joins and filters on, and valid_from,
 * which the as-of functions filter on: without it, a snapshot taken right after a first load of
 * 30,000 users was planned as a nested loop over every user's groups and took 2.5 minutes instead
 * of 2 s (review DB). Statistics of raw would take seconds. The run records, for the same join.
 */
export async function analyzeUserTables(client: pg.PoolClient): Promise<void> {
  // SKIP_LOCKED (Postgres 12 and later): run after the commit, still under the site's sync lock,
  // it waited for SHARE UPDATE EXCLUSIVE behind a DBA's VACUUM or CREATE INDEX CONCURRENTLY, up to
  // SYNC_LOCK_TIMEOUT, the run's process held and the site's runs skipped (review DU). A table
  // skipped (Postgres says so in a notice) is left to autovacuum's next ANALYZE.
  await client.query(
    'ANALYZE (SKIP_LOCKED) cpq.users (id, site, company_login, login, deleted_at, first_seen_run_id, valid_from), cpq.user_groups, cpq.user_access_permissions, cpq.sync_runs',
  );
}
