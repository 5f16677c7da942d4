-- cpq-user-sync schema, version 1: current state of users, groups and access permissions,
-- the run record and the incremental cursors. Everything lives in schema cpq.

-- Only when missing: CREATE SCHEMA IF NOT EXISTS needs the database's CREATE privilege even when
-- the schema exists, which a role given a schema a DBA made for it does not have.
DO $$
BEGIN
  IF to_regnamespace('cpq') IS NULL THEN
    CREATE SCHEMA cpq;
  END IF;
END $$;

CREATE TABLE cpq.sync_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'abandoned')),
  -- full, incremental, or mixed when some streams were read in full and others incrementally
  mode text NOT NULL CHECK (mode IN ('full', 'incremental', 'mixed')),
  pages integer NOT NULL DEFAULT 0,
  users_seen integer NOT NULL DEFAULT 0,
  users_inserted integer NOT NULL DEFAULT 0,
  users_updated integer NOT NULL DEFAULT 0,
  users_unchanged integer NOT NULL DEFAULT 0,
  http_requests integer NOT NULL DEFAULT 0,
  http_retries jsonb NOT NULL DEFAULT '{}',
  -- one entry per stream read: {stream, mode, since, pages, received, totalResults, shortRead}
  streams jsonb NOT NULL DEFAULT '[]',
  warnings jsonb NOT NULL DEFAULT '[]',
  error text
);

CREATE INDEX sync_runs_status_idx ON cpq.sync_runs (status, id DESC);

-- Incremental cursor per stream (companies/<login> or integrationUsers): the largest
-- dateModified read, committed in the same transaction as the rows it covers.
CREATE TABLE cpq.sync_state (
  stream text PRIMARY KEY,
  cursor timestamptz,
  last_full_sync_at timestamptz,
  last_run_id bigint REFERENCES cpq.sync_runs (id),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cpq.users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company_login text NOT NULL,
  login text NOT NULL,
  party_id bigint,
  party_number text,
  cpq_id bigint,
  first_name text,
  last_name text,
  email text,
  phone text,
  fax text,
  job_title text,
  approval_delegate text,
  external_sso_id text,
  partner_login text,
  sfdc_org_id text,
  bill_first_name text,
  bill_last_name text,
  bill_company text,
  bill_company2 text,
  bill_address1 text,
  bill_address2 text,
  bill_city text,
  bill_state_province text,
  bill_zip text,
  bill_country text,
  bill_phone text,
  bill_fax text,
  bill_email text,
  ship_first_name text,
  ship_last_name text,
  ship_company text,
  ship_company2 text,
  ship_address1 text,
  ship_address2 text,
  ship_city text,
  ship_state_province text,
  ship_zip text,
  ship_country text,
  ship_phone text,
  ship_fax text,
  ship_email text,
  separate_ship_addr boolean,
  is_notify_email boolean,
  is_notify_fax boolean,
  is_user_admin_perm_enabled boolean,
  is_access_admin_perm_enabled boolean,
  is_application_admin_perm_enabled boolean,
  is_proxy_perm_enabled boolean,
  is_web_services_only boolean,
  is_mobile_enabled boolean,
  type text,
  type_display text,
  language text,
  language_display text,
  currency text,
  currency_display text,
  number_format integer,
  number_format_display text,
  time_zone text,
  time_zone_display text,
  units integer,
  units_display text,
  date_format integer,
  date_format_display text,
  status integer,
  status_display text,
  enabled_for_sso text,
  enabled_for_sso_display text,
  date_added timestamptz,
  date_modified timestamptz,
  last_login timestamptz,
  oauth_client_id text,
  company_name text,
  is_integration_user boolean NOT NULL DEFAULT false,
  -- the record as received (merged when a user came from both feeds), numbers exact
  raw jsonb NOT NULL,
  content_hash text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_synced_at timestamptz NOT NULL DEFAULT now(),
  last_changed_at timestamptz NOT NULL DEFAULT now(),
  first_seen_run_id bigint REFERENCES cpq.sync_runs (id),
  last_changed_run_id bigint REFERENCES cpq.sync_runs (id),
  deleted_at timestamptz,
  CONSTRAINT users_company_login_key UNIQUE (company_login, login)
);

CREATE INDEX users_party_number_idx ON cpq.users (party_number) WHERE party_number IS NOT NULL;
CREATE INDEX users_date_modified_idx ON cpq.users (date_modified);

CREATE TABLE cpq.groups (
  variable_name text PRIMARY KEY,
  label text,
  type text,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_synced_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cpq.user_groups (
  user_id bigint NOT NULL REFERENCES cpq.users (id) ON DELETE CASCADE,
  group_variable_name text NOT NULL REFERENCES cpq.groups (variable_name),
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, group_variable_name)
);

CREATE INDEX user_groups_group_idx ON cpq.user_groups (group_variable_name);

CREATE TABLE cpq.user_access_permissions (
  user_id bigint NOT NULL REFERENCES cpq.users (id) ON DELETE CASCADE,
  type text NOT NULL,
  variable_name text NOT NULL,
  name text,
  has_access boolean,
  PRIMARY KEY (user_id, type, variable_name)
);
