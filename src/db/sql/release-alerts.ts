import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * Gives back alerts taken by claimDueAlerts but not attempted (the receiver failed on an earlier
 * one of the batch): still pending, due again in `inMs`, their attempts unchanged, no longer
 * leased (so `alerts retry` may make them due at once).
 */
export async function releaseAlerts(on: Queryable, ids: readonly string[], inMs: number): Promise<void> {
  if (ids.length === 0) return;
  await runCompiled(
    on,
    queryBuilder
      .updateTable('cpq.alert_outbox')
      .set({ next_attempt_at: sql<Date>`now() + ${inMs} * interval '1 millisecond'`, claimed_until: null })
      .where('id', 'in', [...ids])
      .where('status', '=', 'pending')
      .compile(),
  );
}
