-- cpq-user-sync schema, version 17: runs take their commit number under a table lock that only
-- the sync's role can take.
--
-- Version 9 took it under a transaction-level advisory lock with a fixed key. Any role that can
-- connect may take any advisory lock, cpq_reader included: holding that key froze every run of
-- every site at its last statement, still holding its site's sync lock, so each later run was
-- only "skipped". LOCK TABLE in EXCLUSIVE mode needs the UPDATE, DELETE or TRUNCATE privilege on
-- the table, which cpq_reader does not have; the ACCESS SHARE lock its SELECTs take does not
-- conflict with it. A table lock, not a row lock: it holds whatever the table holds (a test or a
-- DBA emptying the cpq tables). Taken the same way as before: the next run waits for the holder's
-- commit or rollback, then reads the greatest number with a fresh snapshot.

CREATE TABLE cpq.commit_order (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row)
);
COMMENT ON TABLE cpq.commit_order IS 'Locked (EXCLUSIVE) while a run takes its commit_seq; holds no data.';

CREATE OR REPLACE FUNCTION cpq.take_commit_seq() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  LOCK TABLE cpq.commit_order IN EXCLUSIVE MODE;
  -- A statement after the lock: its snapshot includes the run that held the lock before.
  SELECT coalesce(max(commit_seq), 0) + 1 INTO NEW.commit_seq FROM cpq.sync_runs;
  NEW.committed_at := clock_timestamp();
  RETURN NEW;
END
$fn$;
