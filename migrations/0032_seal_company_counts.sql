-- cpq-user-sync schema, version 32: a seal covers the run's proof of completeness
-- (cpq.run_company_counts) too, and any role may read when seals began.
--
-- A seal covered the change log and the versions a run ended, not the counts the same
-- transaction records just before it: an UPDATE of cpq.run_company_counts (received_checksum set
-- to active_checksum) turned a full read whose logins differed into one whose logins match in
-- `verify`, and `verify --chain` still passed (review FQ). Older seals cannot cover them: their
-- hashes are kept. So a seal now says which lines it covers (cpq.run_seals.lines): 1, the lines of
-- 0012 to 0014, for every seal made before this migration, which verify as they did; 2, for the
-- seals made from now on: SHA-256 over the 32 bytes of the run's lines-1 content hash followed by
-- the SHA-256 of each of its cpq.run_company_counts rows, by company_login in byte order, each the
-- UTF-8 of the jsonb text of ["company_counts", row] without null values (as the other tables'
-- lines, so that a column added later does not change older seals). The two hashes of one run
-- always differ, so a seal of lines 2 set back to 1 no longer matches its run.
--
-- cpq.seals_began_at(): when 0012 was applied. A run that succeeded after it was run by a release
-- that seals, so it has a seal even before its site's first (a failed run whose status was set to
-- succeeded afterwards does not); `verify --chain` asks it, with cpq_reader too, which may not read
-- Kysely's table itself (as cpq.applied_migrations() of 0012).

ALTER TABLE cpq.run_seals ADD COLUMN lines smallint NOT NULL DEFAULT 1 CONSTRAINT run_seals_lines_check CHECK (lines IN (1, 2));

CREATE FUNCTION cpq.run_content_sha256(p_run bigint, p_lines smallint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE p_lines WHEN 1 THEN cpq.run_content_sha256(p_run) ELSE encode(sha256(
    decode(cpq.run_content_sha256(p_run), 'hex') || coalesce((
      SELECT string_agg(sha256(convert_to(jsonb_build_array('company_counts', jsonb_strip_nulls(to_jsonb(k)))::text, 'UTF8')), ''::bytea
                        ORDER BY k.company_login COLLATE "C")
      FROM cpq.run_company_counts k WHERE k.run_id = p_run), ''::bytea)), 'hex') END
$$;

CREATE FUNCTION cpq.seals_began_at() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT "timestamp"::timestamptz FROM cpq.kysely_migration WHERE name = '0012_completeness_seals_erasures'
$$;
