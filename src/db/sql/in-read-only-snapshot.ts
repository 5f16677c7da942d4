import pg from 'pg';
import { asSyncError } from '../../errors.js';
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
