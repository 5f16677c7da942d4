import { readRunOutcomes, type CONCLUSIVE_STATUSES } from '../db/sql/read-run-outcomes.js';
import type { Queryable } from '../db/compiled-query.js';

export interface ConcludedRun {
  id: string;
  status: (typeof CONCLUSIVE_STATUSES)[number];
  startedAt: Date;
  finishedAt: Date | null;
  error: string | null;
}

export interface RunHealth {
  /** The newest run that ended on its own; null when there is none. */
  lastRun: ConcludedRun | null;
  lastSuccessAt: Date | null;
  /** When the current streak of unsuccessful runs began; null when the last run succeeded. */
  failingSince: Date | null;
  /** True when the last run that ended on its own failed (or was abandoned by a crash). */
  lastRunFailed: boolean;
  /** When the oldest run still `running` started (a run going on, or one that hangs); null when none is. */
  runningSince: Date | null;
  /** The database's time when read (run times are the database's); undefined without the cpq tables. */
  now: Date | undefined;
}

const UNDEFINED_TABLE = '42P01';

/** Reads the verdict of `site`'s run history; a database without the cpq tables yet has no runs. */
export async function readRunHealth(on: Queryable, site: string): Promise<RunHealth> {
  let outcomes;
  try {
    outcomes = await readRunOutcomes(on, site);
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE)
      return { lastRun: null, lastSuccessAt: null, failingSince: null, lastRunFailed: false, runningSince: null, now: undefined };
    throw err;
  }
  const { lastConcluded: c, lastSuccess, firstStarted, runningSince, now } = outcomes;
  const lastRun: ConcludedRun | null = c && { id: c.id, status: c.status, startedAt: c.started_at, finishedAt: c.finished_at, error: c.error };
  const lastRunFailed = lastRun !== null && lastRun.status !== 'succeeded';
  return {
    lastRun,
    lastSuccessAt: lastSuccess,
    // Never succeeded: failing since the very first run.
    failingSince: lastRunFailed ? (lastSuccess ?? firstStarted) : null,
    lastRunFailed,
    runningSince,
    now,
  };
}
