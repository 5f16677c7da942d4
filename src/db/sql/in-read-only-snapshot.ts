import pg from 'pg';
import { SyncError, asSyncError, isSignalsDoing } from '../../errors.js';
import { LinkedSignal } from '../../linked-signal.js';
import { cancellableSession } from '../cancel-on-abort.js';
import type { Queryable } from '../compiled-query.js';
import { watchClientConnection } from './holding-session.js';
// Not converted: transaction control on clients of the pool (a Kysely transaction runs on a
// connection of its own, and an export streams with pg-cursor on its session's client); no parameters, no rows.

/** A session of a snapshot (inReadOnlySnapshot). */
export interface SnapshotSession {
  /** Its client, for what needs one (an export's pg-cursor): statements sent on it are not cancelled by the signal. */
  client: pg.PoolClient;
  /** Its statements, each cancelled by the signal and by the failure of another session's (cancellableSession). */
  on: Queryable;
}

/** Postgres' SQLSTATE for a connection refused by a connection limit (the role's, the database's, the server's). */
const TOO_MANY_CONNECTIONS = '53300';

/**
 * Runs `work` in REPEATABLE READ READ ONLY transactions of one snapshot on up to `sessions` clients
 * of `pool` (one unless told): every query it makes, on any of them, sees the same committed state,
 * however many runs commit meanwhile (an export's rows and its watermark; verify --chain's seals
 * and the content hashes it recomputes several at once). With more than one, the first exports
 * its snapshot (pg_export_snapshot), the others import it (SET TRANSACTION SNAPSHOT) before any
 * query, so that what they read together is what one statement would have read. A session more
 * refused by a connection limit is done without (the role's CONNECTION LIMIT, the server's
 * max_connections), and none is asked for past what the pool has free (it would wait for one this
 * caller holds): the work runs on those opened, the first at least.
 *
 * `signal` cancels the statements sent through each session's `on`, and so does the failure of
 * another session's, so that `work` failing or stopped leaves no such statement running. Every
 * transaction is ended by a ROLLBACK however `work` ended (read only: a COMMIT would keep nothing
 * more) and every client released, one whose ROLLBACK failed destroyed. What Postgres said, or a
 * session that is gone (its ROLLBACK failed too), is thrown as a database failure (exit code 6,
 * named as one); a failing output (a full disk) stays what it is.
 */
export async function inReadOnlySnapshot<T>(
  pool: pg.Pool,
  work: (sessions: [SnapshotSession, ...SnapshotSession[]]) => Promise<T>,
  { sessions = 1, signal }: { sessions?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const stop = new LinkedSignal(signal);
  const clients: pg.PoolClient[] = [];
  /** Ends each transaction opened and releases its client (destroyed when its ROLLBACK failed); whether any did: a session gone. */
  const rollBack = async (): Promise<boolean> => {
    let gone = false;
    for (const client of clients.splice(0)) {
      const failed = await client.query('ROLLBACK').then(
        () => false,
        () => true,
      );
      gone ||= failed;
      client.release(failed);
    }
    return gone;
  };
  const open = async (snapshot: string | undefined): Promise<SnapshotSession> => {
    stop.signal.throwIfAborted();
    const client = await pool.connect();
    clients.push(client);
    const on = cancellableSession(client, stop.signal);
    // A killed export's or verify's statements end within seconds instead of running on to their
    // end (session-level: the connection goes back to the pool with it, a check that costs nothing
    // while no statement runs).
    await watchClientConnection(on);
    await on.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // Not a parameter: SET takes a literal. pg_export_snapshot's ids are hex digits and dashes.
    if (snapshot !== undefined) await on.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
    return { client, on };
  };
  const free = pool.options.max - pool.totalCount + pool.idleCount;
  let opening = true;
  try {
    const opened: [SnapshotSession, ...SnapshotSession[]] = [await open(undefined)];
    // One session reads in its own snapshot: exported only for others to import.
    if (sessions > 1) {
      const [{ id }] = (await opened[0].on.query('SELECT pg_catalog.pg_export_snapshot() AS id')).rows as [{ id: string }];
      if (!/^[0-9A-F-]+$/i.test(id)) throw new SyncError('database', `pg_export_snapshot() returned an id that is not one: ${JSON.stringify(id)}`);
      while (opened.length < sessions && opened.length < free) {
        try {
          opened.push(await open(id));
        } catch (err) {
          if ((err as { code?: unknown }).code !== TOO_MANY_CONNECTIONS) throw err;
          break;
        }
      }
    }
    opening = false;
    return await work(opened);
  } catch (err) {
    // Every other session's statement cancelled, so that its ROLLBACK does not wait for it to end.
    stop.abort(err);
    const gone = await rollBack();
    // What opening a session throws comes of the database or the connection to it (a refused
    // connect is a Node system error, ECONNREFUSED, not a pg.DatabaseError), unless the signal
    // stopped it: classified by asSyncError (a bug of ours would still be an internal error).
    const databases = err instanceof pg.DatabaseError || gone || (opening && !isSignalsDoing(err, signal));
    throw databases ? asSyncError(err) : err;
  } finally {
    stop.done();
    await rollBack();
  }
}
