import type pg from 'pg';
// Not converted: the upsert is CASE/LEAST/GREATEST over excluded, every value a raw sql fragment in Kysely.

/** A stream's cursor before and after saveCursor, and whether CPQ's clock was found set back. */
export interface SavedCursor {
  before: Date | null;
  after: Date | null;
  /** CPQ's clock (`siteDate`) was more than the lookback behind the stored cursor. */
  clockWentBack: boolean;
}

/**
 * Moves a stream's cursor forward to `cursor` (never back, never past now, the transaction's
 * start by the database's clock, nor past `siteDate`, about when the run began by CPQ's clock)
 * and notes the run; `fullRead` records a complete full read's time (what SYNC_FULL_EVERY counts
 * from). A null cursor moves nothing.
 *
 * Except when CPQ's clock went back: a stored cursor never passes its run's start by CPQ's clock,
 * so a `siteDate` more than `lookbackMs` behind it means the clock was set back, and CPQ now
 * dates its edits before the cursor, where incremental reads (from the cursor less the lookback)
 * never look. A complete full read has read them all: the cursor becomes what it read (moving
 * back). Any other read clears the cursor, so that the stream's next read is a full one.
 */
export async function saveCursor(
  client: pg.PoolClient,
  {
    site,
    stream,
    cursor,
    fullRead,
    runId,
    siteDate,
    lookbackMs,
  }: { site: string; stream: string; cursor: string | null; fullRead: boolean; runId: string; siteDate: Date | undefined; lookbackMs: number },
): Promise<SavedCursor> {
  const { rows } = await client.query<{ before: Date | null; after: Date | null; clock_went_back: boolean }>(
    // The CTE reads the row as it was before the upsert (one snapshot for the whole statement).
    `WITH before AS (
       SELECT cursor, $6::timestamptz < cursor - $7::double precision * interval '1 millisecond' AS clock_went_back
       FROM cpq.sync_state WHERE site = $5 AND stream = $1
     )
     INSERT INTO cpq.sync_state (site, stream, cursor, last_full_sync_at, last_run_id, updated_at)
     -- LEAST ignores a NULL argument: without the CASE a null cursor would become now(), and a
     -- site whose clock is behind ours would then hide every later edit from incremental reads.
     VALUES ($5, $1, CASE WHEN $2::timestamptz IS NOT NULL THEN LEAST($2::timestamptz, now(), $6::timestamptz) END, CASE WHEN $3 THEN now() END, $4, now())
     ON CONFLICT (site, stream) DO UPDATE SET
       cursor = CASE WHEN (SELECT clock_went_back FROM before) THEN CASE WHEN $3 THEN excluded.cursor END
                     ELSE GREATEST(cpq.sync_state.cursor, excluded.cursor) END,
       last_full_sync_at = COALESCE(excluded.last_full_sync_at, cpq.sync_state.last_full_sync_at),
       last_run_id = excluded.last_run_id,
       updated_at = now()
     RETURNING (SELECT cursor FROM before) AS before, cursor AS after, COALESCE((SELECT clock_went_back FROM before), false) AS clock_went_back`,
    [stream, cursor, fullRead, runId, site, siteDate ?? null, lookbackMs],
  );
  const row = rows[0]!;
  return { before: row.before, after: row.after, clockWentBack: row.clock_went_back };
}
