import type pg from 'pg';
import { errorCode, LOCK_NOT_AVAILABLE } from '../../errors.js';
// Not converted: an ANALYZE and an EXPLAIN; Kysely has no builder for either, and their results are
// no rows of a table.

/**
 * How many users beyond a share of its site, as the planner believes it holds them, a run must
 * have written for its statistics to be taken again at once: autovacuum's own defaults
 * (autovacuum_analyze_threshold, analyze_scale_factor). The floor keeps a small site among large
 * ones from being analyzed after every run: ANALYZE's sample of 30,000 rows of a million usually
 * misses its users, so the planner believes it has one user after each ANALYZE too (review EY);
 * a nested loop over 50 users costs nothing.
 */
const STALE_MIN = 50;
const STALE_SHARE = 0.1;

/**
 * Whether the planner's picture of `site` lags a run that wrote `written` users (inserted, updated,
 * deleted or restored) so far that plans over the site's users go wrong: the tables were never
 * analyzed (a new database, or one just restored: pg_restore brings no statistics), or the run
 * wrote more than 50 users and a tenth of those the planner believes the site has. That belief is what
 * EXPLAIN estimates for the site's rows: 1 for a site the statistics have never seen, however many
 * of its users a first load just wrote. With it, a snapshot taken right after the first load of a
 * site of 2,001 users was planned as a nested loop over every user's groups and took 22 s instead
 * of 0.2 s (review EV's export test), as one of 30,000 did before any ANALYZE after a run (review DB).
 * Autovacuum corrects it within a minute or so, by a rule over the whole table (a tenth of all its
 * rows), which a small site among large ones never reaches.
 */
export async function userStatisticsAreStale(client: pg.PoolClient, site: string, written: number): Promise<boolean> {
  // Whether statistics exist, not whether reltuples is known: pg_restore creates the indexes after
  // loading the rows, and CREATE INDEX sets reltuples to the rows it indexed, so a restored
  // database has reltuples and no statistics at all (review EY). An empty table analyzed keeps
  // none either, and is analyzed again: nothing to read.
  const analyzed = await client.query<{ known: boolean }>(
    `SELECT EXISTS (SELECT FROM pg_catalog.pg_stats WHERE schemaname = 'cpq' AND tablename = 'users' AND attname = 'site') AS known`,
  );
  if (analyzed.rows[0]?.known !== true) return true;
  if (written === 0) return false;
  // EXPLAIN opens cpq.users and its indexes: behind a DBA's VACUUM FULL, CLUSTER, REINDEX or ALTER
  // TABLE it would wait up to SYNC_LOCK_TIMEOUT, the run committed and its site's runs skipped
  // meanwhile (review DU's wait, review EY). A table held that long is left as ANALYZE's
  // SKIP_LOCKED leaves one, to the next run.
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = '1s'`);
    const plan = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>('EXPLAIN (FORMAT JSON) SELECT 1 FROM cpq.users WHERE site = $1', [
      site,
    ]);
    const believed = plan.rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0;
    return written > STALE_MIN + STALE_SHARE * believed;
  } catch (err) {
    if (errorCode(err) === LOCK_NOT_AVAILABLE) return false;
    throw err;
  } finally {
    await client.query('ROLLBACK');
  }
}

/**
 * Planner statistics for what a run wrote, without waiting for autovacuum: the next run's merge
 * joins its few changed users to these tables, and the as-of functions (snapshots, admin rights)
 * join a site's users to their groups and permissions; with a site's users unknown to the
 * statistics either may scan a table once per user. Only the columns those joins and filters use
 * (statistics of raw would take seconds), and the run records, for the same joins. Not the
 * versions tables: as-of reads of a past time after runs that changed every user took the same
 * time with and without their statistics (review EY), and each ANALYZE of a large one samples
 * 30,000 of its pages.
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
