import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import { RUN_LOCK_KEY } from './with-sync-lock.js';

/** The session that holds the sync lock: its backend pid and since when it has been in its current state. */
export interface SyncLockHolder {
  pid: number;
  /** When the holding session's current transaction (or, between transactions, its current state) began; null when not visible to us. */
  since: Date | null;
}

/**
 * Who holds the sync lock, or null when it is free. Only reads pg_locks: unlike trying the lock,
 * asking does not take it, even for a moment (a run starting then would be refused).
 * A bigint advisory key appears in pg_locks split in two: its high 32 bits as classid, its low
 * 32 bits as objid, with objsubid 1.
 */
export async function readSyncLockHolder(on: Queryable, key: string = RUN_LOCK_KEY): Promise<SyncLockHolder | null> {
  const rows = await runCompiled(
    on,
    sql<{ pid: number; since: Date | null }>`SELECT l.pid, coalesce(a.xact_start, a.state_change) AS since
     FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = ${key}::bigint
     LIMIT 1`.compile(queryBuilder),
  );
  return rows[0] ?? null;
}
