import type pg from 'pg';
import { SyncError } from '../../errors.js';

/** pg advisory lock key that serializes sync runs against one database ("cpqsync" in ASCII). */
export const RUN_LOCK_KEY = '109052458006371';

/**
 * Runs `work` holding the sync lock on `client`, or fails with a 'lock' SyncError when another
 * session holds it. Session-level: held by this connection for the whole run (across its
 * transaction), and released by Postgres if the process dies.
 */
export async function withSyncLock<T>(client: pg.PoolClient, work: () => Promise<T>): Promise<T> {
  const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [RUN_LOCK_KEY]);
  if (!rows[0]?.locked) {
    throw new SyncError('lock', 'another cpq-sync run holds the sync lock on this database; this run was skipped');
  }
  try {
    return await work();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [RUN_LOCK_KEY]).catch(() => undefined);
  }
}
