import type pg from 'pg';
import { sql } from 'kysely';
import { SyncError } from '../../errors.js';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/** pg advisory lock key that serializes sync runs against one database ("cpqsync" in ASCII). */
export const RUN_LOCK_KEY = '109052458006371';

/**
 * Runs `work` holding the sync lock on `client`, or fails with a 'lock' SyncError when another
 * session holds it. Session-level: held by this connection for the whole run (across its
 * transaction), and released by Postgres if the process dies.
 */
export async function withSyncLock<T>(client: pg.PoolClient, work: () => Promise<T>): Promise<T> {
  const rows = await runCompiled(client, sql<{ locked: boolean }>`SELECT pg_try_advisory_lock(${RUN_LOCK_KEY}) AS locked`.compile(queryBuilder));
  if (!rows[0]?.locked) {
    throw new SyncError('lock', 'another cpq-sync run holds the sync lock on this database; this run was skipped');
  }
  try {
    return await work();
  } finally {
    await runCompiled(client, sql`SELECT pg_advisory_unlock(${RUN_LOCK_KEY})`.compile(queryBuilder)).catch(() => undefined);
  }
}
