-- cpq-user-sync schema, version 13: the personal-field functions of 0012, made cheap per row.
--
-- cpq.is_personal_key was STRICT, which keeps Postgres from inlining it: every key of every row
-- that a seal or a redaction reads went through a function call (about 0.7 ms per changed user's
-- version, 60% of an incremental run's seal). It is no longer strict, and the two functions that
-- test every key spell its expression out instead of calling it. Same results: a null key does not
-- occur in jsonb.
--
-- A seal drops a version's personal columns by name (cpq.personal_columns(), jsonb's own minus)
-- instead of testing each of its hundred keys: the same object, so every seal stays valid.

CREATE OR REPLACE FUNCTION cpq.is_personal_key(key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT lower(replace(key, '_', '')) = ANY (cpq.personal_field_keys())
$$;

CREATE OR REPLACE FUNCTION cpq.without_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object'
    THEN coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(j) e
                   WHERE lower(replace(e.key, '_', '')) <> ALL (cpq.personal_field_keys())), '{}'::jsonb)
    ELSE j END
$$;

CREATE OR REPLACE FUNCTION cpq.redact_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object' THEN coalesce((
    SELECT jsonb_object_agg(e.key, CASE
      WHEN lower(replace(e.key, '_', '')) <> ALL (cpq.personal_field_keys()) OR e.value = 'null'::jsonb THEN e.value
      WHEN jsonb_typeof(e.value) = 'object' AND (e.value ? 'old' OR e.value ? 'new') THEN
        jsonb_build_object(
          'old', CASE WHEN coalesce(e.value -> 'old', 'null'::jsonb) = 'null'::jsonb THEN 'null'::jsonb ELSE '"[redacted]"'::jsonb END,
          'new', CASE WHEN coalesce(e.value -> 'new', 'null'::jsonb) = 'null'::jsonb THEN 'null'::jsonb ELSE '"[redacted]"'::jsonb END)
      ELSE '"[redacted]"'::jsonb END)
    FROM jsonb_each(j) e), '{}'::jsonb)
  ELSE j END
$$;

-- The columns of cpq.users and cpq.user_versions that hold personal fields: the snake_case of
-- cpq.personal_field_keys()' fields (src/normalize/personal-fields.ts: PERSONAL_COLUMNS; a test
-- holds the two equal).
CREATE FUNCTION cpq.personal_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ARRAY[
    'first_name', 'last_name', 'email', 'phone', 'fax', 'job_title', 'external_sso_id',
    'bill_first_name', 'bill_last_name', 'bill_company', 'bill_company2', 'bill_address1', 'bill_address2', 'bill_city',
    'bill_state_province', 'bill_zip', 'bill_country', 'bill_phone', 'bill_fax', 'bill_email',
    'ship_first_name', 'ship_last_name', 'ship_company', 'ship_company2', 'ship_address1', 'ship_address2', 'ship_city',
    'ship_state_province', 'ship_zip', 'ship_country', 'ship_phone', 'ship_fax', 'ship_email'
  ]
$$;

-- As in 0012, but a version's personal columns dropped by name.
CREATE OR REPLACE FUNCTION cpq.run_content_sha256(p_run bigint) RETURNS text
LANGUAGE sql STABLE
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $$
  WITH lines AS (
    SELECT 1 AS part, c.id AS ord,
           json_build_array('user_change', c.id, c.site, c.run_id, c.change, c.user_id, c.company_login, c.login, c.party_number,
                            c.date_modified, c.detected_at, CASE WHEN c.diff IS NOT NULL THEN cpq.without_personal_fields(c.diff) END)::text AS line
    FROM cpq.user_change_log c WHERE c.run_id = p_run
    UNION ALL
    SELECT 2, g.id, jsonb_build_array('group_change', jsonb_strip_nulls(to_jsonb(g)))::text FROM cpq.group_changes g WHERE g.run_id = p_run
    UNION ALL
    SELECT 3, v.version_id, jsonb_build_array('user_version',
             jsonb_strip_nulls(to_jsonb(v) - 'raw' - cpq.personal_columns() || jsonb_build_object('raw', cpq.without_personal_fields(v.raw))))::text
    FROM cpq.user_versions v WHERE v.ended_by_run_id = p_run
    UNION ALL
    SELECT 4, v.version_id, jsonb_build_array('user_group_version', jsonb_strip_nulls(to_jsonb(v)))::text
    FROM cpq.user_group_versions v WHERE v.ended_by_run_id = p_run
    UNION ALL
    SELECT 5, v.version_id, jsonb_build_array('user_access_permission_version', jsonb_strip_nulls(to_jsonb(v)))::text
    FROM cpq.user_access_permission_versions v WHERE v.ended_by_run_id = p_run
    UNION ALL
    SELECT 6, v.version_id, jsonb_build_array('group_version', jsonb_strip_nulls(to_jsonb(v)))::text
    FROM cpq.group_versions v WHERE v.ended_by_run_id = p_run
  )
  SELECT encode(sha256(coalesce(string_agg(sha256(convert_to(line, 'UTF8')), ''::bytea ORDER BY part, ord), ''::bytea)), 'hex')
  FROM lines
$$;

