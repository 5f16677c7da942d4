import type pg from 'pg';
// Not converted: a SET LOCAL; Kysely has no builder for it, and it returns no rows.

/**
 * For the rest of the caller's transaction, the planner joins by hashing or merging, never by a
 * nested loop (enable_nestloop off: a nested loop is then taken only where no other join can be).
 * For reads of every user of a site with all their memberships and permissions (a snapshot, or
 * their admin rights), where a nested loop is never the cheaper join, yet the planner cannot
 * estimate these joins: an as-of function is a UNION ALL, whose columns have no statistics, so a
 * join on one of them (the run of each user's site) is believed to keep 1 row in 200, and a
 * grouping by one (each user's groups) to make 200 groups, whatever ANALYZE knows; and without
 * statistics (a restore, the versions tables, which runs do not analyze) a site's present users
 * are believed to be a few. Believing 80 users and 200 groups, it joined each of 16,000 users to a
 * scan of every user's aggregated groups: 36 s for a snapshot after five runs, 60 s and more for
 * one of a past time (review EX); about 1.5 s with this setting.
 */
export async function joinWithoutNestedLoops(client: pg.PoolClient): Promise<void> {
  await client.query('SET LOCAL enable_nestloop = off');
}
