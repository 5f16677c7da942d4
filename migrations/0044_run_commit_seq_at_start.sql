-- cpq-user-sync schema, version 44: a run records the newest commit number it could see when it
-- began, so that `changes --since <run id>` of a run that did not commit leaves none out.
--
-- From a run without a commit_seq (failed, interrupted, running), "the runs that committed after
-- it began" was read as those whose committed_at is later than its started_at. committed_at is
-- taken moments before a COMMIT: a run whose COMMIT was still going on when the other began (a
-- slow disk, a synchronous standby) had the earlier committed_at, was left out, and showed in no
-- poll from that run (review HR). commit_seq is taken in commit order, under a lock held until the
-- commit (0017): a run that was not yet visible when this number was read has a greater one.
--
-- A default, not a value the sync writes: a worker of an older release, still running after this
-- migration (a rolling deploy), opens its runs with it too, as 0009's trigger numbers their
-- commits. Set after the column is added: added with it, every run already recorded would take
-- today's number. Those keep null, and the old reading.

CREATE FUNCTION cpq.newest_commit_seq() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(max(commit_seq), 0) FROM cpq.sync_runs
$$;

ALTER TABLE cpq.sync_runs ADD COLUMN commit_seq_at_start bigint;
ALTER TABLE cpq.sync_runs ALTER COLUMN commit_seq_at_start SET DEFAULT cpq.newest_commit_seq();
