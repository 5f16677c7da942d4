import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * Per site (of `sites`, or every site when empty), the last successful run whose versions start at
 * or before `asOf` (its effective_at): the run whose state a snapshot at that time reflects. A
 * site without such a run has no row.
 */
export async function findSnapshotRuns(on: Queryable, asOf: Date, sites: readonly string[]): Promise<{ site: string; id: string; finished_at: Date }[]> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_runs')
      .distinctOn('site')
      .select(['site', 'id', 'finished_at'])
      .where('status', '=', 'succeeded')
      .where('effective_at', '<=', asOf)
      .$if(sites.length > 0, (q) => q.where('site', 'in', sites))
      .orderBy('site')
      .orderBy('effective_at', 'desc')
      .orderBy('id', 'desc')
      // A succeeded run has its finished_at (the run record is closed with it).
      .$narrowType<{ finished_at: Date }>()
      .compile(),
  );
  return rows;
}

/**
 * The sites (of `sites`, or every site when empty) that had no successful run by `asOf`: each with
 * the effective_at of its first successful run, later, or null when it has none (only failed or
 * running ones). A snapshot at `asOf` has no state of them.
 */
export async function findSitesNotSyncedBy(on: Queryable, asOf: Date, sites: readonly string[]): Promise<{ site: string; first: Date | null }[]> {
  return runCompiled(
    on,
    sql<{ site: string; first: Date | null }>`SELECT site, min(effective_at) FILTER (WHERE status = 'succeeded') AS first
       FROM cpq.sync_runs
       WHERE cardinality(${sites}::text[]) = 0 OR site = ANY(${sites}::text[])
       GROUP BY site
       HAVING NOT coalesce(bool_or(status = 'succeeded' AND effective_at <= ${asOf}), false)
       ORDER BY site`.compile(queryBuilder),
  );
}
