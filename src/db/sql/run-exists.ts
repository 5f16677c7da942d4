import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** Whether cpq.sync_runs holds run `runId` (of any site, in any state). */
export async function runExists(on: Queryable, runId: string): Promise<boolean> {
  const rows = await runCompiled(on, queryBuilder.selectFrom('cpq.sync_runs').select('id').where('id', '=', runId).compile());
  return rows.length > 0;
}
