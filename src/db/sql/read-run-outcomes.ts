import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import type { SyncRunsTable } from '../schema.js';

/**
 * Statuses of runs that ended on their own. `running` has not ended, and `interrupted` was
 * stopped on purpose (a deploy, Ctrl-C): neither says whether syncing works, so both are
 * passed over when judging health.
 */
export const CONCLUSIVE_STATUSES = ['succeeded', 'failed', 'abandoned'] as const satisfies readonly SyncRunsTable['status'][];

export interface RunOutcomes {
  /** The newest run that ended on its own; null when there is none. */
  lastConcluded: {
    id: string;
    status: (typeof CONCLUSIVE_STATUSES)[number];
    started_at: Date;
    finished_at: Date | null;
    error: string | null;
  } | null;
  /** When the last successful run finished; null when none has. */
  lastSuccess: Date | null;
  /** How long that run took (finished_at - started_at, in seconds); null when none has succeeded. */
  lastSuccessSeconds: number | null;
  /** When the first run started; null when there is none. */
  firstStarted: Date | null;
  /** When the oldest run still `running` started; null when none is. */
  runningSince: Date | null;
  /** The newest run still `running`; null when none is. */
  lastRunning: { id: string; started_at: Date } | null;
  /** The database's time when read: run times are the database's, so their age is measured by it. */
  now: Date;
}

/** What `site`'s run history says about its health, read in one statement (one consistent view of it). */
export async function readRunOutcomes(on: Queryable, site: string): Promise<RunOutcomes> {
  const rows = await runCompiled(
    on,
    queryBuilder
      // One row whether or not any run concluded (or is running): the lateral joins of at most one run each to it.
      .selectFrom(sql`(SELECT 1)`.as('one'))
      .leftJoinLateral(
        (eb) =>
          eb
            .selectFrom('cpq.sync_runs')
            .select(['id', 'status', 'started_at', 'finished_at', 'error'])
            .where('site', '=', site)
            .where('status', 'in', CONCLUSIVE_STATUSES)
            .orderBy('id', 'desc')
            .limit(1)
            .as('c'),
        (join) => join.onTrue(),
      )
      .leftJoinLateral(
        (eb) =>
          eb
            .selectFrom('cpq.sync_runs')
            .select(['id as running_id', 'started_at as running_started_at'])
            .where('site', '=', site)
            .where('status', '=', 'running')
            .orderBy('id', 'desc')
            .limit(1)
            .as('r'),
        (join) => join.onTrue(),
      )
      .leftJoinLateral(
        (eb) =>
          eb
            .selectFrom('cpq.sync_runs')
            .select(['finished_at as last_success', sql<number>`extract(epoch FROM finished_at - started_at)::float8`.as('last_success_seconds')])
            .where('site', '=', site)
            .where('status', '=', 'succeeded')
            // As max(finished_at) did: a DESC order would put a NULL first.
            .where('finished_at', 'is not', null)
            .orderBy('finished_at', 'desc')
            .limit(1)
            .as('s'),
        (join) => join.onTrue(),
      )
      .select([
        'c.id',
        'c.status',
        'c.started_at',
        'c.finished_at',
        'c.error',
        'r.running_id',
        'r.running_started_at',
        's.last_success',
        's.last_success_seconds',
      ])
      .select((eb) => [
        eb.selectFrom('cpq.sync_runs').select(eb.fn.min('started_at').as('at')).where('site', '=', site).as('first_started'),
        eb.selectFrom('cpq.sync_runs').select(eb.fn.min('started_at').as('at')).where('site', '=', site).where('status', '=', 'running').as('running_since'),
        sql<Date>`clock_timestamp()`.as('now'),
      ])
      .compile(),
  );
  const row = rows[0]!;
  return {
    lastConcluded:
      row.id === null
        ? null
        : {
            id: row.id,
            status: row.status as (typeof CONCLUSIVE_STATUSES)[number],
            started_at: row.started_at!,
            finished_at: row.finished_at,
            error: row.error,
          },
    lastSuccess: row.last_success,
    lastSuccessSeconds: row.last_success_seconds,
    firstStarted: row.first_started,
    runningSince: row.running_since,
    lastRunning: row.running_id === null || row.running_started_at === null ? null : { id: row.running_id, started_at: row.running_started_at },
    now: row.now,
  };
}
