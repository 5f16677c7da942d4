-- cpq-user-sync schema, version 22: every admin right a user held at a given time, and since when.
--
-- An auditor's question is "who had admin rights on March 3rd, and since when?". cpq.administrators
-- and the admin_flag alert rule count five kinds of admin right: four flags (user, access and
-- application admin, and the proxy permission to log in as other users) and membership of an
-- Administrator-type group. The README could answer "since when" for the user-admin flag only;
-- for a group the answer comes from three histories at once (the user present, the membership,
-- the group's type).
--
-- One row per user present at ts and right held then. `since` is the start of the unbroken
-- stretch up to ts in which the right held: for a flag, the user's versions with the flag on and
-- the user not deleted; for a group, the stretch in which the user was present, a member and the
-- group of type Administrator, which is the latest of the three stretches' starts; either way as
-- the same person (CPQ id and dateAdded unchanged: a login given to someone new starts again).
-- A stretch is unbroken where one version ends at the instant the next begins (valid_to =
-- valid_from, as the sync writes them: every version of a run starts and ends at its
-- effective_at); an earlier grant taken away, or held before a deletion, does not count. As
-- everywhere in the history, times are runs' effective_at: a right seen by the first run shows
-- that run's time (CPQ does not say when it was granted).
--
-- Called once per query, so it has a search_path of its own (0020).

CREATE FUNCTION cpq.admin_rights_as_of(ts timestamptz)
RETURNS TABLE (site text, company_login text, login text, user_id bigint, admin_right text, group_variable_name text, since timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
-- Its plan is made without knowing ts (a function with SET is not inlined): the blind estimates
-- cost it past JIT's threshold, and compiling took 2.8 s of a 3.6 s call at 100,000 users.
SET jit = off
AS $$
  -- The rows in force at ts (present users, memberships, Administrator-type groups) each carry the
  -- start of their own version (valid_from, added_at). A right's stretch reaches further back only
  -- through versions that ended by ts, so only those are read from the *_versions tables
  -- (never the current tables a second time, and never per user): for each ended version in which
  -- a condition held, the start of the unbroken stretch it belongs to (the last version that the
  -- previous such version does not end into), found in one sort. A row in force continues the
  -- stretch of the ended version that ends where it begins (valid_to = valid_from), or starts one.
  WITH present AS (
    SELECT u.site, u.company_login, u.login, u.id, u.valid_from, u.cpq_id, u.date_added,
           u.is_user_admin_perm_enabled, u.is_access_admin_perm_enabled, u.is_application_admin_perm_enabled, u.is_proxy_perm_enabled
    FROM cpq.users_as_of(ts) u WHERE u.deleted_at IS NULL
  ),
  flags AS (
    SELECT p.site, p.company_login, p.login, p.id AS user_id, f.admin_right, p.valid_from
    FROM present p
    CROSS JOIN LATERAL (VALUES
      ('is_user_admin_perm_enabled', p.is_user_admin_perm_enabled),
      ('is_access_admin_perm_enabled', p.is_access_admin_perm_enabled),
      ('is_application_admin_perm_enabled', p.is_application_admin_perm_enabled),
      ('is_proxy_perm_enabled', p.is_proxy_perm_enabled)) f(admin_right, held)
    WHERE f.held
  ),
  groups AS (
    SELECT p.site, p.company_login, p.login, p.id AS user_id, ug.group_variable_name,
           p.valid_from AS present_from, ug.added_at AS member_from, g.valid_from AS type_from
    FROM present p
    JOIN cpq.user_groups_as_of(ts) ug ON ug.user_id = p.id
    JOIN cpq.groups_as_of(ts) g ON g.site = p.site AND g.variable_name = ug.group_variable_name AND g.type = 'Administrator'
  ),
  -- Ended user versions, one row per condition held in them: each flag, and presence (not deleted),
  -- as admin_right NULL.
  user_stretches AS (
    SELECT s.id, s.admin_right, max(s.valid_to) AS valid_to, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT h.id, v.admin_right, h.valid_from, h.valid_to,
                 lag(h.valid_to) OVER (PARTITION BY h.id, v.admin_right ORDER BY h.valid_from) IS DISTINCT FROM h.valid_from AS starts
          FROM cpq.user_versions h
          CROSS JOIN LATERAL (VALUES
            ('is_user_admin_perm_enabled', h.is_user_admin_perm_enabled),
            ('is_access_admin_perm_enabled', h.is_access_admin_perm_enabled),
            ('is_application_admin_perm_enabled', h.is_application_admin_perm_enabled),
            ('is_proxy_perm_enabled', h.is_proxy_perm_enabled),
            (NULL, true)) v(admin_right, held)
          WHERE h.valid_to <= ts AND h.deleted_at IS NULL AND v.held) s
    GROUP BY s.id, s.admin_right
  ),
  -- The same person (0022's identity_starts): per user, over the versions that ended by ts, the
  -- start of the last person's stretch and the last version's CPQ id and dateAdded.
  identity_stretches AS (
    SELECT s.id, max(s.valid_from) FILTER (WHERE s.starts) AS since,
           (array_agg(s.cpq_id ORDER BY s.valid_from DESC))[1] AS cpq_id,
           (array_agg(s.date_added ORDER BY s.valid_from DESC))[1] AS date_added
    FROM (SELECT h.id, h.valid_from, h.cpq_id, h.date_added,
                 row_number() OVER w = 1
                   OR (h.cpq_id IS NOT NULL AND lag(h.cpq_id) OVER w IS NOT NULL AND h.cpq_id <> lag(h.cpq_id) OVER w)
                   OR (h.date_added IS NOT NULL AND lag(h.date_added) OVER w IS NOT NULL AND h.date_added <> lag(h.date_added) OVER w) AS starts
          FROM cpq.user_versions h
          WHERE h.valid_to <= ts
          WINDOW w AS (PARTITION BY h.id ORDER BY h.valid_from)) s
    GROUP BY s.id
  ),
  -- Each present user's person start: the version in force starts one when it is the user's first
  -- or its CPQ id or dateAdded differs from the last ended version's.
  identity AS (
    SELECT p.id, CASE WHEN i.id IS NULL
                        OR (p.cpq_id IS NOT NULL AND i.cpq_id IS NOT NULL AND p.cpq_id <> i.cpq_id)
                        OR (p.date_added IS NOT NULL AND i.date_added IS NOT NULL AND p.date_added <> i.date_added)
                      THEN p.valid_from ELSE i.since END AS since
    FROM present p LEFT JOIN identity_stretches i ON i.id = p.id
  ),
  membership_stretches AS (
    SELECT s.user_id, s.group_variable_name, max(s.valid_to) AS valid_to, max(s.added_at) FILTER (WHERE s.starts) AS since
    FROM (SELECT m.user_id, m.group_variable_name, m.added_at, m.valid_to,
                 lag(m.valid_to) OVER (PARTITION BY m.user_id, m.group_variable_name ORDER BY m.added_at) IS DISTINCT FROM m.added_at AS starts
          FROM cpq.user_group_versions m
          WHERE m.valid_to <= ts) s
    GROUP BY s.user_id, s.group_variable_name
  ),
  type_stretches AS (
    SELECT s.site, s.variable_name, max(s.valid_to) AS valid_to, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT t.site, t.variable_name, t.valid_from, t.valid_to,
                 lag(t.valid_to) OVER (PARTITION BY t.site, t.variable_name ORDER BY t.valid_from) IS DISTINCT FROM t.valid_from AS starts
          FROM cpq.group_versions t
          WHERE t.valid_to <= ts AND t.type = 'Administrator') s
    GROUP BY s.site, s.variable_name
  )
  SELECT f.site, f.company_login, f.login, f.user_id, f.admin_right, NULL::text, greatest(coalesce(fs.since, f.valid_from), i.since)
  FROM flags f
  JOIN identity i ON i.id = f.user_id
  LEFT JOIN user_stretches fs ON fs.id = f.user_id AND fs.admin_right = f.admin_right AND fs.valid_to = f.valid_from
  UNION ALL
  -- Present, a member and the group Administrator-type all at once (as the same person): since the latest of the starts.
  SELECT g.site, g.company_login, g.login, g.user_id, 'administrator_group', g.group_variable_name,
         greatest(coalesce(ps.since, g.present_from), coalesce(ms.since, g.member_from), coalesce(ts2.since, g.type_from), i.since)
  FROM groups g
  JOIN identity i ON i.id = g.user_id
  LEFT JOIN user_stretches ps ON ps.id = g.user_id AND ps.admin_right IS NULL AND ps.valid_to = g.present_from
  LEFT JOIN membership_stretches ms ON ms.user_id = g.user_id AND ms.group_variable_name = g.group_variable_name AND ms.valid_to = g.member_from
  LEFT JOIN type_stretches ts2 ON ts2.site = g.site AND ts2.variable_name = g.group_variable_name AND ts2.valid_to = g.type_from
$$;

CREATE FUNCTION cpq.admin_rights_as_of(ts timestamptz, p_site text)
RETURNS TABLE (site text, company_login text, login text, user_id bigint, admin_right text, group_variable_name text, since timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cpq.admin_rights_as_of(ts) a WHERE a.site = p_site $$;

-- cpq_reader: the new function, with the as-of functions.
CREATE OR REPLACE FUNCTION cpq.grant_reader_access() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
BEGIN
  GRANT USAGE ON SCHEMA cpq TO cpq_reader;
  FOR r IN
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'cpq' AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname NOT LIKE 'kysely\_migration%'
  LOOP
    EXECUTE format('GRANT SELECT ON cpq.%I TO cpq_reader', r.relname);
  END LOOP;
  GRANT EXECUTE ON FUNCTION cpq.users_as_of(timestamptz), cpq.user_groups_as_of(timestamptz),
    cpq.user_access_permissions_as_of(timestamptz), cpq.groups_as_of(timestamptz),
    cpq.users_as_of(timestamptz, text), cpq.user_groups_as_of(timestamptz, text),
    cpq.user_access_permissions_as_of(timestamptz, text), cpq.groups_as_of(timestamptz, text),
    cpq.admin_rights_as_of(timestamptz), cpq.admin_rights_as_of(timestamptz, text) TO cpq_reader;
  ALTER DEFAULT PRIVILEGES IN SCHEMA cpq GRANT SELECT ON TABLES TO cpq_reader;
END
$fn$;
REVOKE EXECUTE ON FUNCTION cpq.grant_reader_access() FROM PUBLIC;

DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'cpq_reader') THEN
    PERFORM cpq.grant_reader_access();
  END IF;
END
$$;
