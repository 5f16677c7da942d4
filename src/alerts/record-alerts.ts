import type pg from 'pg';
import type { AlertRuleSettings, AlertsConfig } from '../config.js';
import { insertAlerts } from '../db/sql/insert-alerts.js';
import type { Logger } from '../logger.js';

/**
 * Writes the alerts of run `runId` to the outbox, inside the run's transaction, from what the
 * run changed, by `rules` (its site's: SiteConfig.alerts; see insertAlerts for the rules). Nothing when no webhook is configured: an alert
 * nobody can receive is not written.
 */
export async function recordAlerts(
  client: pg.PoolClient,
  runId: string,
  config: AlertsConfig,
  rules: AlertRuleSettings,
  log: Logger,
  hostAliases: readonly string[] = [],
): Promise<number> {
  if (!config.webhook) return 0;
  const { written, suppressed } = await insertAlerts(client, runId, rules, config.maxPerRun, hostAliases);
  if (written > 0) log.info({ alerts: written }, 'alerts on privileged access written to the outbox');
  if (suppressed > 0)
    log.warn(
      { suppressed, maxPerRun: config.maxPerRun },
      `more alerts than ALERT_MAX_PER_RUN (${config.maxPerRun}): one summary alert and the first ${config.maxPerRun} are sent, the other ${suppressed} are kept unsent (\`cpq-sync alerts list --status suppressed\`)`,
    );
  return written;
}
