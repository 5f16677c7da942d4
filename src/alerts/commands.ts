import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { ConfigError, type AlertsConfig } from '../config.js';
import type { AlertRow } from '../db/sql/claim-due-alerts.js';
import { missingSchemaError } from '../db/migrate.js';
import { listAlerts } from '../db/sql/list-alerts.js';
import { isUndefinedTable, jsonForTerminal, rethrowAsSyncError } from '../errors.js';
import { textTable } from '../text-table.js';
import { alertPayload, postAlert, type PostResult } from './delivery.js';

/** ALERT_WEBHOOK_URL and its secret, or a one-line error saying what to set. */
export function requireWebhook(config: AlertsConfig): NonNullable<AlertsConfig['webhook']> {
  if (!config.webhook) throw new ConfigError('ALERT_WEBHOOK_URL is not set: name the webhook that receives alerts (and ALERT_WEBHOOK_SECRET)');
  return config.webhook;
}

/**
 * `cpq-sync alerts test`: one sample alert, signed and shaped like a real one (rule admin_flag,
 * run 0, a fresh idempotency key, the text saying it is a test), posted now; nothing is written
 * to the database.
 */
export async function sendTestAlert(config: AlertsConfig, site: string): Promise<{ key: string; result: PostResult }> {
  const webhook = requireWebhook(config);
  const key = `test-${randomBytes(16).toString('hex')}`;
  const now = new Date();
  const payload = alertPayload({
    id: '0',
    site,
    run_id: '0',
    user_id: '0',
    company_login: '_host',
    login: 'cpq-sync-test-user',
    rule: 'admin_flag',
    subject: 'is_user_admin_perm_enabled',
    old_value: false,
    new_value: true,
    detected_at: now,
    idempotency_key: key,
    status: 'pending',
    attempts: 0,
    next_attempt_at: now,
    last_attempt_at: null,
    delivered_at: null,
    last_error: null,
    created_at: now,
    claimed_until: null,
  });
  payload.text = `Test alert from cpq-sync (nothing changed): ${payload.text}`;
  return { key, result: await postAlert(webhook, JSON.stringify(payload), key) };
}

/**
 * The pending and failed alerts (or those of `statuses`), newest first. Reads only: a database
 * that lacks the outbox (migrated by an older release) is a one-line error saying to migrate; one
 * without the cpq schema, that no run has synced into it (missingSchemaError).
 */
export async function readAlerts(pool: pg.Pool, statuses: readonly AlertRow['status'][], limit: number): Promise<AlertRow[]> {
  try {
    return await listAlerts(pool, statuses, limit);
  } catch (err) {
    if (!isUndefinedTable(err)) rethrowAsSyncError(err);
    throw await missingSchemaError(pool, 'the database has no alert outbox (cpq.alert_outbox) yet: run cpq-sync migrate').catch(rethrowAsSyncError);
  }
}

const when = (at: Date | string | null) =>
  at === null
    ? ''
    : new Date(at)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, '');
const json = (value: unknown) => (value === null || value === undefined ? '' : JSON.stringify(value));

/** The alerts as a table for a terminal, times in UTC. */
export function formatAlerts(alerts: readonly AlertRow[]): string {
  if (alerts.length === 0) return 'No alerts to list.\n';
  const header = ['ID', 'STATUS', 'SITE', 'COMPANY', 'LOGIN', 'RULE', 'SUBJECT', 'OLD', 'NEW', 'RUN', 'ATTEMPTS', 'NEXT ATTEMPT', 'LAST ERROR'];
  const rows = alerts.map((a) => [
    a.id,
    a.status,
    a.site,
    a.company_login ?? '',
    a.login ?? '',
    a.rule,
    a.subject,
    json(a.old_value),
    json(a.new_value),
    a.run_id,
    String(a.attempts),
    a.status === 'pending' ? when(a.next_attempt_at) : '',
    a.last_error ?? '',
  ]);
  return `${textTable(header, rows, new Set([0, 9, 10])).join('\n')}\n`;
}

/** The alerts as JSON for scripts: one object per alert, the outbox's columns in camelCase. */
export function stringifyAlerts(alerts: readonly AlertRow[]): string {
  const rows = alerts.map((a) => ({
    id: a.id,
    status: a.status,
    site: a.site,
    company: a.company_login,
    login: a.login,
    rule: a.rule,
    subject: a.subject,
    old: a.old_value,
    new: a.new_value,
    runId: a.run_id,
    detectedAt: new Date(a.detected_at).toISOString(),
    idempotencyKey: a.idempotency_key,
    attempts: a.attempts,
    nextAttemptAt: a.status === 'pending' ? new Date(a.next_attempt_at).toISOString() : null,
    lastAttemptAt: a.last_attempt_at === null ? null : new Date(a.last_attempt_at).toISOString(),
    lastError: a.last_error,
  }));
  // A login or value from CPQ may hold C1 controls (U+009B is CSI to some terminals) or bidirectional overrides.
  return `${jsonForTerminal(JSON.stringify(rows, null, 2))}\n`;
}
