import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * Whether cpq.sync_runs has migration 0031's progress columns (that this role may read): `status`
 * never migrates, and a newer release's status may read a database of the release before (its
 * workers not upgraded yet).
 */
export async function syncRunsHaveProgress(on: Queryable): Promise<boolean> {
  // information_schema is not in Database: the sql tag types the row.
  const rows = await runCompiled(
    on,
    sql<{ columns: number }>`SELECT count(*)::int AS columns FROM information_schema.columns
     WHERE table_schema = 'cpq' AND table_name = 'sync_runs' AND column_name IN ('progress', 'progress_at')`.compile(queryBuilder),
  );
  return rows[0]?.columns === 2;
}
