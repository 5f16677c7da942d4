import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * Makes every alert not delivered due now (`alerts retry`, after the receiver or its URL was
 * fixed): the failed ones pending again, and the pending ones waiting for a later attempt (the
 * webhook could not take them) due at once, rather than up to ALERT_RETRY_MAX_DELAY later. Left
 * alone: the suppressed (never sent), and those a delivery pass holds (claimed_until not yet
 * passed), which another process is sending. One statement, so a retry stopped during it changed
 * none; FOR UPDATE, so an alert claimed meanwhile is seen leased and skipped. Returns how many of
 * each it made due.
 */
export async function requeueUndeliveredAlerts(on: Queryable): Promise<{ failed: number; waiting: number }> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .updateTable('cpq.alert_outbox')
      .from(
        queryBuilder
          .selectFrom('cpq.alert_outbox')
          .select(['id', 'status as was'])
          .where((eb) =>
            eb.or([
              eb('status', '=', 'failed'),
              eb.and([
                eb('status', '=', 'pending'),
                eb('next_attempt_at', '>', sql<Date>`now()`),
                eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', sql<Date>`now()`)]),
              ]),
            ]),
          )
          .forUpdate()
          .as('undelivered'),
      )
      .set({ status: 'pending', next_attempt_at: sql<Date>`now()` })
      .whereRef('cpq.alert_outbox.id', '=', 'undelivered.id')
      .returning('undelivered.was')
      .compile(),
  );
  return { failed: rows.filter((r) => r.was === 'failed').length, waiting: rows.filter((r) => r.was === 'pending').length };
}
