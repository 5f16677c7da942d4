import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import type { RunProgressReport } from '../schema.js';

/**
 * Writes a running run's progress into its record, outside its transaction (migration 0031's
 * cpq.write_run_progress): never waits for the record's row lock (skipped), and gives up a table
 * lock after 50 ms (fails), so that a run is never held up by its own bookkeeping. Returns whether
 * it was written: false when the record is locked, or no longer `running`.
 */
export async function writeRunProgress(on: Queryable, runId: string, progress: RunProgressReport): Promise<boolean> {
  const rows = await runCompiled(
    on,
    sql<{ written: boolean }>`SELECT cpq.write_run_progress(${runId}::bigint, ${JSON.stringify(progress)}::jsonb) AS written`.compile(queryBuilder),
  );
  return rows[0]?.written === true;
}
