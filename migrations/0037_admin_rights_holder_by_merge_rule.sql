-- cpq-user-sync schema, version 37: cpq.admin_rights_as_of tells the holders of a login apart by
-- the merge's rule.
--
-- 0023 took each column's last value across the whole history, whoever sent it. The merge (0036,
-- src/db/sql/last-known-identity.ts) compares a record with the values its login's current holder
-- sent only: a new holder told apart by its CPQ id, whose record came without dateAdded, and which
-- later sent its own dateAdded, is one person to the merge, and was a third one here, its rights'
-- `since` starting again at the read that brought the dateAdded (review GM). A deleted user brought
-- back starts afresh in the merge too (its former values are not the new holder's). The body is
-- 0030's but for the holder's start (identity_marks, identity_stretches, identity). The rule runs
-- through a user's versions in order, each holder's start deciding the next, so it is an aggregate
-- (cpq.holder_since) fed the few versions that can start a holder, in order; the window sorts
-- before it are 0030's. Grants and owners of both public forms stay (they are unchanged); the new
-- functions are executable as every function here is (PUBLIC keeps EXECUTE).

-- The holder's start after one more version that may start one (identity_marks): the version's own
-- time where it starts a user or brings one back, or where the value it conflicts with was sent at
-- or after the current start (by the current holder); else the start as it was.
CREATE FUNCTION cpq.holder_since_step(since timestamptz, valid_from timestamptz, starts boolean, conflict_from timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN since IS NULL OR starts OR conflict_from >= since THEN valid_from ELSE since END $$;

CREATE AGGREGATE cpq.holder_since(timestamptz, boolean, timestamptz) (SFUNC = cpq.holder_since_step, STYPE = timestamptz);

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
  -- The same person (README, One-feed fields; src/db/sql/last-known-identity.ts, the merge's rule):
  -- a version starts another holder of the login where its CPQ id or dateAdded differs from the last
  -- one its holder sent, the holder's own only (a new holder that sent none yet has none known: not
  -- a former holder's, review GM), or where it brings a deleted user back (starts afresh), or where
  -- it is the user's first. Run through a user's versions in order, the last value any version
  -- sent before v (known_*, carried forward in the groups that each value not null starts, as
  -- count(value) numbers them) is its holder's exactly when it was sent since the holder's start:
  -- so v conflicts from the time that value was sent (*_from), and starts a holder where that time
  -- is at or after the current holder's start. Only such versions can start one, so
  -- cpq.holder_since runs through them alone (and each user's first), in order.
  identity_marks AS (
    SELECT k.id, k.valid_from, k.deleted,
           lead(k.valid_from) OVER w IS NULL AS last,
           row_number() OVER w = 1 OR coalesce(lag(k.deleted) OVER w AND NOT k.deleted, false) AS starts,
           greatest(CASE WHEN k.cpq_id <> lag(k.known_cpq_id) OVER w THEN lag(k.cpq_id_from) OVER w END,
                    CASE WHEN k.date_added <> lag(k.known_date_added) OVER w THEN lag(k.date_added_from) OVER w END) AS conflict_from,
           k.known_cpq_id, k.cpq_id_from, k.known_date_added, k.date_added_from
    FROM (SELECT n.id, n.valid_from, n.deleted, n.cpq_id, n.date_added,
                 max(n.cpq_id) OVER (PARTITION BY n.id, n.cpq_ids) AS known_cpq_id,
                 max(n.valid_from) FILTER (WHERE n.cpq_id IS NOT NULL) OVER (PARTITION BY n.id, n.cpq_ids) AS cpq_id_from,
                 max(n.date_added) OVER (PARTITION BY n.id, n.dates_added) AS known_date_added,
                 max(n.valid_from) FILTER (WHERE n.date_added IS NOT NULL) OVER (PARTITION BY n.id, n.dates_added) AS date_added_from
          FROM (SELECT h.id, h.valid_from, h.cpq_id, h.date_added, h.deleted_at IS NOT NULL AS deleted,
                       count(h.cpq_id) OVER v AS cpq_ids, count(h.date_added) OVER v AS dates_added
                FROM cpq.user_versions h
                WHERE h.valid_to <= ts AND (p_site IS NULL OR h.site = p_site)
                WINDOW v AS (PARTITION BY h.id ORDER BY h.valid_from)) n) k
    WINDOW w AS (PARTITION BY k.id ORDER BY k.valid_from)
  ),
  -- Per user, over the versions that ended by ts: the current holder's start, and what the last of
  -- them knew (to tell whether the version in force continues it).
  identity_stretches AS (
    SELECT m.id, cpq.holder_since(m.valid_from, m.starts, m.conflict_from ORDER BY m.valid_from) FILTER (WHERE m.starts OR m.conflict_from IS NOT NULL) AS since,
           bool_or(m.deleted) FILTER (WHERE m.last) AS deleted,
           max(m.known_cpq_id) FILTER (WHERE m.last) AS cpq_id, max(m.cpq_id_from) FILTER (WHERE m.last) AS cpq_id_from,
           max(m.known_date_added) FILTER (WHERE m.last) AS date_added, max(m.date_added_from) FILTER (WHERE m.last) AS date_added_from
    FROM identity_marks m
    WHERE m.starts OR m.conflict_from IS NOT NULL OR m.last
    GROUP BY m.id
  ),
  -- Each present user's holder start: the version in force starts one where it is the user's first
  -- or brings it back, or conflicts with a value its holder sent (by the rule above), else the
  -- holder's start stands.
  identity AS (
    SELECT p.id, CASE WHEN i.id IS NULL OR i.deleted
                        OR greatest(CASE WHEN p.cpq_id <> i.cpq_id THEN i.cpq_id_from END,
                                    CASE WHEN p.date_added <> i.date_added THEN i.date_added_from END) >= i.since
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
