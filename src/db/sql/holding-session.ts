import type pg from 'pg';
import type { Queryable } from '../compiled-query.js';

/**
 * Readies a session that holds something for long: a run's (its site's sync lock, its
 * transaction), forget's (the site's sync lock), a migration's (its DDL's locks). Session-level,
 * until endHoldingSession puts them back before the connection returns to the pool.
 *
 * Has the server look for this session's client every 5 s while a statement runs
 * (client_connection_check_interval, Postgres 14 and later; a no-op before). A run killed, or
 * forced out after SHUTDOWN_TIMEOUT, while its statement waited for a lock kept its session, and
 * so its site's sync lock, until the statement ended (up to SYNC_LOCK_TIMEOUT): every run of the
 * site skipped, `status` showing it running. So did `forget` (the site's lock too), and a
 * migration kept its queued ACCESS EXCLUSIVE request, every reader of the table waiting behind it.
 * Not a connection option: Postgres 13 refuses an unknown one at connect.
 *
 * And takes off the limits a role or database may set (ALTER ROLE ... SET) for interactive
 * sessions, which every such session of ours outlasts by design (review DE): a run's transaction is
 * idle while it waits on CPQ (idle_in_transaction_session_timeout ended the session, and the run,
 * against any slow CPQ); its statements, forget's and a migration's wait for locks as long as
 * SYNC_LOCK_TIMEOUT allows, or without a bound for a migration (statement_timeout cancelled them
 * first); and a session ended while idle between statements (idle_session_timeout, 14 and later)
 * lets go of the site's sync lock under a run still going; a transaction ended past a set length
 * (transaction_timeout, 17 and later) ended every run longer than it. What bounds such a session instead:
 * SYNC_LOCK_TIMEOUT, CPQ's timeouts, and this connection check and TCP keepalives once its process
 * is gone. Other sessions (a reporting login's, `snapshot`'s, /readyz's) keep the limits they are given.
 */
export async function prepareHoldingSession(on: Queryable): Promise<void> {
  await on.query(`SELECT pg_catalog.set_config('statement_timeout', '0', false), pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false)`);
  await watchClientConnection(on);
  await on.query(`SELECT pg_catalog.set_config('idle_session_timeout', '0', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000`);
  await on.query(`SELECT pg_catalog.set_config('transaction_timeout', '0', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 170000`);
}

/**
 * The connection check alone (see above), for a session that keeps the limits it is given: an
 * export's, whose query, once its process was killed, ran on to its end (2 minutes of a slow
 * snapshot plan), holding its locks and a core.
 */
export async function watchClientConnection(on: Queryable): Promise<void> {
  await on.query(
    `SELECT pg_catalog.set_config('client_connection_check_interval', '5000', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000`,
  );
}

/**
 * Puts back what prepareHoldingSession set off, to what the role and database give a session
 * (pg_settings.reset_val, what RESET restores), before the connection goes back to the pool: the
 * process's later statements on it are short ones (/readyz's, the run records'), which those
 * limits should bound (review DJ). A setting this server does not know is simply not listed.
 */
export async function endHoldingSession(on: Queryable): Promise<void> {
  await on.query(
    `SELECT pg_catalog.set_config(name, reset_val, false) FROM pg_catalog.pg_settings
      WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout', 'transaction_timeout', 'client_connection_check_interval')`,
  );
}

/**
 * Returns a holding session's client to its pool with its limits put back (endHoldingSession);
 * destroys it instead when its connection was `lost` or cannot be reset.
 */
export async function releaseHoldingSession(client: pg.PoolClient, lost?: Error): Promise<void> {
  const unreset =
    lost === undefined &&
    !(await endHoldingSession(client).then(
      () => true,
      () => false,
    ));
  client.release(lost ?? unreset);
}
