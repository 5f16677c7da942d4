-- cpq-user-sync schema, version 24: indexes of each company's latest counts.
--
-- /metrics reads, at every scrape, each company's counts of its latest run and of its latest full
-- read (src/db/sql/read-proofs.ts, readLatestCompanyCounts). cpq.run_company_counts gains a row
-- per run and company and is never pruned, and without these indexes that read looked at every
-- row once per row: half a second at 1,242 rows (14 minutes of a worker syncing 3 sites every few
-- seconds), past the 2 s statement timeout of the health connection soon after, which held up
-- /readyz behind it. With them it takes a few index probes per company, however many runs.
CREATE INDEX run_company_counts_latest_idx ON cpq.run_company_counts (site, company_login, run_id DESC);
CREATE INDEX run_company_counts_latest_full_idx ON cpq.run_company_counts (site, company_login, run_id DESC) WHERE mode = 'full';
