-- cpq-user-sync schema, version 31: a run's progress in its record, written while it runs.
--
-- A run's counts are written when it ends: `status` beside a long run (a first load of a million
-- users takes minutes) showed `running` and nothing of how far it had come. A run now writes its
-- progress (phase, pages, users received, the totalResults CPQ reported, streams done of all)
-- through cpq.write_run_progress, outside its transaction, every few seconds and at each change of
-- phase; its end writes the last, with the rest of its record (src/sync/run-progress.ts).
--
-- The write must never make the run wait: its record is written on another connection while the
-- run's transaction is open. That transaction locks the record once its finishRun has updated it
-- (while it then waits for the commit order), and DDL on cpq.sync_runs that is queued behind the
-- run's transaction (a newer release's migration) holds every later lock request on the table,
-- the write's included, until the run ends: a run that waited for the write would wait for
-- itself. So the record is skipped when locked (SKIP LOCKED: nothing written), and the table lock
-- is given up after 50 ms (lock_timeout, the function's own: a failed write, which the run logs at
-- debug and goes on). Only a run recorded `running` is written: a write arriving after the run's
-- end changes nothing. Not SECURITY DEFINER: a login without UPDATE on the table (cpq_reader) is
-- refused, as its own UPDATE would be.
ALTER TABLE cpq.sync_runs
  ADD COLUMN progress jsonb,
  ADD COLUMN progress_at timestamptz;

CREATE FUNCTION cpq.write_run_progress(p_run_id bigint, p_progress jsonb) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '50ms'
AS $$
  WITH target AS (
    SELECT id FROM cpq.sync_runs WHERE id = p_run_id AND status = 'running' FOR NO KEY UPDATE SKIP LOCKED
  ), written AS (
    UPDATE cpq.sync_runs r SET progress = p_progress, progress_at = pg_catalog.clock_timestamp()
    FROM target WHERE r.id = target.id
    RETURNING r.id
  )
  SELECT pg_catalog.count(*) = 1 FROM written
$$;
