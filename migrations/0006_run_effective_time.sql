-- cpq-user-sync schema, version 6: the time a run's versions are valid from, apart from when it
-- finished.
--
-- A run now starts writing new users while it is still reading CPQ (merged in batches as pages
-- arrive), so the time its versions start (valid_from) is when its first merge began, not when
-- it finished. effective_at records that time; finished_at is when the run ended. The as-of
-- functions are unchanged (they read valid_from and valid_to); "the state as of T" is what the
-- last successful run with effective_at <= T wrote. Earlier runs used finished_at for both.

ALTER TABLE cpq.sync_runs ADD COLUMN effective_at timestamptz;
UPDATE cpq.sync_runs SET effective_at = finished_at WHERE status = 'succeeded';
