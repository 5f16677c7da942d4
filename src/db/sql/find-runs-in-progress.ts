import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The runs recorded `running` (of `sites`, or every site when empty) that started at or before
 * `at`: one that commits will take effect at its first write, which may be before `at`.
 */
export async function findRunsInProgress(on: Queryable, at: Date, sites: readonly string[]): Promise<{ site: string; id: string; started_at: Date }[]> {
  return runCompiled(
    on,
    sql<{ site: string; id: string; started_at: Date }>`SELECT site, id, started_at FROM cpq.sync_runs
       WHERE status = 'running' AND started_at <= ${at} AND (cardinality(${sites}::text[]) = 0 OR site = ANY(${sites}::text[]))
       ORDER BY id`.compile(queryBuilder),
  );
}
