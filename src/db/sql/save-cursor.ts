import type pg from 'pg';
// Not converted: the upsert is CASE/LEAST/GREATEST over excluded, every value a raw sql fragment in Kysely.

/**
 * Moves a stream's cursor forward to `cursor` (never back, never past now, the transaction's
 * start by the database's clock, nor past `siteDate`, about when the run began by CPQ's clock)
 * and notes the run; `fullRead` records a complete full read's time (what SYNC_FULL_EVERY counts
 * from). A null cursor moves nothing. Returns the cursor the stream had before (null for none).
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
  }: { site: string; stream: string; cursor: string | null; fullRead: boolean; runId: string; siteDate: Date | undefined },
): Promise<Date | null> {
  const { rows } = await client.query<{ before: Date | null }>(
    // The CTE reads the row as it was before the upsert (one snapshot for the whole statement).
    `WITH before AS (SELECT cursor FROM cpq.sync_state WHERE site = $5 AND stream = $1)
     INSERT INTO cpq.sync_state (site, stream, cursor, last_full_sync_at, last_run_id, updated_at)
     -- LEAST ignores a NULL argument: without the CASE a null cursor would become now(), and a
     -- site whose clock is behind ours would then hide every later edit from incremental reads.
     VALUES ($5, $1, CASE WHEN $2::timestamptz IS NOT NULL THEN LEAST($2::timestamptz, now(), $6::timestamptz) END, CASE WHEN $3 THEN now() END, $4, now())
     ON CONFLICT (site, stream) DO UPDATE SET
       cursor = GREATEST(cpq.sync_state.cursor, excluded.cursor),
       last_full_sync_at = COALESCE(excluded.last_full_sync_at, cpq.sync_state.last_full_sync_at),
       last_run_id = excluded.last_run_id,
       updated_at = now()
     RETURNING (SELECT cursor FROM before) AS before`,
    [stream, cursor, fullRead, runId, site, siteDate ?? null],
  );
  return rows[0]!.before;
}
