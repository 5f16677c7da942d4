import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import type { AlertRow } from './claim-due-alerts.js';

/** How many alerts the outbox holds in each status (every status present, 0 when none). */
export async function countAlerts(on: Queryable): Promise<Record<AlertRow['status'], number>> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.alert_outbox')
      .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
      .groupBy('status')
      .compile(),
  );
  const counts: Record<AlertRow['status'], number> = { pending: 0, delivered: 0, failed: 0, suppressed: 0 };
  for (const r of rows) counts[r.status] = Number(r.n);
  return counts;
}
