import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** Makes every failed alert pending and due now (after the receiver or its URL was fixed); returns how many. */
export async function requeueFailedAlerts(on: Queryable): Promise<number> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .updateTable('cpq.alert_outbox')
      .set({ status: 'pending', next_attempt_at: sql<Date>`now()` })
      .where('status', '=', 'failed')
      .returning('id')
      .compile(),
  );
  return rows.length;
}
