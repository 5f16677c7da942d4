-- cpq-user-sync schema, version 8: group definitions (label and type) versioned and logged like
-- users.
--
-- CPQ sends a group's label and type inside every member's record; until now cpq.groups held
-- only the latest, so an as-of answer or a snapshot showed today's labels. Now:
--   * cpq.groups.valid_from: when its current label and type took effect (the effective_at of the
--     run that wrote them);
--   * cpq.group_versions: the versions that ended, with valid_to and the run that ended them
--     (only ended versions are stored, as for users);
--   * cpq.group_history: every version, valid_to null while current;
--   * cpq.groups_as_of(ts): the definitions as the last successful run with effective_at <= ts
--     left them, with the columns of cpq.groups;
--   * cpq.group_changes: one row per group and run whose label or type changed (or that was first
--     seen): diff as {"label": {"old": ..., "new": ...}, "type": {...}}.
-- The existing functions and views keep their signatures and columns.

ALTER TABLE cpq.groups ADD COLUMN valid_from timestamptz;

-- Existing groups: their label and type as of today, valid from the run that first saw them.
-- That run wrote the group's first membership (added_at is the run's effective time); a group
-- without any membership in history falls back to the earliest successful run, then to when the
-- row was written. Earlier labels were never stored, so history starts here.
WITH first_added AS MATERIALIZED (
  SELECT group_variable_name, min(valid_from) AS at FROM cpq.user_group_history GROUP BY group_variable_name
)
UPDATE cpq.groups g
SET valid_from = coalesce(
  (SELECT f.at FROM first_added f WHERE f.group_variable_name = g.variable_name),
  (SELECT min(r.effective_at) FROM cpq.sync_runs r WHERE r.status = 'succeeded'),
  g.first_seen_at);

ALTER TABLE cpq.groups ALTER COLUMN valid_from SET NOT NULL, ALTER COLUMN valid_from SET DEFAULT now();

CREATE TABLE cpq.group_versions (
  LIKE cpq.groups,
  valid_to timestamptz NOT NULL,
  ended_by_run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);
CREATE INDEX group_versions_group_idx ON cpq.group_versions (variable_name, valid_from);

CREATE VIEW cpq.group_history AS
SELECT variable_name, label, type, valid_from, valid_to FROM cpq.group_versions
UNION ALL
SELECT variable_name, label, type, valid_from, NULL::timestamptz FROM cpq.groups;

-- The same columns as cpq.groups, in its order; a migration that adds a column to cpq.groups must
-- add it to cpq.group_versions and replace this function.
CREATE FUNCTION cpq.groups_as_of(ts timestamptz) RETURNS SETOF cpq.groups
LANGUAGE sql STABLE AS $$
  SELECT variable_name, label, type, first_seen_at, last_synced_at, valid_from FROM cpq.group_versions
  WHERE valid_from <= ts AND valid_to > ts
  UNION ALL
  SELECT variable_name, label, type, first_seen_at, last_synced_at, valid_from FROM cpq.groups WHERE valid_from <= ts
$$;

-- The change log of group definitions. Its ids come from the sequence of cpq.user_change_log's,
-- so the two logs share one order: a consumer can poll both with one watermark.
CREATE TABLE cpq.group_changes (
  id bigint PRIMARY KEY,
  run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  change text NOT NULL CHECK (change IN ('insert', 'update')),
  group_variable_name text NOT NULL,
  detected_at timestamptz NOT NULL,
  diff jsonb NOT NULL
);
DO $do$
BEGIN
  EXECUTE format('ALTER TABLE cpq.group_changes ALTER COLUMN id SET DEFAULT nextval(%L)',
                 pg_get_serial_sequence('cpq.user_change_log', 'id'));
END
$do$;
CREATE INDEX group_changes_run_idx ON cpq.group_changes (run_id);
CREATE INDEX group_changes_group_idx ON cpq.group_changes (group_variable_name, id);

-- cpq_reader: the new tables and view (default privileges cover them too, when this role set
-- them), and the new as-of function; grant_reader_access() learns it for databases whose role a
-- DBA creates later.
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
  GRANT EXECUTE ON FUNCTION cpq.users_as_of(timestamptz), cpq.user_groups_as_of(timestamptz), cpq.user_access_permissions_as_of(timestamptz),
    cpq.groups_as_of(timestamptz) TO cpq_reader;
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
