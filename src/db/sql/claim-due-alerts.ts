import { sql, type Selectable } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import type { AlertOutboxTable } from '../schema.js';

export type AlertRow = Selectable<AlertOutboxTable>;

/**
 * Takes up to `limit` pending alerts that are due, oldest first, and moves their next attempt
 * `leaseMs` ahead, so that another process delivering at the same time skips them (SKIP LOCKED
 * while this statement runs, the lease after). A process that dies with alerts taken leaves
 * them pending: they are due again when the lease ends. claimed_until holds the lease too, so that
 * `alerts retry`, which makes the alerts waiting for a later attempt due at once, leaves these alone.
 */
export async function claimDueAlerts(on: Queryable, limit: number, leaseMs: number): Promise<AlertRow[]> {
  const leaseEnd = sql<Date>`now() + ${leaseMs} * interval '1 millisecond'`;
  const rows = await runCompiled(
    on,
    queryBuilder
      .updateTable('cpq.alert_outbox')
      .set({ next_attempt_at: leaseEnd, claimed_until: leaseEnd })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('cpq.alert_outbox')
          .select('id')
          .where('status', '=', 'pending')
          .where('next_attempt_at', '<=', sql<Date>`now()`)
          .orderBy('next_attempt_at')
          .orderBy('id')
          .limit(limit)
          .forUpdate()
          .skipLocked(),
      )
      .returningAll()
      .compile(),
  );
  return rows.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
}
