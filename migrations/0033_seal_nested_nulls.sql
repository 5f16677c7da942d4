-- cpq-user-sync schema, version 33: a seal covers the null values inside a row's jsonb columns.
--
-- A seal's lines left null values out so that a column added later (null in older rows) does not
-- change older seals, with jsonb_strip_nulls of the whole row: that function strips a null value
-- at every depth, so a "key": null anywhere inside an ended version's raw (the stored copy of
-- what CPQ sent) or a group change's diff was outside the seal, and adding or removing one left
-- `verify --chain` passing (review FS). A change-log line's diff written as JSON null and as SQL
-- NULL were the same line too. Older seals cannot cover them: their hashes are kept. So seals
-- made from now on are of lines 3 (cpq.run_seals.lines), lines 1 and 2 verify as they did:
--   * cpq.run_lines3_sha256(run): the lines of 0014, but each row's null columns left out at its
--     top level only (cpq.without_null_columns), its jsonb values whole, and a change-log line's
--     diff, when not SQL NULL, wrapped in a one-item array ([null] for a JSON null);
--   * the content hash of lines 3: SHA-256 over the UTF-8 of 'cpq-sync lines 3' (16 bytes), the
--     32 bytes of cpq.run_lines3_sha256, then the company counts' digests as in lines 2. Its
--     input's length is never a multiple of 32, as those of lines 1 and 2 are, so a seal of lines
--     3 set back to 2 or 1 no longer matches its run, whatever the run holds.
-- Numbers, key order and string escapes need nothing: jsonb keeps a number's written scale (1.0
-- and 1 are different text; 1e0 is stored as 1), stores keys sorted and strings unescaped, so two
-- stored values differ exactly when their jsonb text does.

ALTER TABLE cpq.run_seals DROP CONSTRAINT run_seals_lines_check,
  ADD CONSTRAINT run_seals_lines_check CHECK (lines IN (1, 2, 3));

-- An object without its null-valued keys at the top level (a row's null columns); anything else as it is.
CREATE FUNCTION cpq.without_null_columns(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object'
    THEN j - ARRAY(SELECT e.key FROM jsonb_each(j) AS e WHERE jsonb_typeof(e.value) = 'null')
    ELSE j END
$$;

CREATE FUNCTION cpq.run_lines3_sha256(p_run bigint) RETURNS text
LANGUAGE sql STABLE
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
SET search_path = pg_catalog, pg_temp
AS $$
  WITH lines AS (
    SELECT 1 AS part, c.id AS ord,
           json_build_array('user_change', c.id, c.site, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number,
                            c.date_modified, c.detected_at, CASE WHEN c.diff IS NOT NULL THEN jsonb_build_array(cpq.without_personal_fields(c.diff)) END)::text AS line
    FROM cpq.user_change_log c WHERE c.run_id = p_run
    UNION ALL
    SELECT 2, g.id, jsonb_build_array('group_change', cpq.without_null_columns(to_jsonb(g)))::text FROM cpq.group_changes g WHERE g.run_id = p_run
    UNION ALL
    SELECT 3, v.version_id, jsonb_build_array('user_version',
             cpq.without_null_columns(to_jsonb(v) - ('{raw}'::text[] || cpq.personal_columns())) || jsonb_build_object('raw', cpq.without_personal_fields(v.raw)))::text
    FROM cpq.user_versions v WHERE v.ended_by_run_id = p_run
    UNION ALL
    SELECT 4, v.version_id, jsonb_build_array('user_group_version', cpq.without_null_columns(to_jsonb(v)))::text
    FROM cpq.user_group_versions v WHERE v.ended_by_run_id = p_run
    UNION ALL
    SELECT 5, v.version_id, jsonb_build_array('user_access_permission_version', cpq.without_null_columns(to_jsonb(v)))::text
    FROM cpq.user_access_permission_versions v WHERE v.ended_by_run_id = p_run
    UNION ALL
    SELECT 6, v.version_id, jsonb_build_array('group_version', cpq.without_null_columns(to_jsonb(v)))::text
    FROM cpq.group_versions v WHERE v.ended_by_run_id = p_run
  )
  SELECT encode(sha256(coalesce(string_agg(sha256(convert_to(line, 'UTF8')), ''::bytea ORDER BY part, ord), ''::bytea)), 'hex')
  FROM lines
$$;

CREATE OR REPLACE FUNCTION cpq.run_content_sha256(p_run bigint, p_lines smallint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE p_lines WHEN 1 THEN cpq.run_content_sha256(p_run) ELSE encode(sha256(
    CASE p_lines WHEN 2 THEN decode(cpq.run_content_sha256(p_run), 'hex')
                 ELSE convert_to('cpq-sync lines 3', 'UTF8') || decode(cpq.run_lines3_sha256(p_run), 'hex') END
    || coalesce((
      SELECT string_agg(sha256(convert_to(jsonb_build_array('company_counts', jsonb_strip_nulls(to_jsonb(k)))::text, 'UTF8')), ''::bytea
                        ORDER BY k.company_login COLLATE "C")
      FROM cpq.run_company_counts k WHERE k.run_id = p_run), ''::bytea)), 'hex') END
$$;
