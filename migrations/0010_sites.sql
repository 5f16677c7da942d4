-- cpq-user-sync schema, version 10: many CPQ sites in one database.
--
-- Every table gets a `site` column: the name of the CPQ site a row came from (CPQ_SITES_FILE, or
-- `default` when the environment alone names one site). Users are unique per site, company and
-- login; groups per site and variable name; cursors per site and stream; runs, the change logs and
-- every history table carry the site of the run that wrote them.
--
-- Every row a previous release wrote belongs to site `default`: ADD COLUMN with a constant default
-- fills existing rows without rewriting the tables (Postgres 11+), and the default is then
-- dropped, so that a statement that forgets to name the site fails instead of writing `default`.
--
-- Views keep their columns in their order and gain `site` last, replaced in place, so that reports
-- selecting columns by position still work and objects built on them (and their grants) stay.
-- The as-of functions take an optional site: users_as_of(ts) still answers for every site,
-- users_as_of(ts, 'eu') for one.

ALTER TABLE cpq.sync_runs ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.sync_state ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.users ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.user_versions ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.groups ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.group_versions ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.group_changes ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.user_change_log ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.user_groups ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.user_group_versions ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.user_access_permissions ADD COLUMN site text NOT NULL DEFAULT 'default';
ALTER TABLE cpq.user_access_permission_versions ADD COLUMN site text NOT NULL DEFAULT 'default';

ALTER TABLE cpq.sync_runs ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.sync_state ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.users ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.user_versions ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.groups ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.group_versions ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.group_changes ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.user_change_log ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.user_groups ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.user_group_versions ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.user_access_permissions ALTER COLUMN site DROP DEFAULT;
ALTER TABLE cpq.user_access_permission_versions ALTER COLUMN site DROP DEFAULT;

-- A site name is what CPQ_SITES_FILE allows (src/sites-file.ts): letters, digits, - and _.
ALTER TABLE cpq.sync_runs ADD CONSTRAINT sync_runs_site_name CHECK (site ~ '^[A-Za-z0-9_-]{1,64}$');

-- Keys: the natural keys gain the site. User ids stay unique across sites (one identity), so the
-- tables keyed by user id keep their keys.
ALTER TABLE cpq.users DROP CONSTRAINT users_company_login_key;
ALTER TABLE cpq.users ADD CONSTRAINT users_site_company_login_key UNIQUE (site, company_login, login);
ALTER TABLE cpq.groups DROP CONSTRAINT groups_pkey;
ALTER TABLE cpq.groups ADD CONSTRAINT groups_pkey PRIMARY KEY (site, variable_name);
ALTER TABLE cpq.sync_state DROP CONSTRAINT sync_state_pkey;
ALTER TABLE cpq.sync_state ADD CONSTRAINT sync_state_pkey PRIMARY KEY (site, stream);
DROP INDEX cpq.group_versions_group_idx;
CREATE INDEX group_versions_group_idx ON cpq.group_versions (site, variable_name, valid_from);
DROP INDEX cpq.group_changes_group_idx;
CREATE INDEX group_changes_group_idx ON cpq.group_changes (site, group_variable_name, id);
DROP INDEX cpq.user_groups_group_idx;
CREATE INDEX user_groups_group_idx ON cpq.user_groups (site, group_variable_name);
-- status, readiness and the worker ask for a site's latest runs.
CREATE INDEX sync_runs_site_idx ON cpq.sync_runs (site, id DESC);

-- Sites, one row each, added by the first run of a site. lock_id keys the site's sync lock
-- (pg_try_advisory_lock(1668313459, lock_id): src/db/sql/with-sync-lock.ts), a number rather than
-- a hash of the name so that two sites can never share a lock.
CREATE TABLE cpq.sites (
  name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
  lock_id integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cpq.sites (name) SELECT DISTINCT site FROM cpq.sync_runs ORDER BY 1;

-- One row per scheduled tick of a site that a `schedule` process took: the primary key makes each
-- due tick run on exactly one of the processes sharing the database.
CREATE TABLE cpq.scheduled_ticks (
  site text NOT NULL REFERENCES cpq.sites (name),
  due_at timestamptz NOT NULL,
  claimed_by text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, due_at)
);

-- History views and as-of functions, replaced in place (CREATE OR REPLACE: objects a warehouse
-- built on them, and their grants, stay): each view keeps its columns in their order and gains
-- `site` last; each as-of function keeps its one-argument form, which answers for every site, and
-- gains a two-argument one, which answers for one: the first, filtered (no default: that would
-- make a call with one argument ambiguous). Their column lists come from cpq.users and
-- cpq.groups, which now end with `site`.
DO $do$
DECLARE
  cols text;
  old_cols text;
BEGIN
  SELECT string_agg(format('%I', column_name), ', ' ORDER BY ordinal_position) INTO cols
  FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = 'users';
  SELECT string_agg(format('%I', column_name), ', ' ORDER BY ordinal_position) INTO old_cols
  FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = 'users' AND column_name <> 'site';
  EXECUTE format($f$
    CREATE OR REPLACE VIEW cpq.user_history AS
    SELECT %1$s, valid_to, site FROM cpq.user_versions
    UNION ALL
    SELECT %1$s, NULL::timestamptz AS valid_to, site FROM cpq.users
  $f$, old_cols);
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION cpq.users_as_of(ts timestamptz) RETURNS SETOF cpq.users
    LANGUAGE sql STABLE AS $body$
      SELECT %1$s FROM cpq.user_versions WHERE valid_from <= ts AND valid_to > ts
      UNION ALL
      SELECT %1$s FROM cpq.users WHERE valid_from <= ts
    $body$ $f$, cols);
END
$do$;
-- One site's answer is the all-sites answer filtered: Postgres inlines both (one SQL statement
-- each), so the filter reaches the tables, and a column a later migration adds is read through
-- the one-argument form alone (README "Adding a CPQ field").
CREATE FUNCTION cpq.users_as_of(ts timestamptz, p_site text) RETURNS SETOF cpq.users
LANGUAGE sql STABLE AS $$ SELECT * FROM cpq.users_as_of(ts) WHERE site = p_site $$;

CREATE OR REPLACE VIEW cpq.user_group_history AS
SELECT user_id, group_variable_name, added_at AS valid_from, valid_to, site FROM cpq.user_group_versions
UNION ALL
SELECT user_id, group_variable_name, added_at, NULL::timestamptz, site FROM cpq.user_groups;

CREATE OR REPLACE VIEW cpq.user_access_permission_history AS
SELECT user_id, type, variable_name, name, has_access, valid_from, valid_to, site FROM cpq.user_access_permission_versions
UNION ALL
SELECT user_id, type, variable_name, name, has_access, valid_from, NULL::timestamptz, site FROM cpq.user_access_permissions;

CREATE OR REPLACE VIEW cpq.group_history AS
SELECT variable_name, label, type, valid_from, valid_to, site FROM cpq.group_versions
UNION ALL
SELECT variable_name, label, type, valid_from, NULL::timestamptz, site FROM cpq.groups;

CREATE OR REPLACE FUNCTION cpq.user_groups_as_of(ts timestamptz) RETURNS SETOF cpq.user_groups
LANGUAGE sql STABLE AS $$
  SELECT user_id, group_variable_name, added_at, site FROM cpq.user_group_versions WHERE added_at <= ts AND valid_to > ts
  UNION ALL
  SELECT user_id, group_variable_name, added_at, site FROM cpq.user_groups WHERE added_at <= ts
$$;
CREATE FUNCTION cpq.user_groups_as_of(ts timestamptz, p_site text) RETURNS SETOF cpq.user_groups
LANGUAGE sql STABLE AS $$ SELECT * FROM cpq.user_groups_as_of(ts) WHERE site = p_site $$;

CREATE OR REPLACE FUNCTION cpq.user_access_permissions_as_of(ts timestamptz) RETURNS SETOF cpq.user_access_permissions
LANGUAGE sql STABLE AS $$
  SELECT user_id, type, variable_name, name, has_access, valid_from, site FROM cpq.user_access_permission_versions
  WHERE valid_from <= ts AND valid_to > ts
  UNION ALL
  SELECT user_id, type, variable_name, name, has_access, valid_from, site FROM cpq.user_access_permissions WHERE valid_from <= ts
$$;
CREATE FUNCTION cpq.user_access_permissions_as_of(ts timestamptz, p_site text) RETURNS SETOF cpq.user_access_permissions
LANGUAGE sql STABLE AS $$ SELECT * FROM cpq.user_access_permissions_as_of(ts) WHERE site = p_site $$;

CREATE OR REPLACE FUNCTION cpq.groups_as_of(ts timestamptz) RETURNS SETOF cpq.groups
LANGUAGE sql STABLE AS $$
  SELECT variable_name, label, type, first_seen_at, last_synced_at, valid_from, site FROM cpq.group_versions
  WHERE valid_from <= ts AND valid_to > ts
  UNION ALL
  SELECT variable_name, label, type, first_seen_at, last_synced_at, valid_from, site FROM cpq.groups WHERE valid_from <= ts
$$;
CREATE FUNCTION cpq.groups_as_of(ts timestamptz, p_site text) RETURNS SETOF cpq.groups
LANGUAGE sql STABLE AS $$ SELECT * FROM cpq.groups_as_of(ts) WHERE site = p_site $$;

-- The change log views.
CREATE OR REPLACE VIEW cpq.user_changes AS
SELECT c.id, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number, c.date_modified, c.detected_at,
       CASE WHEN c.diff IS NULL AND c.change = 'insert' THEN cpq.insert_diff(c.user_id, c.detected_at) ELSE c.diff END AS diff,
       c.site
FROM cpq.user_change_log c;

CREATE OR REPLACE VIEW cpq.user_changes_flat AS
SELECT c.id AS change_id, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number,
       c.date_modified, c.detected_at,
       d.key AS field,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN NULL ELSE d.value -> 'old' END AS old_value,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN NULL ELSE d.value -> 'new' END AS new_value,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN d.value -> 'added' END AS added,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN d.value -> 'removed' END AS removed,
       CASE WHEN d.key = 'accessPermissions' THEN d.value -> 'changed' END AS changed,
       c.site
FROM cpq.user_changes c
CROSS JOIN LATERAL jsonb_each(c.diff) d;

CREATE OR REPLACE VIEW cpq.recent_changes AS
SELECT c.id, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number, c.date_modified, c.detected_at, c.diff,
       floor(extract(epoch FROM now() - c.detected_at) / 86400)::int AS days_ago, c.site
FROM cpq.user_changes c;

-- Reporting views: per site, groups joined by site and variable name.
CREATE OR REPLACE VIEW cpq.active_users_by_company AS
SELECT company_login, type, type_display, count(*) AS users, site
FROM cpq.users
WHERE deleted_at IS NULL AND status = 1
GROUP BY site, company_login, type, type_display;

CREATE OR REPLACE VIEW cpq.group_members AS
SELECT g.variable_name AS group_variable_name, g.label AS group_label, g.type AS group_type,
       u.id AS user_id, u.company_login, u.login, u.email, u.status_display, u.site
FROM cpq.groups g
JOIN cpq.user_groups ug ON ug.site = g.site AND ug.group_variable_name = g.variable_name
JOIN cpq.users u ON u.id = ug.user_id
WHERE u.deleted_at IS NULL;

CREATE OR REPLACE VIEW cpq.users_per_group AS
SELECT g.variable_name AS group_variable_name, g.label AS group_label, g.type AS group_type,
       count(u.id) AS users, g.site
FROM cpq.groups g
LEFT JOIN cpq.user_groups ug ON ug.site = g.site AND ug.group_variable_name = g.variable_name
LEFT JOIN cpq.users u ON u.id = ug.user_id AND u.deleted_at IS NULL
GROUP BY g.site, g.variable_name, g.label, g.type;

CREATE OR REPLACE VIEW cpq.administrators AS
SELECT u.id AS user_id, u.company_login, u.login, u.email, u.status_display,
       coalesce(u.is_user_admin_perm_enabled, false) AS is_user_admin,
       coalesce(u.is_access_admin_perm_enabled, false) AS is_access_admin,
       coalesce(u.is_application_admin_perm_enabled, false) AS is_application_admin,
       coalesce(array_agg(g.variable_name ORDER BY g.variable_name) FILTER (WHERE g.type = 'Administrator'), '{}') AS administrator_groups,
       u.site
FROM cpq.users u
LEFT JOIN cpq.user_groups ug ON ug.user_id = u.id
LEFT JOIN cpq.groups g ON g.site = u.site AND g.variable_name = ug.group_variable_name
WHERE u.deleted_at IS NULL
GROUP BY u.id
HAVING coalesce(u.is_user_admin_perm_enabled, false) OR coalesce(u.is_access_admin_perm_enabled, false)
    OR coalesce(u.is_application_admin_perm_enabled, false) OR bool_or(g.type = 'Administrator');

CREATE OR REPLACE VIEW cpq.integration_users AS
SELECT id AS user_id, company_login, login, party_id, party_number, oauth_client_id, status_display,
       last_login, date_modified, site
FROM cpq.users
WHERE is_integration_user AND deleted_at IS NULL;

CREATE OR REPLACE VIEW cpq.user_logins AS
SELECT id AS user_id, company_login, login, email, status_display, last_login,
       last_login IS NULL AS never_logged_in,
       floor(extract(epoch FROM now() - last_login) / 86400)::int AS days_since_login,
       site
FROM cpq.users
WHERE deleted_at IS NULL;

-- cpq_reader: the as-of functions' new signatures.
CREATE OR REPLACE FUNCTION cpq.grant_reader_access() RETURNS void
LANGUAGE plpgsql AS $fn$
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
    cpq.user_access_permissions_as_of(timestamptz, text), cpq.groups_as_of(timestamptz, text) TO cpq_reader;
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
