-- cpq-user-sync schema, version 9: runs numbered in the order they commit, for polling consumers.
--
-- A run's ids (run id, change ids) and times (effective_at, finished_at) are taken before it
-- commits, so once runs may overlap (different sites, say) a consumer that polls by run id or
-- time can read past a run that commits after its poll, and never see that run's changes.
-- commit_seq numbers successful runs in commit order: a run takes the next number when its row
-- turns 'succeeded' (the last statement of its transaction), under a transaction-level advisory
-- lock (key 109334590874993, "cpqseq" in ASCII) held until the run commits or rolls back. The
-- next run to take a number waits for it, then reads the greatest number with a fresh snapshot
-- (each statement of a function does, in the READ COMMITTED transaction of a run): numbers are
-- taken in commit order, without gaps, and a snapshot that sees run N sees every run before N.
-- `cpq-sync changes --after <watermark>` reads by it. (A lock rather than a counter table: the
-- run bookkeeping stays in cpq.sync_runs.)
-- A trigger rather than a statement in the sync, so that runs of an older release (a rolling
-- deploy) are numbered too.

ALTER TABLE cpq.sync_runs
  ADD COLUMN commit_seq bigint UNIQUE,
  -- When the run took its commit_seq: moments before its commit (finished_at for earlier runs).
  ADD COLUMN committed_at timestamptz;

-- Earlier runs held the sync lock from before their run row was inserted until they committed,
-- so their ids are in commit order.
UPDATE cpq.sync_runs r SET commit_seq = n.seq, committed_at = r.finished_at
FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM cpq.sync_runs WHERE status = 'succeeded') n
WHERE r.id = n.id;

CREATE FUNCTION cpq.take_commit_seq() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(109334590874993);
  -- A statement after the lock: its snapshot includes the run that held the lock before.
  SELECT coalesce(max(commit_seq), 0) + 1 INTO NEW.commit_seq FROM cpq.sync_runs;
  NEW.committed_at := clock_timestamp();
  RETURN NEW;
END
$fn$;

CREATE TRIGGER sync_runs_take_commit_seq BEFORE UPDATE OF status ON cpq.sync_runs
FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded') EXECUTE FUNCTION cpq.take_commit_seq();
CREATE TRIGGER sync_runs_insert_take_commit_seq BEFORE INSERT ON cpq.sync_runs
FOR EACH ROW WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION cpq.take_commit_seq();
