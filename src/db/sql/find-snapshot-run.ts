import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The last successful run whose versions start at or before `asOf` (its effective_at): the run
 * whose state a snapshot at that time reflects; undefined when there is none.
 */
export async function findSnapshotRun(on: Queryable, asOf: Date): Promise<{ id: string; finished_at: Date } | undefined> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_runs')
      .select(['id', 'finished_at'])
      .where('status', '=', 'succeeded')
      .where('effective_at', '<=', asOf)
      .orderBy('effective_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      // A succeeded run has its finished_at (the run record is closed with it).
      .$narrowType<{ finished_at: Date }>()
      .compile(),
  );
  return rows[0];
}
