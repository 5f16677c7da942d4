-- cpq-user-sync schema, version 26: one user's history and change log found by its login.
--
-- A warehouse asks "what happened to this user" by site, company and login, the key it knows (the
-- ids are the sync's own). cpq.users has that key (unique), but cpq.user_versions (what
-- cpq.user_history and the as-of functions read for versions that ended) and cpq.user_change_log
-- (cpq.user_changes) had no index on it: each such question read every ended version or every
-- change row, a scan growing with the history (26-60 ms at 100,000 users after 80 runs of 1%
-- changes, 67,000 ended versions and 167,000 change rows; a year at 1,000,000 users holds about
-- 50 times as many). These make it an index range scan (0.05-8 ms there).
--
-- Built in the migration's transaction (migrations cannot build CONCURRENTLY): while it builds,
-- writes to the two tables wait (a run of the site), reads do not: 0.25 s and 0.4 s for the
-- sizes above, so roughly half a minute for a year at 1,000,000 users.
CREATE INDEX user_versions_login_idx ON cpq.user_versions (site, company_login, login, valid_from);
CREATE INDEX user_change_log_login_idx ON cpq.user_change_log (site, company_login, login, id);
