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
AS $$
  WITH present AS (
    SELECT u.site, u.company_login, u.login, u.id,
           u.is_user_admin_perm_enabled, u.is_access_admin_perm_enabled, u.is_application_admin_perm_enabled, u.is_proxy_perm_enabled
    FROM cpq.users_as_of(ts) u WHERE u.deleted_at IS NULL
  ),
  flags AS (
    SELECT p.site, p.company_login, p.login, p.id AS user_id, f.admin_right
    FROM present p
    CROSS JOIN LATERAL (VALUES
      ('is_user_admin_perm_enabled', p.is_user_admin_perm_enabled),
      ('is_access_admin_perm_enabled', p.is_access_admin_perm_enabled),
      ('is_application_admin_perm_enabled', p.is_application_admin_perm_enabled),
      ('is_proxy_perm_enabled', p.is_proxy_perm_enabled)) f(admin_right, held)
    WHERE f.held
  ),
  groups AS (
    SELECT p.site, p.company_login, p.login, p.id AS user_id, ug.group_variable_name
    FROM present p
    JOIN cpq.user_groups_as_of(ts) ug ON ug.user_id = p.id
    JOIN cpq.groups_as_of(ts) g ON g.site = p.site AND g.variable_name = ug.group_variable_name AND g.type = 'Administrator'
  ),
  -- Each source below: the versions (up to ts) in which one condition held, and a version that
  -- starts a stretch is one the previous such version does not end into. The stretch in force at
  -- ts starts at the last such start.
  flag_starts AS (
    SELECT s.id, s.admin_right, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT h.id, v.admin_right, h.valid_from,
                 lag(h.valid_to) OVER (PARTITION BY h.id, v.admin_right ORDER BY h.valid_from) IS DISTINCT FROM h.valid_from AS starts
          FROM cpq.user_history h
          CROSS JOIN LATERAL (VALUES
            ('is_user_admin_perm_enabled', h.is_user_admin_perm_enabled),
            ('is_access_admin_perm_enabled', h.is_access_admin_perm_enabled),
            ('is_application_admin_perm_enabled', h.is_application_admin_perm_enabled),
            ('is_proxy_perm_enabled', h.is_proxy_perm_enabled)) v(admin_right, held)
          WHERE h.id IN (SELECT f.user_id FROM flags f) AND h.valid_from <= ts AND h.deleted_at IS NULL AND v.held) s
    GROUP BY s.id, s.admin_right
  ),
  -- A login CPQ gave to someone new is the same user id here (users are known by site, company
  -- and login), and when no run saw the old holder deleted, its versions run on unbroken: the new
  -- holder's CPQ id or dateAdded differs, and there a person's stretch starts.
  identity_starts AS (
    SELECT s.id, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT h.id, h.valid_from,
                 row_number() OVER w = 1
                   OR (h.cpq_id IS NOT NULL AND lag(h.cpq_id) OVER w IS NOT NULL AND h.cpq_id <> lag(h.cpq_id) OVER w)
                   OR (h.date_added IS NOT NULL AND lag(h.date_added) OVER w IS NOT NULL AND h.date_added <> lag(h.date_added) OVER w) AS starts
          FROM cpq.user_history h
          WHERE h.id IN (SELECT f.user_id FROM flags f UNION SELECT g.user_id FROM groups g) AND h.valid_from <= ts
          WINDOW w AS (PARTITION BY h.id ORDER BY h.valid_from)) s
    GROUP BY s.id
  ),
  presence_starts AS (
    SELECT s.id, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT h.id, h.valid_from, lag(h.valid_to) OVER (PARTITION BY h.id ORDER BY h.valid_from) IS DISTINCT FROM h.valid_from AS starts
          FROM cpq.user_history h
          WHERE h.id IN (SELECT g.user_id FROM groups g) AND h.valid_from <= ts AND h.deleted_at IS NULL) s
    GROUP BY s.id
  ),
  membership_starts AS (
    SELECT s.user_id, s.group_variable_name, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT m.user_id, m.group_variable_name, m.valid_from,
                 lag(m.valid_to) OVER (PARTITION BY m.user_id, m.group_variable_name ORDER BY m.valid_from) IS DISTINCT FROM m.valid_from AS starts
          FROM cpq.user_group_history m
          WHERE m.user_id IN (SELECT g.user_id FROM groups g) AND m.valid_from <= ts) s
    GROUP BY s.user_id, s.group_variable_name
  ),
  type_starts AS (
    SELECT s.site, s.variable_name, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT t.site, t.variable_name, t.valid_from,
                 lag(t.valid_to) OVER (PARTITION BY t.site, t.variable_name ORDER BY t.valid_from) IS DISTINCT FROM t.valid_from AS starts
          FROM cpq.group_history t
          WHERE (t.site, t.variable_name) IN (SELECT g.site, g.group_variable_name FROM groups g) AND t.valid_from <= ts AND t.type = 'Administrator') s
    GROUP BY s.site, s.variable_name
  )
  SELECT f.site, f.company_login, f.login, f.user_id, f.admin_right, NULL::text, greatest(fs.since, i.since)
  FROM flags f
  JOIN flag_starts fs ON fs.id = f.user_id AND fs.admin_right = f.admin_right
  JOIN identity_starts i ON i.id = f.user_id
  UNION ALL
  -- Present, a member and the group Administrator-type all at once (as the same person): since the latest of the starts.
  SELECT g.site, g.company_login, g.login, g.user_id, 'administrator_group', g.group_variable_name, greatest(ps.since, ms.since, ts2.since, i.since)
  FROM groups g
  JOIN identity_starts i ON i.id = g.user_id
  JOIN presence_starts ps ON ps.id = g.user_id
  JOIN membership_starts ms ON ms.user_id = g.user_id AND ms.group_variable_name = g.group_variable_name
  JOIN type_starts ts2 ON ts2.site = g.site AND ts2.variable_name = g.group_variable_name
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
