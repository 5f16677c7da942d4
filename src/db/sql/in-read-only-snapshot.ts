import pg from 'pg';
import { SyncError, asSyncError } from '../../errors.js';
import { LinkedSignal } from '../../linked-signal.js';
import { cancellableSession } from '../cancel-on-abort.js';
import type { Queryable } from '../compiled-query.js';
import { watchClientConnection } from './holding-session.js';
// Not converted: transaction control on one client of the pool (a Kysely transaction runs on a
// connection of its own, and the caller streams with pg-cursor on this one); no parameters, no rows.

/**
 * Runs `work` in one REPEATABLE READ READ ONLY transaction on a client of `pool`: every query it
 * makes sees the same committed state, however many runs commit meanwhile.
 */
export async function inReadOnlySnapshot<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | boolean | undefined;
  try {
    // A killed export's query ends within seconds instead of running on (session-level: the
    // connection goes back to the pool with it, a check that costs nothing while no statement runs).
    await watchClientConnection(client);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr instanceof Error ? rollbackErr : Boolean(rollbackErr)));
    // What Postgres said, or a session that is gone (the ROLLBACK failed too), is a database
    // failure (exit code 6, named as one); a failing output (a full disk) stays what it is.
    throw err instanceof pg.DatabaseError || broken !== undefined ? asSyncError(err) : err;
  } finally {
    client.release(broken);
  }
}

/** Postgres' SQLSTATE for a connection refused by a connection limit (the role's, the database's, the server's). */
const TOO_MANY_CONNECTIONS = '53300';

/**
 * Runs `work` on up to `sessions` clients of `pool` at once, each in a REPEATABLE READ READ ONLY
 * transaction of one snapshot: the first exports it (pg_export_snapshot), the others import it
 * (SET TRANSACTION SNAPSHOT) before any query, so that what they read together is what one
 * statement would have read, however many runs commit meanwhile. A session refused by a
 * connection limit is done without (the role's CONNECTION LIMIT, the server's max_connections):
 * the work runs on those opened, the first at least.
 *
 * Each statement is cancelled by `signal` (cancellableSession), and by the failure of another
 * session's, so that `work` failing or stopped leaves no statement running: every transaction is
 * rolled back and every client released, a client whose ROLLBACK failed destroyed.
 */
export async function inSharedSnapshot<T>(pool: pg.Pool, sessions: number, signal: AbortSignal | undefined, work: (on: Queryable[]) => Promise<T>): Promise<T> {
  const stop = new LinkedSignal(signal);
  const clients: pg.PoolClient[] = [];
  const open = async (snapshot: string | undefined): Promise<Queryable> => {
    stop.signal.throwIfAborted();
    const client = await pool.connect();
    clients.push(client);
    const on = cancellableSession(client, stop.signal);
    // A killed verify's statements end within seconds instead of running on (as an export's).
    await watchClientConnection(on);
    await on.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // Not a parameter: SET takes a literal. pg_export_snapshot's ids are hex digits and dashes.
    if (snapshot !== undefined) await on.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
    return on;
  };
  // No more than the pool has free: a session more would wait for one this caller holds.
  const free = pool.options.max - pool.totalCount + pool.idleCount;
  try {
    const first = await open(undefined);
    const [{ id }] = (await first.query('SELECT pg_catalog.pg_export_snapshot() AS id')).rows as [{ id: string }];
    if (!/^[0-9A-F-]+$/i.test(id)) throw new SyncError('database', `pg_export_snapshot() returned an id that is not one: ${JSON.stringify(id)}`);
    const on = [first];
    while (on.length < sessions && on.length < free) {
      try {
        on.push(await open(id));
      } catch (err) {
        if ((err as { code?: unknown }).code !== TOO_MANY_CONNECTIONS) throw err;
        break;
      }
    }
    return await work(on);
  } catch (err) {
    // Every other session's statement cancelled, so that its ROLLBACK does not wait for it to end.
    stop.abort(err);
    throw err;
  } finally {
    stop.done();
    // Read only: ended by a ROLLBACK whatever happened, a COMMIT would keep nothing more.
    for (const client of clients.splice(0)) {
      const broken = await client.query('ROLLBACK').then(
        () => false,
        () => true,
      );
      client.release(broken);
    }
  }
}
