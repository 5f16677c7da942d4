-- cpq-user-sync schema, version 34: the SECURITY DEFINER functions search pg_temp last.
--
-- A search_path that does not name pg_temp has it searched first for tables and types, and any
-- role may create temporary objects. cpq.seals_began_at() (0032) casts to timestamptz with
-- search_path = pg_catalog: a role that may connect (cpq_reader) created a domain
-- pg_temp.timestamptz whose CHECK called its own function, called cpq.seals_began_at(), and that
-- function ran as the owner, the migrating role: it deleted every seal (review FU,
-- test/security/reader-definer-functions.test.ts). cpq.applied_migrations() (0012) names no type,
-- yet is set the same way, so that no later change of its body can open it. Bodies, owners and
-- grants stay.

ALTER FUNCTION cpq.seals_began_at() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION cpq.applied_migrations() SET search_path = pg_catalog, pg_temp;
