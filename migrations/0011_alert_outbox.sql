-- cpq-user-sync schema, version 11: alerts on privileged access, written by the run that saw
-- the change, in its transaction, and delivered after it commits (an outbox).
--
-- A run computes its alerts from its own change-log rows (src/db/sql/insert-alerts.ts): an
-- admin flag gained or lost, membership gained in a watched group, an access permission
-- granted, an integration user created, a user restored. They commit or roll back with the run,
-- so an alert exists exactly when the change it reports does. Delivery (src/alerts/delivery.ts)
-- posts each pending row to the webhook after the commit and records the outcome here: a
-- receiver that is down leaves the row pending, retried with backoff, and never fails a run.
CREATE TABLE cpq.alert_outbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The site the run synced; 'default' until the sites migration gives runs a site.
  site text NOT NULL DEFAULT 'default',
  run_id bigint NOT NULL REFERENCES cpq.sync_runs (id),
  user_id bigint NOT NULL,
  company_login text NOT NULL,
  login text NOT NULL,
  rule text NOT NULL CHECK (rule IN ('admin_flag', 'group_membership', 'access_permission', 'integration_user', 'user_restored')),
  -- What the rule is about: the flag's column, the group's variable name, the permission as
  -- <type>:<variableName>, is_integration_user, deleted_at.
  subject text NOT NULL,
  old_value jsonb,
  new_value jsonb,
  -- The run's effective time: when the change took effect in the database's history.
  detected_at timestamptz NOT NULL,
  -- sha256 of site, run, company, login, rule and subject: the same alert always has the same
  -- key, so a receiver that sees it twice (at-least-once delivery) can tell.
  idempotency_key text NOT NULL UNIQUE,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  delivered_at timestamptz,
  -- One line naming what went wrong (an HTTP status, a timeout); never the URL or the secret.
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX alert_outbox_due_idx ON cpq.alert_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX alert_outbox_run_idx ON cpq.alert_outbox (run_id);
