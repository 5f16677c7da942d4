import type { Queryable } from '../compiled-query.js';

/**
 * Has the server look for this session's client every 5 s while a statement runs
 * (client_connection_check_interval, Postgres 14 and later; a no-op before). A run killed, or
 * forced out after SHUTDOWN_TIMEOUT, while its statement waited for a lock kept its session, and
 * so its site's sync lock, until the statement ended (up to SYNC_LOCK_TIMEOUT): every run of the
 * site skipped, `status` showing it running. So did `forget` (the site's lock too), and a
 * migration kept its queued ACCESS EXCLUSIVE request, every reader of the table waiting behind it.
 * For every connection that may wait for a lock while holding something: a run's, forget's, a
 * migration's. Not a connection option: Postgres 13 refuses an unknown one at connect.
 */
export async function watchClientConnection(on: Queryable): Promise<void> {
  await on.query(
    `SELECT pg_catalog.set_config('client_connection_check_interval', '5000', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000`,
  );
}
