import type pg from 'pg';
import type { StreamId } from '../cpq/streams.js';
import type { StreamReport } from '../db/schema.js';
import type { StreamCursor } from '../db/sql/read-cursors.js';
import { saveCursor } from '../db/sql/save-cursor.js';
import type { StreamProgress } from './stream-progress.js';

/*
 * Where each stream's read starts, and where its cursor moves once the run has read it: the two
 * ends of incremental reading, kept together so that one rule decides both.
 */

export interface ReadPlan {
  /** Read every stream in full (--full). */
  full: boolean;
  /** SYNC_FULL_EVERY: a stream whose last full read is older than this is read in full. */
  fullEveryMs: number;
  /** SYNC_LOOKBACK: an incremental read starts this long before the cursor. */
  lookbackMs: number;
  /**
   * The database's time at the run's start (readRunClock): last_full_sync_at is the database's,
   * and every stream is judged by this one instant, not by this process's clock when it is read: a
   * clock stepped during the run (NTP, a VM resumed) read a company in full early, or skipped its
   * due full read and the deletions only that finds.
   */
  databaseNow: Date;
}

/**
 * Where a stream's read starts: undefined (a full read) when asked, when it has no cursor, or when
 * its last full read is older than SYNC_FULL_EVERY (only full reads can detect deletions);
 * otherwise its cursor less SYNC_LOOKBACK.
 */
export function readsFrom(cursors: ReadonlyMap<string, StreamCursor>, plan: ReadPlan): (id: StreamId) => Date | undefined {
  return (id) => {
    const stream = cursors.get(id.name);
    if (plan.full || !stream?.cursor || !stream.last_full_sync_at) return undefined;
    if (plan.databaseNow.getTime() - new Date(stream.last_full_sync_at).getTime() >= plan.fullEveryMs) return undefined;
    return new Date(new Date(stream.cursor).getTime() - plan.lookbackMs);
  };
}

/**
 * Moves each stream's cursor to the newest dateModified read. A short read moves nothing (the
 * unread users would be skipped by incremental runs until the next full read), and a cursor
 * never goes past the run's start by either clock, the database's or CPQ's (`siteDate`, see
 * CpqHttpClient.earliestSiteDate): one record dated in the future would hide every later edit
 * (warned), and edits made during a long read, on pages already read, are dated after it. A
 * site's clock found more than the lookback behind a stream's cursor (set back) is warned of, and
 * the cursor follows it back (saveCursor): the stream's next read, or this one if full, reads
 * the edits the clock now dates before the old cursor.
 */
export async function saveStreamCursors(
  client: pg.PoolClient,
  {
    site,
    runId,
    lookbackMs,
    siteDate,
    now: databaseNow,
  }: { site: string; runId: string; lookbackMs: number; siteDate: Date | undefined; /** the database's clock */ now: Date },
  progress: readonly StreamProgress[],
  warn: (message: string) => void,
): Promise<void> {
  const now = databaseNow.getTime();
  for (const p of progress) {
    if (p.cursor !== null && Date.parse(p.cursor) > now + lookbackMs) {
      warn(`${p.id.name}: a record has dateModified ${p.cursor}, in the future; the cursor stops at the present`);
    }
    const complete = !p.report.shortRead;
    const fullRead = complete && p.report.mode === 'full';
    const saved = await saveCursor(client, { site, stream: p.id.name, cursor: complete ? p.cursor : null, fullRead, runId, siteDate, lookbackMs });
    if (saved.clockWentBack) {
      const outcome = fullRead
        ? saved.after === null
          ? 'this full read read every user, and the cursor is cleared'
          : `this full read read every user, and the cursor moves back to ${saved.after.toISOString()}`
        : "an incremental read misses the edits it dates before the cursor: the cursor is cleared, so the stream's next read is a full one (`cpq-sync run --full` reads them now)";
      warn(
        `${p.id.name}: CPQ's clock (its Date header, ${siteDate!.toISOString()}) is more than SYNC_LOOKBACK behind this stream's cursor (${saved.before!.toISOString()}): it went back; ${outcome}`,
      );
    }
  }
}

/** What the run record says of the streams together: the run's mode (`mixed` when they differ), pages and reports. */
export function summarizeStreams(
  progress: readonly StreamProgress[],
  full: boolean,
): { mode: 'full' | 'incremental' | 'mixed'; pages: number; streams: StreamReport[] } {
  const modes = new Set(progress.map((p) => p.report.mode));
  const mode = modes.size === 1 ? [...modes][0]! : modes.size === 0 ? (full ? 'full' : 'incremental') : 'mixed';
  return { mode, pages: progress.reduce((n, p) => n + p.report.pages, 0), streams: progress.map((p) => p.report) };
}
