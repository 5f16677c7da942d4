import type { Db } from '../database.js';

/**
 * Opens the run record (`running`) outside the run's transaction, so that it stays, and says
 * why, when the run fails; returns the run id.
 */
export async function createRun(db: Db, site: string, mode: 'full' | 'incremental'): Promise<string> {
  const run = await db
    .insertInto('cpq.sync_runs')
    .values({ site, status: 'running', mode, http_retries: '{}', streams: '[]', warnings: '[]' })
    .returning('id')
    .executeTakeFirstOrThrow();
  return run.id;
}
