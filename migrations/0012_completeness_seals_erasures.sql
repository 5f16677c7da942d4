-- cpq-user-sync schema, version 12: proof of completeness, tamper evidence, lawful forgetting.
--
--   * cpq.run_company_counts: per run and company, what CPQ said it holds (totalResults), what the
--     run received, and what the database holds active after the merge, each with a checksum of
--     the logins (cpq.login_checksum below; src/sync/login-checksum.ts computes the same in the
--     sync, and a property test holds the two equal).
--   * cpq.run_seals: per successful run, a SHA-256 of the audit content it committed
--     (cpq.run_content_sha256), chained to the previous sealed run of its site.
--   * personal fields: the list (cpq.personal_field_keys), the functions that redact them in a
--     row's raw record or a change's diff, and that leave them out of what a seal covers.
--   * cpq.retention_state: how far HISTORY_RETENTION has redacted; cpq.erasures: who forgot
--     which user, when and why (`cpq-sync forget`).
--
-- Every table carries the site (0010) its rows belong to; a site's runs are chained on their own.

-- Login checksum ------------------------------------------------------------------------------

-- The first 8 bytes of MD5(UTF-8 login), as a signed int8 (two's complement). MD5 rather than
-- SHA-256: this is a checksum against loss, not a seal, and Postgres computes it in a third of the
-- time (its hex output needs no encode()).
CREATE FUNCTION cpq.login_hash(login text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT ('x' || left(md5(convert_to(login, 'UTF8')), 16))::bit(64)::bigint
$$;

-- A sum of login_hash values, reduced modulo 2^64, as 16 lower-case hex digits: an
-- order-independent checksum of a multiset of logins (sum(cpq.login_hash(login)) of no rows: null,
-- written 0000000000000000).
CREATE FUNCTION cpq.login_checksum(total numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT lpad(to_hex((CASE WHEN m >= 9223372036854775808 THEN m - 18446744073709551616 ELSE m END)::bigint), 16, '0')
  FROM (SELECT mod(mod(coalesce(total, 0), 18446744073709551616) + 18446744073709551616, 18446744073709551616) AS m) AS reduced
$$;

CREATE TABLE cpq.run_company_counts (
  run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  company_login text NOT NULL,
  site text NOT NULL,
  -- how the company was read: full (every user) or incremental (users changed since the cursor)
  mode text NOT NULL CHECK (mode IN ('full', 'incremental')),
  -- CPQ's totalResults on the read's first page (of the filtered collection when incremental);
  -- null when CPQ did not send it (zip exports)
  total_results bigint,
  -- records received and the checksum of their logins (a login received twice counts twice)
  received bigint NOT NULL,
  received_checksum text NOT NULL,
  -- users of the company not deleted after the merge, and the checksum of their logins
  active_rows bigint NOT NULL,
  active_checksum text NOT NULL,
  -- where active_* come from: 'table', counted (full reads, and a company's first record);
  -- 'change_log', the company's previous record carried forward by this run's inserts, restores
  -- and deletions (incremental reads: counting a large company costs a scan of its users)
  active_source text NOT NULL CHECK (active_source IN ('table', 'change_log')),
  PRIMARY KEY (run_id, company_login)
);

-- Personal fields ------------------------------------------------------------------------------

-- The personal fields of a user record (names, e-mail addresses, phone and fax numbers, postal
-- addresses, job title, single sign-on identity), as lower-case names without underscores, so that one list matches the
-- CPQ spelling in raw (firstName, BillAddress1), the column name (first_name) and a diff's key.
-- src/normalize/personal-fields.ts lists the same fields; a test holds the two equal.
-- Changing this list changes what older seals covered: a migration that does must reseal.
CREATE FUNCTION cpq.personal_field_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ARRAY[
    'firstname', 'lastname', 'email', 'phone', 'fax', 'jobtitle', 'externalssoid',
    'billfirstname', 'billlastname', 'billcompany', 'billcompany2', 'billaddress1', 'billaddress2', 'billcity',
    'billstateprovince', 'billzip', 'billcountry', 'billphone', 'billfax', 'billemail',
    'shipfirstname', 'shiplastname', 'shipcompany', 'shipcompany2', 'shipaddress1', 'shipaddress2', 'shipcity',
    'shipstateprovince', 'shipzip', 'shipcountry', 'shipphone', 'shipfax', 'shipemail'
  ]
$$;

CREATE FUNCTION cpq.is_personal_key(key text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT lower(replace(key, '_', '')) = ANY (cpq.personal_field_keys())
$$;

-- An object without its personal keys (top level); anything else as it is. What a seal covers.
CREATE FUNCTION cpq.without_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object'
    THEN coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(j) e WHERE NOT cpq.is_personal_key(e.key)), '{}'::jsonb)
    ELSE j END
$$;

-- An object whose personal keys hold "[redacted]" instead of their value (null stays null); in a
-- change's diff ({"email": {"old": ..., "new": ...}}) the old and new values are redacted instead,
-- so the diff keeps its shape and still says which field changed.
CREATE FUNCTION cpq.redact_personal_fields(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object' THEN coalesce((
    SELECT jsonb_object_agg(e.key, CASE
      WHEN NOT cpq.is_personal_key(e.key) OR e.value = 'null'::jsonb THEN e.value
      WHEN jsonb_typeof(e.value) = 'object' AND (e.value ? 'old' OR e.value ? 'new') THEN
        jsonb_build_object(
          'old', CASE WHEN coalesce(e.value -> 'old', 'null'::jsonb) = 'null'::jsonb THEN 'null'::jsonb ELSE '"[redacted]"'::jsonb END,
          'new', CASE WHEN coalesce(e.value -> 'new', 'null'::jsonb) = 'null'::jsonb THEN 'null'::jsonb ELSE '"[redacted]"'::jsonb END)
      ELSE '"[redacted]"'::jsonb END)
    FROM jsonb_each(j) e), '{}'::jsonb)
  ELSE j END
$$;

-- Seals ------------------------------------------------------------------------------------------

-- The SHA-256 (64 hex digits) of what a run committed to the audit record, redaction-stable:
--   one line per row, in this order:
--     1. cpq.user_change_log rows with run_id = the run, by id: the json text (json_build_array)
--        of ['user_change', id, site, run_id, change, user_id, company_login, login, party_number,
--        date_modified, detected_at, diff without personal keys (cpq.without_personal_fields)],
--        times in UTC as json writes them (2025-03-01T02:00:00.123+00:00);
--     2. cpq.group_changes rows with run_id = the run, by id;
--     3. cpq.user_versions, 4. cpq.user_group_versions, 5. cpq.user_access_permission_versions,
--        6. cpq.group_versions rows with ended_by_run_id = the run, each by version_id;
--   lines 2-6 are the jsonb text of [tag, row], where tag names the table ('group_change',
--   'user_version', 'user_group_version', 'user_access_permission_version', 'group_version') and
--   row is to_jsonb of the row (times in UTC) without null values and without personal fields
--   (columns, and keys of raw);
--   the result is SHA-256 of the concatenated SHA-256 digests (32 bytes each) of the lines' UTF-8.
-- Personal fields are left out so that redaction (HISTORY_RETENTION, forget) keeps every seal
-- valid; null values so that a column added later (null in old rows) does not change old seals.
-- The change log, a row per changed user, is written out column by column: to_jsonb of every row
-- of a first load of a million users would cost seconds.
CREATE FUNCTION cpq.run_content_sha256(p_run bigint) RETURNS text
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
             jsonb_strip_nulls(cpq.without_personal_fields(to_jsonb(v) - 'raw') || jsonb_build_object('raw', cpq.without_personal_fields(v.raw))))::text
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

-- A run's link in its site's chain: SHA-256 (hex) of the UTF-8 text
-- "cpq-sync seal v1\n<site>\n<run id>\n<previous chain hash, or empty for the first>\n<content hash>".
CREATE FUNCTION cpq.run_chain_sha256(p_site text, p_run bigint, p_previous text, p_content text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(concat_ws(E'\n', 'cpq-sync seal v1', p_site, p_run::text, coalesce(p_previous, ''), p_content), 'UTF8')), 'hex')
$$;

CREATE TABLE cpq.run_seals (
  run_id bigint PRIMARY KEY REFERENCES cpq.sync_runs (id),
  site text NOT NULL,
  -- the previous sealed run of the site; null for the first
  previous_run_id bigint REFERENCES cpq.run_seals (run_id),
  content_sha256 text NOT NULL,
  chain_sha256 text NOT NULL,
  sealed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_seals_site_idx ON cpq.run_seals (site, run_id);

-- A seal reads the versions a run ended.
CREATE INDEX user_versions_ended_by_run_idx ON cpq.user_versions (ended_by_run_id);
CREATE INDEX user_group_versions_ended_by_run_idx ON cpq.user_group_versions (ended_by_run_id);
CREATE INDEX user_access_permission_versions_ended_by_run_idx ON cpq.user_access_permission_versions (ended_by_run_id);
CREATE INDEX group_versions_ended_by_run_idx ON cpq.group_versions (ended_by_run_id);

-- Retention and erasure ----------------------------------------------------------------------------

-- Each run redacts what expired since the last one: versions ended, users deleted and changes
-- logged before the cutoff (now - HISTORY_RETENTION). redacted_before: the cutoff already done.
CREATE TABLE cpq.retention_state (
  site text PRIMARY KEY,
  redacted_before timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The expired rows are found by these times.
CREATE INDEX user_versions_valid_to_idx ON cpq.user_versions (site, valid_to);
CREATE INDEX users_deleted_at_idx ON cpq.users (site, deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE cpq.erasures (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  site text NOT NULL,
  company_login text NOT NULL,
  login text NOT NULL,
  user_id bigint NOT NULL,
  reason text NOT NULL CHECK (reason <> ''),
  -- who asked (the --by option, else the operating-system user) and the database role that ran it
  requested_by text NOT NULL,
  database_role text NOT NULL DEFAULT session_user,
  erased_at timestamptz NOT NULL DEFAULT now(),
  -- rows redacted, by table
  rows_redacted jsonb NOT NULL
);
CREATE INDEX erasures_user_idx ON cpq.erasures (site, company_login, login);

-- The migrations applied, for the commands that only read (snapshot, changes, verify): they never
-- migrate, so they work with cpq_reader, which may not read the migration table itself; each asks
-- this instead and names an older schema in one line. SECURITY DEFINER: it runs as its owner, the
-- migrating role, and shows only the names.
CREATE FUNCTION cpq.applied_migrations() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT name FROM cpq.kysely_migration ORDER BY name
$$;

-- cpq_reader reads these tables too (0003's default privileges cover tables created by the
-- migrating role; granted here as well for a role whose defaults differ).
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'cpq_reader') THEN
    GRANT SELECT ON cpq.run_company_counts, cpq.run_seals, cpq.retention_state, cpq.erasures TO cpq_reader;
  END IF;
END
$$;
