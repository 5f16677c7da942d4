import { readRunOutcomes, type CONCLUSIVE_STATUSES } from '../db/sql/read-run-outcomes.js';
import { readSyncLockHolder } from '../db/sql/read-sync-lock-holder.js';
import type { Queryable } from '../db/compiled-query.js';

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
  /** When the current streak of unsuccessful runs began; null when the last run succeeded. */
  failingSince: Date | null;
  /** True when the last run that ended on its own failed (or was abandoned by a crash, or died). */
  lastRunFailed: boolean;
  /** When the oldest run still `running` started (a run going on, or one that hangs); null when none is, or they are dead. */
  runningSince: Date | null;
  /**
   * The newest run recorded `running` whose site's sync lock no session holds: its process died
   * (killed, the machine lost), and the next run of the site records it abandoned. Runs up to it
   * recorded `running` are dead too; null when none is.
   */
  deadRunId: string | null;
  /** The database's time when read (run times are the database's); undefined without the cpq tables. */
  now: Date | undefined;
}

const UNDEFINED_TABLE = '42P01';

/** What a dead run's error reads as, until the next run records it abandoned. */
export const DEAD_RUN_ERROR = "recorded running, but no session holds its site's sync lock: its process died; the next run records it abandoned";

/** Whether no session holds `site`'s sync lock; false when that cannot be read (the record is then taken as it is). */
async function lockIsFree(on: Queryable, site: string): Promise<boolean> {
  try {
    return (await readSyncLockHolder(on, site)) === null;
  } catch {
    return false;
  }
}

/** Reads the verdict of `site`'s run history; a database without the cpq tables yet has no runs. */
export async function readRunHealth(on: Queryable, site: string): Promise<RunHealth> {
  let outcomes;
  // A run holds its site's lock for as long as it is recorded running: free before the runs were
  // read and after, those recorded running have no process (one that started or ended meanwhile
  // held it at one of the two).
  let freeBefore;
  try {
    freeBefore = await lockIsFree(on, site);
    outcomes = await readRunOutcomes(on, site);
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE)
      return { lastRun: null, lastSuccessAt: null, failingSince: null, lastRunFailed: false, runningSince: null, deadRunId: null, now: undefined };
    throw err;
  }
  const { lastConcluded: c, lastSuccess, firstStarted, lastRunning, now } = outcomes;
  const dead = lastRunning !== null && freeBefore && (await lockIsFree(on, site)) ? lastRunning : null;
  let lastRun: ConcludedRun | null = c && { id: c.id, status: c.status, startedAt: c.started_at, finishedAt: c.finished_at, error: c.error };
  // A dead run is the abandoned run it will be recorded as: a failure, not a run going on (or hanging).
  if (dead !== null && (lastRun === null || BigInt(dead.id) > BigInt(lastRun.id))) {
    lastRun = { id: dead.id, status: 'abandoned', startedAt: dead.started_at, finishedAt: null, error: DEAD_RUN_ERROR };
  }
  const lastRunFailed = lastRun !== null && lastRun.status !== 'succeeded';
  return {
    lastRun,
    lastSuccessAt: lastSuccess,
    // Never succeeded: failing since the very first run.
    failingSince: lastRunFailed ? (lastSuccess ?? firstStarted) : null,
    lastRunFailed,
    runningSince: dead === null ? outcomes.runningSince : null,
    deadRunId: dead?.id ?? null,
    now,
  };
}
