-- cpq-user-sync schema, version 46: an alert a delivery pass has taken says until when, so that
-- `alerts retry` can send at once the pending alerts waiting for a later attempt without taking
-- those another process is sending.
--
-- `alerts retry` made only the failed alerts pending: an alert the webhook could not take (a 5xx,
-- a timeout) stayed pending until its next attempt, up to ALERT_RETRY_MAX_DELAY later, and retry
-- sent nothing and exited 0 (review JB). Retry now makes those due at once too. A pass takes its
-- alerts by moving next_attempt_at ahead by a lease (src/db/sql/claim-due-alerts.ts), which looks
-- the same as a backoff: claimed_until is that lease, set by the claim and cleared (null) when the
-- outcome is recorded or the alert given back, and retry leaves alone an alert whose lease runs.
--
-- A process of an older release, still running after this migration (a rolling deploy), takes
-- alerts without setting it: an alert it is sending then may be sent twice by a retry meanwhile,
-- which the idempotency key tells the receiver (delivery is at least once).

ALTER TABLE cpq.alert_outbox ADD COLUMN claimed_until timestamptz;
