-- cpq-user-sync schema, version 25: indexes of each site's last success and first run.
--
-- /readyz, /metrics (cpq_sync_last_success_timestamp_seconds) and `status` read, for every site,
-- when its last successful run finished and when its first run started
-- (src/db/sql/read-run-outcomes.ts). cpq.sync_runs keeps every run, and without these indexes
-- both were found by reading every run of the site: 1.5 s per site at 500,000 runs, against the
-- 3 s /readyz has for all of its sites together. With them, a probe of each index.
CREATE INDEX sync_runs_last_success_idx ON cpq.sync_runs (site, finished_at) WHERE status = 'succeeded' AND finished_at IS NOT NULL;
CREATE INDEX sync_runs_site_started_idx ON cpq.sync_runs (site, started_at);
