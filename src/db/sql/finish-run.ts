import { sql } from 'kysely';
import type pg from 'pg';
import type { HttpStats } from '../../cpq/http-stats.js';
import { storable } from '../../errors.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import type { RunProgressReport, StreamReport, SyncRunsTable } from '../schema.js';
import { releaseHoldingSession } from './holding-session.js';
import { cancelOnAbort } from '../cancel-on-abort.js';

/**
 * When a run ended, by the database's clock, as started_at is: a worker whose clock is off would
 * date its runs backwards (a negative duration) or ahead (a success in the future keeping /readyz
 * green). In milliseconds, as a JavaScript Date holds it: status prints it and lastSuccessAt alike.
 */
export const runEndTime = () => sql<Date>`date_trunc('milliseconds', clock_timestamp())`;

/** What every ended run records: how it read (a failed one too: a first run reads in full), and what. */
interface RunEnd {
  mode: SyncRunsTable['mode'];
  pages: number;
  streams: StreamReport[];
  warnings: string[];
  http: HttpStats;
  /**
   * How far the run had come when it ended (the phase a failed run failed in); null for one that
   * ended before its reads began. Replaces what the run wrote as it went (writeRunProgress).
   */
  progress: RunProgressReport | null;
}

/** A run that committed: its counts, and when the versions it wrote start. */
export interface SucceededRun extends RunEnd {
  status: 'succeeded';
  counts: { seen: number; inserted: number; updated: number; unchanged: number; deleted: number; restored: number };
  effectiveAt: Date;
}

/** A run that rolled back, with its one-line error. */
export interface FailedRun extends RunEnd {
  status: 'failed' | 'interrupted';
  error: string;
}

/**
 * Closes the run record. A succeeded run writes it on the run's client, inside its transaction,
 * so the record commits with what it describes; a failed one after the rollback, on any
 * connection, and only while the record says running (or abandoned: another worker took the
 * process for dead, and it was not): a COMMIT can go through while the connection fails before
 * saying so, and the record of that run is then the committed one. Returns whether the record
 * was written.
 */
export async function finishRun(on: Queryable, runId: string, end: SucceededRun | FailedRun): Promise<boolean> {
  const common = {
    status: end.status,
    finished_at: runEndTime(),
    mode: end.mode,
    pages: end.pages,
    streams: JSON.stringify(end.streams),
    warnings: JSON.stringify(end.warnings.map(storable)),
    http_requests: end.http.requests,
    http_retries: JSON.stringify(end.http.retries),
    ...(end.progress === null ? {} : { progress: JSON.stringify(end.progress), progress_at: runEndTime() }),
  };
  const values =
    end.status === 'succeeded'
      ? {
          ...common,
          users_seen: end.counts.seen,
          users_inserted: end.counts.inserted,
          users_updated: end.counts.updated,
          users_unchanged: end.counts.unchanged,
          users_deleted: end.counts.deleted,
          users_restored: end.counts.restored,
          effective_at: end.effectiveAt,
        }
      : { ...common, error: storable(end.error) };
  let update = queryBuilder.updateTable('cpq.sync_runs').set(values).where('id', '=', runId);
  if (end.status !== 'succeeded') update = update.where('status', 'in', ['running', 'abandoned']);
  const written = await runCompiled(on, update.returning('id').compile());
  return written.length === 1;
}

/**
 * The least statement_timeout a failed run's record is written under, in milliseconds: a role's
 * or database's lower limit (meant for reporting queries) is raised to it for that one statement.
 */
export const FAILED_RECORD_STATEMENT_TIMEOUT_MS = 30_000;

/**
 * finishRun for a run that rolled back, on a connection of `pool` whose statement_timeout is
 * raised to FAILED_RECORD_STATEMENT_TIMEOUT_MS for the while when the role or database set it
 * lower: under a 5 ms limit on a loaded server the record's UPDATE was cancelled on every try, and
 * the run stayed `running`, its cause lost, for its site's next run to call abandoned. The setting
 * is the session's (a transaction would sit idle between its statements, which an
 * idle_in_transaction_session_timeout as short ends), put back before the connection returns to
 * the pool as a run's own session puts back its limits (releaseHoldingSession). `giveUp` cancels
 * the record's update (cancelOnAbort): one waiting for the record's row (another session holding
 * it) waited up to SYNC_LOCK_TIMEOUT through a shutdown.
 */
export async function finishFailedRun(pool: pg.Pool, runId: string, end: FailedRun, giveUp?: AbortSignal): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query(
      `SELECT pg_catalog.set_config('statement_timeout', $1, false) FROM pg_catalog.pg_settings
        WHERE name = 'statement_timeout' AND setting::bigint BETWEEN 1 AND $2::bigint - 1`,
      [String(FAILED_RECORD_STATEMENT_TIMEOUT_MS), FAILED_RECORD_STATEMENT_TIMEOUT_MS],
    );
    const stopCancelling = cancelOnAbort(client, giveUp);
    try {
      return await finishRun(client, runId, end);
    } finally {
      // Delivered before the session's limits are put back: landing on that, it left them off.
      await stopCancelling();
    }
  } finally {
    await releaseHoldingSession(client);
  }
}
