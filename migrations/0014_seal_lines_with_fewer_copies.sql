-- cpq-user-sync schema, version 14: the same seals, each version's line built with fewer copies.
--
-- A seal of a run that ended versions (every run that changed users) built each version's line
-- from to_jsonb of the row and then copied that object once per operator: minus raw, minus the
-- personal columns, plus raw without its personal keys, which cpq.without_personal_fields rebuilt
-- key by key (jsonb_each, then jsonb_object_agg of every other key). Now raw and the personal
-- columns leave in one minus, and raw's personal keys are removed by name with jsonb's own minus.
-- A line is the same jsonb value as before, so its text and every seal are unchanged:
-- test/properties/seal-lines.test.ts holds these functions against 0013's on generated records.

CREATE OR REPLACE FUNCTION cpq.without_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object'
    THEN j - ARRAY(SELECT k FROM jsonb_object_keys(j) AS k WHERE lower(replace(k, '_', '')) = ANY (cpq.personal_field_keys()))
    ELSE j END
$$;

-- As in 0013, but a version's raw and personal columns dropped in one minus.
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
             jsonb_strip_nulls(to_jsonb(v) - ('{raw}'::text[] || cpq.personal_columns()) || jsonb_build_object('raw', cpq.without_personal_fields(v.raw))))::text
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
