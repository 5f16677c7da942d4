import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** What became of one delivery attempt. `bare`: the error without the receiver's words (its HTTP status alone). */
export type AlertOutcome =
  | { status: 'delivered' }
  /** Worth trying again (a timeout, a 5xx): pending, next attempt after `retryInMs`. */
  | { status: 'retry'; error: string; bare: string; retryInMs: number }
  /** Refused for good (a 4xx): failed, until `alerts retry` queues it again. */
  | { status: 'failed'; error: string; bare: string };

/**
 * Records an attempt at delivering alert `alert`: one more attempt, its time, and the outcome.
 *
 * A refusal's words (what the receiver answered) may quote the user, and `forget` scrubs them from
 * what is stored: an attempt that was in flight as the user was forgotten wrote them back after it
 * (review HR). So the outcome is written holding the user's row (which forget holds until it
 * commits: an erasure in progress is waited for, one that starts after it finds the words stored and
 * scrubs them), and an alert about a user erased since the alert was made keeps the bare error.
 */
export async function recordAlertOutcome(pool: pg.Pool, alert: { id: string; user_id: string | null }, outcome: AlertOutcome): Promise<void> {
  // Its lease ends with the attempt: an alert left pending waits for the backoff, which `alerts retry` may cut short.
  const attempted = { attempts: sql<number>`attempts + 1`, last_attempt_at: sql<Date>`now()`, claimed_until: null };
  if (outcome.status === 'delivered') {
    const delivered = { ...attempted, status: 'delivered' as const, delivered_at: sql<Date>`now()`, last_error: null };
    await runCompiled(pool, queryBuilder.updateTable('cpq.alert_outbox').set(delivered).where('id', '=', alert.id).compile());
    return;
  }
  const lastError = sql<string>`CASE WHEN EXISTS (SELECT 1 FROM cpq.erasures e
      WHERE e.site = cpq.alert_outbox.site AND e.company_login = cpq.alert_outbox.company_login AND e.login = cpq.alert_outbox.login
        AND e.erased_at >= cpq.alert_outbox.created_at)
    THEN ${`${outcome.bare} (its words are not kept: the user was forgotten)`} ELSE ${outcome.error} END`;
  const values =
    outcome.status === 'retry'
      ? { ...attempted, next_attempt_at: sql<Date>`now() + ${outcome.retryInMs} * interval '1 millisecond'`, last_error: lastError }
      : { ...attempted, status: 'failed' as const, last_error: lastError };
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    await runCompiled(client, sql`SELECT 1 FROM cpq.users WHERE id = ${alert.user_id}::bigint FOR KEY SHARE`.compile(queryBuilder));
    // A statement of its own: its snapshot, taken after the wait, sees an erasure that committed meanwhile.
    await runCompiled(client, queryBuilder.updateTable('cpq.alert_outbox').set(values).where('id', '=', alert.id).compile());
    await client.query('COMMIT');
  } catch (err) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release(failed);
  }
}
