-- cpq-user-sync schema, version 40: a key is personal by one rule, in a database of any locale.
--
-- Which keys of raw and of a change's diff are personal (redacted by HISTORY_RETENTION and
-- `cpq-sync forget`, left out of seals) was decided with lower(), which follows the database's
-- locale. In a Turkish one (tr_TR, ICU's tr-TR; Azeri too) lower('I') is 'ı', so externalSsoId,
-- the single sign-on identity (often an e-mail address), was no personal key there: forget and
-- the retention left it in raw, and seals covered it. In a libc UTF-8 locale a custom field spelled
-- with a lookalike letter ("EMAİL") was personal, and not in a database of the C locale, so a dump
-- restored into a database of another locale failed `verify --chain`. Keys are now folded in ASCII
-- only (lower under the C collation), as the custom-field keys are since 0039
-- (src/cpq/user-fields.ts' fieldNameKey):
--   * cpq.is_personal_key and cpq.redact_personal_fields are replaced around the new fold;
--   * cpq.without_personal_keys leaves out the keys cpq.is_personal_key names: the seals of lines
--     4, made from now on, leave out exactly what redaction changes;
--   * cpq.without_personal_fields keeps the old fold: seals of lines 1 to 3 covered what it left
--     in, and verify as they did. Outside Turkish and Azeri locales the new fold names no key the
--     old one did not, so redaction changes nothing those seals covered. In such a locale it now
--     redacts raw's externalSsoId (and any personal key spelled with an I), which those seals
--     covered: a run sealed before this migration whose versions are redacted since no longer
--     matches its seal (the README's Upgrades says so).
-- The lines of 4 are those of 3 (cpq.run_lines3_sha256, 0033) with cpq.without_personal_keys;
-- their content hash starts with the UTF-8 of 'cpq-sync lines 4' (16 bytes), so a seal of lines 4
-- set back to 3 no longer matches its run.

ALTER TABLE cpq.run_seals DROP CONSTRAINT run_seals_lines_check,
  ADD CONSTRAINT run_seals_lines_check CHECK (lines IN (1, 2, 3, 4));

-- Called for every key of every row redacted or sealed: no SET clause (it would keep Postgres from
-- inlining it), every function and type named by its schema instead (0020).
CREATE OR REPLACE FUNCTION cpq.is_personal_key(key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT pg_catalog.lower(pg_catalog.replace(key, '_'::pg_catalog.text, ''::pg_catalog.text) COLLATE pg_catalog."C") = ANY (cpq.personal_field_keys())
$$;

CREATE OR REPLACE FUNCTION cpq.redact_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(j) = 'object'::pg_catalog.text THEN coalesce((
    SELECT pg_catalog.jsonb_object_agg(e.key, CASE
      WHEN NOT cpq.is_personal_key(e.key) OR e.value = 'null'::pg_catalog.jsonb THEN e.value
      WHEN pg_catalog.jsonb_typeof(e.value) = 'object'::pg_catalog.text AND (e.value ? 'old'::pg_catalog.text OR e.value ? 'new'::pg_catalog.text) THEN
        pg_catalog.jsonb_build_object(
          'old'::pg_catalog.text, CASE WHEN coalesce(e.value -> 'old'::pg_catalog.text, 'null'::pg_catalog.jsonb) = 'null'::pg_catalog.jsonb
                                       THEN 'null'::pg_catalog.jsonb ELSE '"[redacted]"'::pg_catalog.jsonb END,
          'new'::pg_catalog.text, CASE WHEN coalesce(e.value -> 'new'::pg_catalog.text, 'null'::pg_catalog.jsonb) = 'null'::pg_catalog.jsonb
                                       THEN 'null'::pg_catalog.jsonb ELSE '"[redacted]"'::pg_catalog.jsonb END)
      ELSE '"[redacted]"'::pg_catalog.jsonb END)
    FROM pg_catalog.jsonb_each(j) e), '{}'::pg_catalog.jsonb)
  ELSE j END
$$;

CREATE OR REPLACE FUNCTION cpq.without_personal_keys(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(j) = 'object'::pg_catalog.text
    THEN j - ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(j) AS k WHERE cpq.is_personal_key(k))
    ELSE j END
$$;

COMMENT ON FUNCTION cpq.without_personal_fields(jsonb) IS
  'The personal keys by the database''s locale, as seals of lines 1 to 3 left them out: those seals alone use it (0040).';

CREATE OR REPLACE FUNCTION cpq.run_lines4_sha256(p_run bigint) RETURNS text
LANGUAGE sql STABLE
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
SET search_path = pg_catalog, pg_temp
AS $$
  WITH lines AS (
    SELECT 1 AS part, c.id AS ord,
           json_build_array('user_change', c.id, c.site, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number,
                            c.date_modified, c.detected_at, CASE WHEN c.diff IS NOT NULL THEN jsonb_build_array(cpq.without_personal_keys(c.diff)) END)::text AS line
    FROM cpq.user_change_log c WHERE c.run_id = p_run
    UNION ALL
    SELECT 2, g.id, jsonb_build_array('group_change', cpq.without_null_columns(to_jsonb(g)))::text FROM cpq.group_changes g WHERE g.run_id = p_run
    UNION ALL
    SELECT 3, v.version_id, jsonb_build_array('user_version',
             cpq.without_null_columns(to_jsonb(v) - ('{raw}'::text[] || cpq.personal_columns())) || jsonb_build_object('raw', cpq.without_personal_keys(v.raw)))::text
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
                 WHEN 3 THEN convert_to('cpq-sync lines 3', 'UTF8') || decode(cpq.run_lines3_sha256(p_run), 'hex')
                 ELSE convert_to('cpq-sync lines 4', 'UTF8') || decode(cpq.run_lines4_sha256(p_run), 'hex') END
    || coalesce((
      SELECT string_agg(sha256(convert_to(jsonb_build_array('company_counts', jsonb_strip_nulls(to_jsonb(k)))::text, 'UTF8')), ''::bytea
                        ORDER BY k.company_login COLLATE "C")
      FROM cpq.run_company_counts k WHERE k.run_id = p_run), ''::bytea)), 'hex') END
$$;
