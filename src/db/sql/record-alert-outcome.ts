import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** What became of one delivery attempt. */
export type AlertOutcome =
  | { status: 'delivered' }
  /** Worth trying again (a timeout, a 5xx): pending, next attempt after `retryInMs`. */
  | { status: 'retry'; error: string; retryInMs: number }
  /** Refused for good (a 4xx): failed, until `alerts retry` queues it again. */
  | { status: 'failed'; error: string };

/** Records an attempt at delivering alert `id`: one more attempt, its time, and the outcome. */
export async function recordAlertOutcome(on: Queryable, id: string, outcome: AlertOutcome): Promise<void> {
  const attempted = { attempts: sql<number>`attempts + 1`, last_attempt_at: sql<Date>`now()` };
  const values =
    outcome.status === 'delivered'
      ? { ...attempted, status: 'delivered' as const, delivered_at: sql<Date>`now()`, last_error: null }
      : outcome.status === 'retry'
        ? { ...attempted, next_attempt_at: sql<Date>`now() + ${outcome.retryInMs} * interval '1 millisecond'`, last_error: outcome.error }
        : { ...attempted, status: 'failed' as const, last_error: outcome.error };
  await runCompiled(on, queryBuilder.updateTable('cpq.alert_outbox').set(values).where('id', '=', id).compile());
}
