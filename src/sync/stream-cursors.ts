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
  /** The database's time less this process's (readRunClock): last_full_sync_at is the database's. */
  clockOffsetMs: number;
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
    if (Date.now() + plan.clockOffsetMs - new Date(stream.last_full_sync_at).getTime() >= plan.fullEveryMs) return undefined;
    return new Date(new Date(stream.cursor).getTime() - plan.lookbackMs);
  };
}

/**
 * Moves each stream's cursor to the newest dateModified read. A short read moves nothing (the
 * unread users would be skipped by incremental runs until the next full read), and a cursor
 * never goes past the run's start by either clock, the database's or CPQ's (`siteDate`, see
 * CpqHttpClient.earliestSiteDate): one record dated in the future would hide every later edit
 * (warned), and edits made during a long read, on pages already read, are dated after it. A
 * site's clock found more than the lookback behind a stream's cursor (set back) is warned of too.
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
    const before = await saveCursor(client, {
      site,
      stream: p.id.name,
      cursor: complete ? p.cursor : null,
      fullRead: complete && p.report.mode === 'full',
      runId,
      siteDate,
    });
    // A cursor never passes its run's start by CPQ's clock, so a later run's clock behind it by more
    // than the lookback went back (a reset): incremental reads, from the cursor, miss what it dates
    // before it until it passes the cursor again. Only a full read finds those edits.
    if (before !== null && siteDate !== undefined && siteDate.getTime() < before.getTime() - lookbackMs) {
      warn(
        `${p.id.name}: CPQ's clock (its Date header, ${siteDate.toISOString()}) is more than SYNC_LOOKBACK behind this stream's cursor (${before.toISOString()}): it went back, and incremental reads miss the edits it dates before the cursor until it passes it again; run \`cpq-sync run --full\` to read them now`,
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
