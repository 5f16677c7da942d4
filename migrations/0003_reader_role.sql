-- cpq-user-sync schema, version 3: cpq_reader, a role that can read the synced data and
-- nothing else. Grant it to the people and tools that report on it:
--   CREATE ROLE alice LOGIN PASSWORD '...';  GRANT cpq_reader TO alice;
--
-- cpq_reader has USAGE on schema cpq, SELECT on every table and view of cpq except Kysely's
-- migration bookkeeping (cpq.kysely_migration*), and EXECUTE on the as-of functions. It cannot
-- write, create objects or see the migration tables. Tables and views that later migrations
-- create in cpq are readable too (default privileges of the role that runs the migrations).
--
-- Roles belong to the whole Postgres cluster, not to one database: the role is created only
-- when it does not exist yet (another database of the cluster may have created it, even at the
-- same moment). When the role running the migrations may not create roles (no CREATEROLE), the
-- migration warns and grants nothing; a DBA then runs, once:
--   CREATE ROLE cpq_reader NOLOGIN;
-- and, as the role that runs the migrations, in each database:
--   SELECT cpq.grant_reader_access();

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
  GRANT EXECUTE ON FUNCTION cpq.users_as_of(timestamptz), cpq.user_groups_as_of(timestamptz), cpq.user_access_permissions_as_of(timestamptz) TO cpq_reader;
  ALTER DEFAULT PRIVILEGES IN SCHEMA cpq GRANT SELECT ON TABLES TO cpq_reader;
END
$fn$;
REVOKE EXECUTE ON FUNCTION cpq.grant_reader_access() FROM PUBLIC;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cpq_reader') THEN
    BEGIN
      CREATE ROLE cpq_reader NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN
        NULL; -- created meanwhile by the migration of another database
      WHEN insufficient_privilege THEN
        RAISE WARNING 'cpq_reader was not created: % may not create roles. Have a DBA run CREATE ROLE cpq_reader NOLOGIN, then run SELECT cpq.grant_reader_access() as %', current_user, current_user;
        RETURN;
    END;
  END IF;
  PERFORM cpq.grant_reader_access();
END
$$;
