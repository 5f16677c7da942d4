-- cpq-user-sync schema, version 45: a run's alerts are capped (ALERT_MAX_PER_RUN); those past the
-- cap are kept, `suppressed`, behind one summary alert about the run (rule alert_flood).
--
-- A run wrote one alert per user, rule and subject without bound, and delivery sends them one POST
-- at a time, oldest first: a site that flipped every user's admin flags and added many watched
-- groups made tens of thousands of alerts in one run, and an alert raised after them waited hours
-- (review IA). Now a run whose alerts number more than the cap writes, in its one statement
-- (src/db/sql/insert-alerts.ts), the summary first, then the first alerts up to the cap as
-- `pending`, and the rest as `suppressed`: kept, so the record stays complete, never sent, not
-- made pending again by `alerts retry` (which takes the failed ones only).
--
-- The summary is about a run, not a user: it has no user_id, company_login or login (null), and
-- every other alert has all three, as before.

ALTER TABLE cpq.alert_outbox
  DROP CONSTRAINT alert_outbox_rule_check,
  DROP CONSTRAINT alert_outbox_status_check,
  ALTER COLUMN user_id DROP NOT NULL,
  ALTER COLUMN company_login DROP NOT NULL,
  ALTER COLUMN login DROP NOT NULL,
  ADD CONSTRAINT alert_outbox_rule_check
    CHECK (rule IN ('admin_flag', 'group_membership', 'access_permission', 'integration_user', 'user_restored', 'alert_flood')),
  ADD CONSTRAINT alert_outbox_status_check CHECK (status IN ('pending', 'delivered', 'failed', 'suppressed')),
  ADD CONSTRAINT alert_outbox_user_check CHECK (
    CASE WHEN rule = 'alert_flood' THEN user_id IS NULL AND company_login IS NULL AND login IS NULL
         ELSE user_id IS NOT NULL AND company_login IS NOT NULL AND login IS NOT NULL END);
