import type pg from 'pg';
import { oneLine } from '../errors.js';
import { readRunHealth } from './run-health.js';
import { withTimeout } from './timeout.js';

export interface ReadinessOptions {
  /** SYNC_STALE_AFTER: how long runs may keep failing before the worker reports not ready. */
  staleAfterMs: number;
  /** A probe must answer quickly; a database that does not answer in time counts as unreachable. */
  timeoutMs?: number;
  now?: () => Date;
}

export interface ReadinessReport {
  ready: boolean;
  /** "ok", or why the database could not be read. */
  database: string;
  /** "ok", or since when runs have been failing. */
  runs: string;
  lastRun: { id: string; status: string; finishedAt: string | null; error: string | null } | null;
  lastSuccessAt: string | null;
}

/**
 * Ready = the database answers, and runs have not been failing for longer than SYNC_STALE_AFTER.
 * One failed run after a good one does not flip readiness (CPQ has outages; the next run
 * retries); a streak of failures that outlasts SYNC_STALE_AFTER does. No runs yet is ready.
 */
export async function checkReadiness(pool: pg.Pool, options: ReadinessOptions): Promise<ReadinessReport> {
  const now = options.now?.() ?? new Date();
  let health;
  try {
    health = await withTimeout(readRunHealth(pool), options.timeoutMs ?? 3000);
  } catch (err) {
    return {
      ready: false,
      database: `unreachable: ${oneLine((err as Error).message)}`,
      runs: 'unknown',
      lastRun: null,
      lastSuccessAt: null,
    };
  }
  const { lastRun, lastSuccessAt, failingSince } = health;
  const stale = failingSince !== null && now.getTime() - failingSince.getTime() > options.staleAfterMs;
  return {
    ready: !stale,
    database: 'ok',
    runs: stale
      ? `runs have not succeeded since ${failingSince.toISOString()} (longer than SYNC_STALE_AFTER)`
      : failingSince
        ? `the last run failed; runs have not succeeded since ${failingSince.toISOString()}, within SYNC_STALE_AFTER`
        : 'ok',
    lastRun: lastRun && {
      id: lastRun.id,
      status: lastRun.status,
      finishedAt: lastRun.finishedAt?.toISOString() ?? null,
      error: lastRun.error,
    },
    lastSuccessAt: lastSuccessAt?.toISOString() ?? null,
  };
}
