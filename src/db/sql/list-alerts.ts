import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import type { AlertRow } from './claim-due-alerts.js';

/** The alerts in `statuses`, newest first, at most `limit`. */
export async function listAlerts(on: Queryable, statuses: readonly AlertRow['status'][], limit: number): Promise<AlertRow[]> {
  return runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.alert_outbox')
      .selectAll()
      .where('status', 'in', [...statuses])
      .orderBy('id', 'desc')
      .limit(limit)
      .compile(),
  );
}
