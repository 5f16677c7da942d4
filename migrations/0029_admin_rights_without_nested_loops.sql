-- cpq-user-sync schema, version 29: cpq.admin_rights_as_of joins without nested loops.
--
-- The function reads every user present at ts, their memberships and the ended versions of all
-- of them, and joins them by user: a nested loop is never the cheaper join there. Yet its plan is
-- made from guesses: without ts (a function with SET is not inlined), over UNION ALLs whose
-- columns have no statistics, and, without statistics (a restore before its ANALYZE; the versions
-- tables and groups, which runs do not analyze), believing a site has a user or two. Believing
-- that, it joined each Administrator-type membership to a rescan of every user's stretches: 24 s
-- at 16,000 users after a restore, 42 s for a time between two runs of a history of five, against
-- 0.2-0.3 s with this setting; with statistics the time is the same (review EX). The only nested
-- loops left are those no other join can do (each user's flags, a LATERAL VALUES list). Its
-- two-argument form calls this one; the body and grants stay.

ALTER FUNCTION cpq.admin_rights_as_of(timestamptz) SET enable_nestloop = off;
