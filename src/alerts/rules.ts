import type pg from 'pg';
import type { AlertRuleSettings, AlertsConfig } from '../config.js';
import { insertAlerts } from '../db/sql/insert-alerts.js';
import type { Logger } from '../logger.js';

/**
 * The rules for one site: the environment's (ALERT_RULES, ALERT_GROUPS), each setting replaced
 * by the site's own where it gives one. Sites have no alert settings of their own yet; this is
 * where they will plug in.
 */
export function alertRulesFor(config: AlertsConfig, site?: { alerts?: Partial<AlertRuleSettings> }): AlertRuleSettings {
  return { ...config.rules, ...site?.alerts };
}

/**
 * Writes the alerts of run `runId` to the outbox, inside the run's transaction, from what the
 * run changed (see insertAlerts for the rules). Nothing when no webhook is configured: an alert
 * nobody can receive is not written.
 */
export async function recordAlerts(client: pg.PoolClient, runId: string, config: AlertsConfig, log: Logger): Promise<number> {
  if (!config.webhook) return 0;
  const written = await insertAlerts(client, runId, alertRulesFor(config));
  if (written > 0) log.info({ alerts: written }, 'alerts on privileged access written to the outbox');
  return written;
}
