import { readRunOutcomes, type CONCLUSIVE_STATUSES, type RunOutcomes } from '../db/sql/read-run-outcomes.js';
import { syncLockIsFree } from '../db/sql/read-sync-lock-holder.js';
import type { Queryable } from '../db/compiled-query.js';
import { isUndefinedTable } from '../errors.js';

export interface ConcludedRun {
  id: string;
  status: (typeof CONCLUSIVE_STATUSES)[number];
  startedAt: Date;
  finishedAt: Date | null;
  error: string | null;
}

export interface RunHealth {
  /** The newest run that ended on its own, a dead one as `abandoned` (see deadRunId); null when there is none. */
  lastRun: ConcludedRun | null;
  lastSuccessAt: Date | null;
  /** How long the last successful run took, in seconds; null when none has succeeded. */
  lastSuccessSeconds: number | null;
  /** When the current streak of unsuccessful runs began; null when the last run succeeded. */
  failingSince: Date | null;
  /** True when the last run that ended on its own failed (or was abandoned, or is dead). */
  lastRunFailed: boolean;
  /** When the oldest run still `running` started (a run going on, or one that hangs); null when none is, or they are dead. */
  runningSince: Date | null;
  /**
   * The newest run recorded `running` whose site's sync lock no session holds: it ended without
   * recording how (DEAD_RUN_CAUSE), and the next run of the site records it abandoned. Runs up to
   * it recorded `running` are dead too; null when none is.
   */
  deadRunId: string | null;
  /** The database's time when read (run times are the database's); undefined without the cpq tables. */
  now: Date | undefined;
}

/**
 * What is known of a dead run: the session that held its site's sync lock is gone, without a record
 * of how the run ended. Not that its process died: a run that lost its connection to Postgres and
 * could not record its failure within half a minute of tries is left so too (`run` then exits 6, a
 * worker goes on), and so is one whose record a shutdown could not wait for.
 */
export const DEAD_RUN_CAUSE = 'it ended without recording how (its process killed or crashed, its machine lost, or its connection to Postgres lost)';

/** What a dead run's error reads as, until the next run records it abandoned. */
const DEAD_RUN_ERROR = `recorded running, but no session holds its site's sync lock: ${DEAD_RUN_CAUSE}; the next run records it abandoned`;

/** Reads the verdict of `site`'s run history; a database without the cpq tables yet has no runs. */
export async function readRunHealth(on: Queryable, site: string): Promise<RunHealth> {
  let outcomes;
  try {
    outcomes = await readRunOutcomes(on, site);
  } catch (err) {
    if (isUndefinedTable(err))
      return {
        lastRun: null,
        lastSuccessAt: null,
        lastSuccessSeconds: null,
        failingSince: null,
        lastRunFailed: false,
        runningSince: null,
        deadRunId: null,
        now: undefined,
      };
    throw err;
  }
  // A run holds its site's lock from before its record says running until after it says how it
  // ended. A run recorded running, then the lock free, then the same run still recorded running:
  // its process is gone (one that ended meanwhile is recorded so by the second read). The lock is
  // asked about only while a run is recorded running: /readyz reads this for every site.
  let dead: RunOutcomes['lastRunning'] = null;
  const running = outcomes.lastRunning;
  if (running !== null && (await syncLockIsFree(on, site))) {
    outcomes = await readRunOutcomes(on, site);
    if (outcomes.lastRunning?.id === running.id) dead = outcomes.lastRunning;
  }
  const { lastConcluded: c, lastSuccess, firstStarted, now } = outcomes;
  let lastRun: ConcludedRun | null = c && { id: c.id, status: c.status, startedAt: c.started_at, finishedAt: c.finished_at, error: c.error };
  // A dead run is the abandoned run it will be recorded as: a failure, not a run going on (or hanging).
  if (dead !== null && (lastRun === null || BigInt(dead.id) > BigInt(lastRun.id))) {
    lastRun = { id: dead.id, status: 'abandoned', startedAt: dead.started_at, finishedAt: null, error: DEAD_RUN_ERROR };
  }
  const lastRunFailed = lastRun !== null && lastRun.status !== 'succeeded';
  return {
    lastRun,
    lastSuccessAt: lastSuccess,
    lastSuccessSeconds: outcomes.lastSuccessSeconds,
    // Never succeeded: failing since the very first run.
    failingSince: lastRunFailed ? (lastSuccess ?? firstStarted) : null,
    lastRunFailed,
    runningSince: dead === null ? outcomes.runningSince : null,
    deadRunId: dead?.id ?? null,
    now,
  };
}
