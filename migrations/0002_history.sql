-- cpq-user-sync schema, version 2: change log, SCD type 2 history of users, memberships and
-- access permissions, as-of functions, and reporting views.

-- One row per detected change of a user. diff holds every changed field as
-- {"field": {"old": ..., "new": ...}}, and membership changes as
-- {"groups": {"added": [...], "removed": [...]}} and
-- {"accessPermissions": {"added": [...], "removed": [...], "changed": [...]}}.
CREATE TABLE cpq.user_changes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  change text NOT NULL CHECK (change IN ('insert', 'update', 'delete', 'restore')),
  user_id bigint NOT NULL REFERENCES cpq.users (id),
  company_login text NOT NULL,
  login text NOT NULL,
  party_number text,
  date_modified timestamptz,
  detected_at timestamptz NOT NULL,
  diff jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX user_changes_run_idx ON cpq.user_changes (run_id);
CREATE INDEX user_changes_detected_idx ON cpq.user_changes (detected_at);
CREATE INDEX user_changes_user_idx ON cpq.user_changes (user_id, id);

-- One row per changed field (groups and accessPermissions count as fields).
CREATE VIEW cpq.user_changes_flat AS
SELECT c.id AS change_id, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number,
       c.date_modified, c.detected_at,
       d.key AS field,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN NULL ELSE d.value -> 'old' END AS old_value,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN NULL ELSE d.value -> 'new' END AS new_value,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN d.value -> 'added' END AS added,
       CASE WHEN d.key IN ('groups', 'accessPermissions') THEN d.value -> 'removed' END AS removed,
       CASE WHEN d.key = 'accessPermissions' THEN d.value -> 'changed' END AS changed
FROM cpq.user_changes c
CROSS JOIN LATERAL jsonb_each(c.diff) d;

-- History (SCD type 2). The current version of a user, membership or permission is its row in
-- the current tables, valid from its valid_from (added_at for memberships); the *_versions
-- tables hold the versions that ended, with the time they ended. A version starts and ends at
-- the effective_at of the run that wrote or replaced it (since 0006; its finished_at before).
-- Storing only ended versions keeps a full load from writing every row twice.
ALTER TABLE cpq.users ADD COLUMN valid_from timestamptz;
UPDATE cpq.users SET valid_from = first_seen_at;
ALTER TABLE cpq.users ALTER COLUMN valid_from SET NOT NULL, ALTER COLUMN valid_from SET DEFAULT now();
ALTER TABLE cpq.user_access_permissions ADD COLUMN valid_from timestamptz NOT NULL DEFAULT now();

CREATE TABLE cpq.user_versions (
  LIKE cpq.users,
  valid_to timestamptz NOT NULL,
  ended_by_run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);
CREATE INDEX user_versions_user_idx ON cpq.user_versions (id, valid_from);
CREATE INDEX user_versions_validity_idx ON cpq.user_versions (valid_from, valid_to);

CREATE TABLE cpq.user_group_versions (
  user_id bigint NOT NULL,
  group_variable_name text NOT NULL,
  added_at timestamptz NOT NULL,
  valid_to timestamptz NOT NULL,
  ended_by_run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);
CREATE INDEX user_group_versions_user_idx ON cpq.user_group_versions (user_id, group_variable_name);
CREATE INDEX user_group_versions_validity_idx ON cpq.user_group_versions (added_at, valid_to);

CREATE TABLE cpq.user_access_permission_versions (
  user_id bigint NOT NULL,
  type text NOT NULL,
  variable_name text NOT NULL,
  name text,
  has_access boolean,
  valid_from timestamptz NOT NULL,
  valid_to timestamptz NOT NULL,
  ended_by_run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);
CREATE INDEX user_access_permission_versions_user_idx ON cpq.user_access_permission_versions (user_id, type, variable_name);
CREATE INDEX user_access_permission_versions_validity_idx ON cpq.user_access_permission_versions (valid_from, valid_to);

-- Every version, ended and current, with valid_to null while current.
CREATE VIEW cpq.user_group_history AS
SELECT user_id, group_variable_name, added_at AS valid_from, valid_to FROM cpq.user_group_versions
UNION ALL
SELECT user_id, group_variable_name, added_at, NULL::timestamptz FROM cpq.user_groups;

CREATE VIEW cpq.user_access_permission_history AS
SELECT user_id, type, variable_name, name, has_access, valid_from, valid_to FROM cpq.user_access_permission_versions
UNION ALL
SELECT user_id, type, variable_name, name, has_access, valid_from, NULL::timestamptz FROM cpq.user_access_permissions;

-- As-of functions: exactly what the current tables held after the last successful run whose
-- versions start at or before ts (its effective_at since 0006), with the same columns as
-- cpq.users, cpq.user_groups and cpq.user_access_permissions. The users column lists are read
-- from the catalog here; a migration that adds a column to cpq.users adds it to
-- cpq.user_versions and rebuilds these (README "Adding a CPQ field").
DO $do$
DECLARE
  cols text;
BEGIN
  SELECT string_agg(format('%I', column_name), ', ' ORDER BY ordinal_position) INTO cols
  FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = 'users';
  EXECUTE format($f$
    CREATE VIEW cpq.user_history AS
    SELECT %1$s, valid_to FROM cpq.user_versions
    UNION ALL
    SELECT %1$s, NULL::timestamptz AS valid_to FROM cpq.users
  $f$, cols);
  EXECUTE format($f$
    CREATE FUNCTION cpq.users_as_of(ts timestamptz) RETURNS SETOF cpq.users
    LANGUAGE sql STABLE AS $body$
      SELECT %1$s FROM cpq.user_versions WHERE valid_from <= ts AND valid_to > ts
      UNION ALL
      SELECT %1$s FROM cpq.users WHERE valid_from <= ts
    $body$ $f$, cols);
END
$do$;

CREATE FUNCTION cpq.user_groups_as_of(ts timestamptz) RETURNS SETOF cpq.user_groups
LANGUAGE sql STABLE AS $$
  SELECT user_id, group_variable_name, added_at FROM cpq.user_group_versions WHERE added_at <= ts AND valid_to > ts
  UNION ALL
  SELECT user_id, group_variable_name, added_at FROM cpq.user_groups WHERE added_at <= ts
$$;

CREATE FUNCTION cpq.user_access_permissions_as_of(ts timestamptz) RETURNS SETOF cpq.user_access_permissions
LANGUAGE sql STABLE AS $$
  SELECT user_id, type, variable_name, name, has_access, valid_from FROM cpq.user_access_permission_versions
  WHERE valid_from <= ts AND valid_to > ts
  UNION ALL
  SELECT user_id, type, variable_name, name, has_access, valid_from FROM cpq.user_access_permissions WHERE valid_from <= ts
$$;

-- Reporting views ---------------------------------------------------------------------------

CREATE VIEW cpq.active_users_by_company AS
SELECT company_login, type, type_display, count(*) AS users
FROM cpq.users
WHERE deleted_at IS NULL AND status = 1
GROUP BY company_login, type, type_display;

CREATE VIEW cpq.group_members AS
SELECT g.variable_name AS group_variable_name, g.label AS group_label, g.type AS group_type,
       u.id AS user_id, u.company_login, u.login, u.email, u.status_display
FROM cpq.groups g
JOIN cpq.user_groups ug ON ug.group_variable_name = g.variable_name
JOIN cpq.users u ON u.id = ug.user_id
WHERE u.deleted_at IS NULL;

CREATE VIEW cpq.users_per_group AS
SELECT g.variable_name AS group_variable_name, g.label AS group_label, g.type AS group_type,
       count(u.id) AS users
FROM cpq.groups g
LEFT JOIN cpq.user_groups ug ON ug.group_variable_name = g.variable_name
LEFT JOIN cpq.users u ON u.id = ug.user_id AND u.deleted_at IS NULL
GROUP BY g.variable_name, g.label, g.type;

-- Anyone with an admin flag, or in a group of type Administrator.
CREATE VIEW cpq.administrators AS
SELECT u.id AS user_id, u.company_login, u.login, u.email, u.status_display,
       coalesce(u.is_user_admin_perm_enabled, false) AS is_user_admin,
       coalesce(u.is_access_admin_perm_enabled, false) AS is_access_admin,
       coalesce(u.is_application_admin_perm_enabled, false) AS is_application_admin,
       coalesce(array_agg(g.variable_name ORDER BY g.variable_name) FILTER (WHERE g.type = 'Administrator'), '{}') AS administrator_groups
FROM cpq.users u
LEFT JOIN cpq.user_groups ug ON ug.user_id = u.id
LEFT JOIN cpq.groups g ON g.variable_name = ug.group_variable_name
WHERE u.deleted_at IS NULL
GROUP BY u.id
HAVING coalesce(u.is_user_admin_perm_enabled, false) OR coalesce(u.is_access_admin_perm_enabled, false)
    OR coalesce(u.is_application_admin_perm_enabled, false) OR bool_or(g.type = 'Administrator');

CREATE VIEW cpq.integration_users AS
SELECT id AS user_id, company_login, login, party_id, party_number, oauth_client_id, status_display,
       last_login, date_modified
FROM cpq.users
WHERE is_integration_user AND deleted_at IS NULL;

-- Days since last login; never_logged_in when CPQ has no lastLogin.
CREATE VIEW cpq.user_logins AS
SELECT id AS user_id, company_login, login, email, status_display, last_login,
       last_login IS NULL AS never_logged_in,
       floor(extract(epoch FROM now() - last_login) / 86400)::int AS days_since_login
FROM cpq.users
WHERE deleted_at IS NULL;

CREATE VIEW cpq.recent_changes AS
SELECT c.*, floor(extract(epoch FROM now() - c.detected_at) / 86400)::int AS days_ago
FROM cpq.user_changes c;

ALTER TABLE cpq.sync_runs
  ADD COLUMN users_deleted integer NOT NULL DEFAULT 0,
  ADD COLUMN users_restored integer NOT NULL DEFAULT 0;
