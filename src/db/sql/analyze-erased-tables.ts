import type pg from 'pg';
// Not converted: an ANALYZE with no rows; Kysely has no builder for it and a typed result would add nothing.

/**
 * New planner statistics for the tables an erasure redacted, in its transaction (ANALYZE samples
 * the rows this transaction wrote, not the versions it replaced). pg_stats shows a column's most
 * common values and histogram bounds to every role that may SELECT it, cpq_reader included: on a
 * site of a few hundred users every e-mail address is among them, and a forgotten user's stayed
 * there until autovacuum's next ANALYZE, which a table that changes little may not see for months
 * (review DM). ANALYZE samples at most 30,000 rows a table, whatever its size. A role that does
 * not own the tables (nor is a superuser) is skipped by Postgres with a warning: autovacuum's
 * next ANALYZE then refreshes them.
 */
export async function analyzeErasedTables(client: pg.PoolClient): Promise<void> {
  // cpq.alert_outbox too: forget scrubs the personal values its delivery errors quote (review DR).
  await client.query('ANALYZE cpq.users, cpq.user_versions, cpq.user_change_log, cpq.alert_outbox');
}
