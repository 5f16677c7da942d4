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
-- Written by the statement that opens the run record (src/db/sql/create-run.ts); null for the
-- runs of earlier releases, which keep the old reading.

ALTER TABLE cpq.sync_runs ADD COLUMN commit_seq_at_start bigint;
COMMENT ON COLUMN cpq.sync_runs.commit_seq_at_start IS 'The greatest commit_seq committed when the run record was opened (0 if none); null for runs of releases before it was kept.';
