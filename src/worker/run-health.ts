import type pg from 'pg';

/**
 * Statuses of runs that ended on their own. `running` has not ended, and `interrupted` was
 * stopped on purpose (a deploy, Ctrl-C): neither says whether syncing works, so both are
 * passed over when judging health.
 */
export const CONCLUSIVE_STATUSES = ['succeeded', 'failed', 'abandoned'] as const;

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
}

const UNDEFINED_TABLE = '42P01';

/** A pool, or a connection of its own (the health endpoints use one: see HealthConnection). */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** Reads the run history's verdict; a database without the cpq tables yet has no runs. */
export async function readRunHealth(pool: Queryable): Promise<RunHealth> {
  type Row = {
    id: string | null;
    status: ConcludedRun['status'] | null;
    started_at: Date | null;
    finished_at: Date | null;
    error: string | null;
    last_success: Date | null;
    first_started: Date | null;
  };
  let rows: Row[];
  try {
    ({ rows } = await pool.query<Row>(
      `SELECT c.id, c.status, c.started_at, c.finished_at, c.error,
              (SELECT max(finished_at) FROM cpq.sync_runs WHERE status = 'succeeded') AS last_success,
              (SELECT min(started_at) FROM cpq.sync_runs) AS first_started
       FROM (SELECT 1) AS one
       LEFT JOIN LATERAL (
         SELECT id, status, started_at, finished_at, error FROM cpq.sync_runs
         WHERE status = ANY($1) ORDER BY id DESC LIMIT 1
       ) AS c ON true`,
      [CONCLUSIVE_STATUSES],
    ));
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE) return { lastRun: null, lastSuccessAt: null, failingSince: null, lastRunFailed: false };
    throw err;
  }
  const row = rows[0]!;
  const lastRun: ConcludedRun | null =
    row.id === null ? null : { id: row.id, status: row.status!, startedAt: row.started_at!, finishedAt: row.finished_at, error: row.error };
  const lastRunFailed = lastRun !== null && lastRun.status !== 'succeeded';
  return {
    lastRun,
    lastSuccessAt: row.last_success,
    // Never succeeded: failing since the very first run.
    failingSince: lastRunFailed ? (row.last_success ?? row.first_started) : null,
    lastRunFailed,
  };
}
