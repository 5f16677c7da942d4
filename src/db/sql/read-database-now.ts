import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** The database's time: what run times (started_at, finished_at, effective_at) are measured by. */
export async function readDatabaseNow(on: Queryable): Promise<Date> {
  const rows = await runCompiled(on, sql<{ now: Date }>`SELECT clock_timestamp() AS now`.compile(queryBuilder));
  return rows[0]!.now;
}
