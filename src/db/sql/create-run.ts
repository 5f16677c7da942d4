import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import { storable } from '../../errors.js';
import { runEndTime } from './finish-run.js';

/**
 * Opens the run record (`running`) outside the run's transaction, so that it stays, and says
 * why, when the run fails; returns the run id.
 */
export async function createRun(on: Queryable, site: string, mode: 'full' | 'incremental'): Promise<string> {
  const [run] = await runCompiled(
    on,
    queryBuilder
      .insertInto('cpq.sync_runs')
      .values({ site, status: 'running', mode, http_retries: '{}', streams: '[]', warnings: '[]' })
      .returning('id')
      .compile(),
  );
  return run!.id;
}

/**
 * Records a run that could not start (its site's lock held by a session that is no cpq-sync run)
 * as failed, in one statement: a record left `running` meanwhile would be taken for a dead run's.
 */
export async function recordFailedStart(on: Queryable, site: string, mode: 'full' | 'incremental', error: string): Promise<string> {
  const [run] = await runCompiled(
    on,
    queryBuilder
      .insertInto('cpq.sync_runs')
      .values({
        site,
        status: 'failed',
        mode,
        finished_at: runEndTime(),
        error: storable(error),
        http_retries: '{}',
        streams: '[]',
        warnings: '[]',
      })
      .returning('id')
      .compile(),
  );
  return run!.id;
}
