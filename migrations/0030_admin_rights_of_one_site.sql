-- cpq-user-sync schema, version 30: cpq.admin_rights_as_of(ts, site) sorts and joins that site's
-- rows only.
--
-- The two-argument form filtered the rows of the one-argument one, which reads, sorts and joins
-- every site's users, memberships and versions: the admin rights of a site of 100 users beside one
-- of 64,000 took 0.7 s, about as long as the large site's (the snapshot's --admin-rights --site
-- calls it). The body (0023's) is now cpq.admin_rights_as_of_site_or_all, with the site filtered in
-- every table it reads (each is still scanned whole: the plan is made without knowing the site, so
-- no index on site serves it; the sorts and joins are of that site's rows). A NULL site is every
-- site: the one-argument form is that call. The two-argument form is STRICT, so that a NULL site
-- still gives no rows, as the other as-of functions' two-argument forms do and as it did (a caller
-- binding an unset site must not get every site's admins). A user's versions, memberships and
-- their versions are all of the user's site, so each stretch is the same as before. Grants and
-- owners of the two public forms stay (CREATE OR REPLACE); the new function is executable as
-- every function here is (PUBLIC keeps EXECUTE; cpq_reader has USAGE on the schema). The settings
-- are the body's: a function with SET is not inlined, and its plan is made without knowing ts or
-- the site (0022: JIT compiled for seconds; 0029: nested loops over every user's stretches).

CREATE OR REPLACE FUNCTION cpq.admin_rights_as_of_site_or_all(ts timestamptz, p_site text)
RETURNS TABLE (site text, company_login text, login text, user_id bigint, admin_right text, group_variable_name text, since timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_nestloop = off
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
    FROM cpq.users_as_of(ts) u WHERE u.deleted_at IS NULL AND (p_site IS NULL OR u.site = p_site)
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
    JOIN cpq.user_groups_as_of(ts) ug ON ug.user_id = p.id AND (p_site IS NULL OR ug.site = p_site)
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
          WHERE h.valid_to <= ts AND h.deleted_at IS NULL AND v.held AND (p_site IS NULL OR h.site = p_site)) s
    GROUP BY s.id, s.admin_right
  ),
  -- The same person: per user, over the versions that ended by ts, the start of the last person's
  -- stretch and the last CPQ id and dateAdded known (the last not null). A version starts a person
  -- where its CPQ id or dateAdded differs from the last one known before it, across versions
  -- that had none (D1, NULL, D2 is two people; comparing with the version just before, the NULL,
  -- was not). known_*: the last value not null up to each version, carried forward in the groups
  -- that each value not null starts (count(value) numbers them).
  identity_stretches AS (
    SELECT s.id, max(s.valid_from) FILTER (WHERE s.starts) AS since,
           (array_agg(s.known_cpq_id ORDER BY s.valid_from DESC))[1] AS cpq_id,
           (array_agg(s.known_date_added ORDER BY s.valid_from DESC))[1] AS date_added
    FROM (SELECT k.id, k.valid_from, k.known_cpq_id, k.known_date_added,
                 row_number() OVER w = 1
                   OR (k.cpq_id IS NOT NULL AND lag(k.known_cpq_id) OVER w IS NOT NULL AND k.cpq_id <> lag(k.known_cpq_id) OVER w)
                   OR (k.date_added IS NOT NULL AND lag(k.known_date_added) OVER w IS NOT NULL AND k.date_added <> lag(k.known_date_added) OVER w) AS starts
          FROM (SELECT n.id, n.valid_from, n.cpq_id, n.date_added,
                       max(n.cpq_id) OVER (PARTITION BY n.id, n.cpq_ids) AS known_cpq_id,
                       max(n.date_added) OVER (PARTITION BY n.id, n.dates_added) AS known_date_added
                FROM (SELECT h.id, h.valid_from, h.cpq_id, h.date_added,
                             count(h.cpq_id) OVER v AS cpq_ids, count(h.date_added) OVER v AS dates_added
                      FROM cpq.user_versions h
                      WHERE h.valid_to <= ts AND (p_site IS NULL OR h.site = p_site)
                      WINDOW v AS (PARTITION BY h.id ORDER BY h.valid_from)) n) k
          WINDOW w AS (PARTITION BY k.id ORDER BY k.valid_from)) s
    GROUP BY s.id
  ),
  -- Each present user's person start: the version in force starts one when it is the user's first
  -- or its CPQ id or dateAdded differs from the last one the ended versions knew.
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
          WHERE m.valid_to <= ts AND (p_site IS NULL OR m.site = p_site)) s
    GROUP BY s.user_id, s.group_variable_name
  ),
  type_stretches AS (
    SELECT s.site, s.variable_name, max(s.valid_to) AS valid_to, max(s.valid_from) FILTER (WHERE s.starts) AS since
    FROM (SELECT t.site, t.variable_name, t.valid_from, t.valid_to,
                 lag(t.valid_to) OVER (PARTITION BY t.site, t.variable_name ORDER BY t.valid_from) IS DISTINCT FROM t.valid_from AS starts
          FROM cpq.group_versions t
          WHERE t.valid_to <= ts AND t.type = 'Administrator' AND (p_site IS NULL OR t.site = p_site)) s
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

CREATE OR REPLACE FUNCTION cpq.admin_rights_as_of(ts timestamptz, p_site text)
RETURNS TABLE (site text, company_login text, login text, user_id bigint, admin_right text, group_variable_name text, since timestamptz)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cpq.admin_rights_as_of_site_or_all(ts, p_site) $$;

CREATE OR REPLACE FUNCTION cpq.admin_rights_as_of(ts timestamptz)
RETURNS TABLE (site text, company_login text, login text, user_id bigint, admin_right text, group_variable_name text, since timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cpq.admin_rights_as_of_site_or_all(ts, NULL::text) $$;
