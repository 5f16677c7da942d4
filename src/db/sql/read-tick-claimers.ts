import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** A `schedule` process as cpq.scheduled_ticks knows it: the due times of the first and last ticks it claimed. */
export interface TickClaimer {
  /** The claimed_by of its claims: `host:pid:random`, one process's life. */
  worker: string;
  firstDueAt: Date;
  lastDueAt: Date;
}

/**
 * Every worker that claimed a scheduled tick in the last 30 days (claimScheduledTick forgets older
 * ones), with the first and last due times it claimed, the most recent last. A worker's timer fires
 * a tick at its due time and only while the process runs, so it was up from the first to the last.
 */
export async function readTickClaimers(on: Queryable): Promise<TickClaimer[]> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.scheduled_ticks')
      .select((eb) => ['claimed_by', eb.fn.min('due_at').as('first_due_at'), eb.fn.max('due_at').as('last_due_at')])
      .groupBy('claimed_by')
      .orderBy('last_due_at', 'desc')
      .compile(),
  );
  return rows.map((r) => ({ worker: r.claimed_by, firstDueAt: new Date(r.first_due_at), lastDueAt: new Date(r.last_due_at) }));
}
