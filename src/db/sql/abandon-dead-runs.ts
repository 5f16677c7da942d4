import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * Marks `site`'s runs still `running` as `abandoned`; returns their ids. Only for a caller holding
 * the site's sync lock: a run of the site left `running` then ended without recording how (its
 * process killed, or its connection to Postgres lost: DEAD_RUN_CAUSE in src/worker/run-health.ts).
 * `finished_at` stays empty: when it ended is not known (now is only when it was found,
 * perhaps a day later), and a run's duration is then unknown, not that long.
 */
export async function abandonDeadRuns(on: Queryable, site: string): Promise<string[]> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .updateTable('cpq.sync_runs')
      .set((eb) => ({
        status: 'abandoned',
        error: eb.fn.coalesce(
          'error',
          eb.val(
            'it ended without recording how (its process killed or crashed, its machine lost, or its connection to Postgres lost); nothing it read was kept',
          ),
        ),
      }))
      .where('site', '=', site)
      .where('status', '=', 'running')
      .returning('id')
      .compile(),
  );
  return rows.map((r) => r.id);
}
