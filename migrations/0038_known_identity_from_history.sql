-- cpq-user-sync schema, version 38: the dateAdded and CPQ id last known of each login's holder, as
-- the history says them.
--
-- 0036 kept them from its own runs on: a row stored before it whose last read sent null kept none,
-- so the merge told a new holder of that login apart by nothing, where cpq.admin_rights_as_of
-- (0037), reading every version, did: the merge kept the former holder's relations while the
-- function restarted the new holder's rights (review GN). cpq.user_known_identity now holds what
-- the versions and current rows say, by the rule both follow (README, One-feed fields; 0037's
-- identity_marks): through a user's versions and its row in order, a holder starts at the user's
-- first version, at one that brings it back from deleted, and at one whose CPQ id or dateAdded
-- differs from the last one sent since the current holder's start; what is kept, where the row
-- holds null, is the last value sent since then. For a history written by runs since 0036 (and
-- reinserts since review GN) that is what those runs kept; the tests hold the two equal after
-- their runs by applying this file again (expectIdentityFromHistory). Only users whose row holds a
-- null in either column are read: no other needs a value kept. The table is locked first: a run of
-- an older release writing it would otherwise commit rows the DELETE never saw and the INSERT then
-- meets (a duplicate key, the migration rolled back; review GP). So the migration waits for such a
-- run, as for any lock, and runs wait for the migration.

LOCK TABLE cpq.user_known_identity IN SHARE ROW EXCLUSIVE MODE;

DELETE FROM cpq.user_known_identity;

WITH candidates AS (
  SELECT u.id FROM cpq.users u WHERE u.date_added IS NULL OR u.cpq_id IS NULL
),
history AS (
  SELECT h.id, h.valid_from, h.cpq_id, h.date_added, h.deleted_at IS NOT NULL AS deleted
  FROM cpq.user_versions h JOIN candidates c ON c.id = h.id
  UNION ALL
  SELECT u.id, u.valid_from, u.cpq_id, u.date_added, u.deleted_at IS NOT NULL
  FROM cpq.users u JOIN candidates c ON c.id = u.id
),
-- 0037's identity_marks, over the whole history.
marks AS (
  SELECT k.id, k.valid_from,
         row_number() OVER w = 1 OR coalesce(lag(k.deleted) OVER w AND NOT k.deleted, false) AS starts,
         greatest(CASE WHEN k.cpq_id <> lag(k.known_cpq_id) OVER w THEN lag(k.cpq_id_from) OVER w END,
                  CASE WHEN k.date_added <> lag(k.known_date_added) OVER w THEN lag(k.date_added_from) OVER w END) AS conflict_from
  FROM (SELECT n.id, n.valid_from, n.deleted, n.cpq_id, n.date_added,
               max(n.cpq_id) OVER (PARTITION BY n.id, n.cpq_ids) AS known_cpq_id,
               max(n.valid_from) FILTER (WHERE n.cpq_id IS NOT NULL) OVER (PARTITION BY n.id, n.cpq_ids) AS cpq_id_from,
               max(n.date_added) OVER (PARTITION BY n.id, n.dates_added) AS known_date_added,
               max(n.valid_from) FILTER (WHERE n.date_added IS NOT NULL) OVER (PARTITION BY n.id, n.dates_added) AS date_added_from
        FROM (SELECT h.*, count(h.cpq_id) OVER v AS cpq_ids, count(h.date_added) OVER v AS dates_added
              FROM history h
              WINDOW v AS (PARTITION BY h.id ORDER BY h.valid_from)) n) k
  WINDOW w AS (PARTITION BY k.id ORDER BY k.valid_from)
),
holders AS (
  SELECT m.id, cpq.holder_since(m.valid_from, m.starts, m.conflict_from ORDER BY m.valid_from) AS since
  FROM marks m
  WHERE m.starts OR m.conflict_from IS NOT NULL
  GROUP BY m.id
),
-- The last value each column was sent with since the current holder's start.
known AS (
  SELECT h.id,
         (array_agg(h.date_added ORDER BY h.valid_from DESC) FILTER (WHERE h.date_added IS NOT NULL))[1] AS date_added,
         (array_agg(h.cpq_id ORDER BY h.valid_from DESC) FILTER (WHERE h.cpq_id IS NOT NULL))[1] AS cpq_id
  FROM history h JOIN holders s ON s.id = h.id AND h.valid_from >= s.since
  GROUP BY h.id
),
kept AS (
  SELECT u.id, u.site,
         CASE WHEN u.date_added IS NULL THEN k.date_added END AS date_added,
         CASE WHEN u.cpq_id IS NULL THEN k.cpq_id END AS cpq_id
  FROM cpq.users u JOIN known k ON k.id = u.id
)
INSERT INTO cpq.user_known_identity (user_id, site, date_added, cpq_id)
SELECT id, site, date_added, cpq_id FROM kept WHERE date_added IS NOT NULL OR cpq_id IS NOT NULL;
