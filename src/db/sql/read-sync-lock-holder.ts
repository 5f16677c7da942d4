import { sql, type RawBuilder } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import { SITE_LOCK_CLASS } from '../site-lock-key.js';

/** The session that holds the sync lock: its backend pid and since when it has been in its current state. */
export interface SyncLockHolder {
  pid: number;
  /** When the holding session's current transaction (or, between transactions, its current state) began; null when not visible to us. */
  since: Date | null;
  /** The holding session's role. */
  role: string | null;
  /** Whether that role may write cpq.users, itself or through a role it can SET ROLE to: false for a session that cannot be a run (a reader). */
  canWrite: boolean | null;
}

/**
 * Who holds `site`'s sync lock, or null when it is free (or the site has never run). Only reads
 * pg_locks and cpq.sites: unlike trying the lock, asking does not take it, even for a moment (a
 * run starting then would be refused). A two-key advisory lock appears in pg_locks as classid and
 * objid, with objsubid 2.
 */
export async function readSyncLockHolder(on: Queryable, site: string): Promise<SyncLockHolder | null> {
  return readAdvisoryLockHolder(on, { classid: SITE_LOCK_CLASS, objid: sql`(SELECT lock_id FROM cpq.sites WHERE name = ${site})`, objsubid: 2 });
}

/**
 * Who holds an advisory lock of this database, as pg_locks shows it (a one-key lock split into
 * classid and objid with objsubid 1, a two-key one with objsubid 2), or null when no session does.
 * canWrite is null before the first migration made cpq.users (Kysely's migration lock, review DQ:
 * migrate kept its own copy of this query).
 */
export async function readAdvisoryLockHolder(
  on: Queryable,
  lock: { classid: number; objid: number | RawBuilder<unknown>; objsubid: 1 | 2 },
): Promise<SyncLockHolder | null> {
  const rows = await runCompiled(
    on,
    sql<SyncLockHolder>`SELECT l.pid, coalesce(a.xact_start, a.state_change) AS since, a.usename::text AS role,
       CASE WHEN a.usesysid IS NOT NULL AND to_regclass('cpq.users') IS NOT NULL THEN EXISTS (
         -- Itself, or a role it can SET ROLE to (a NOINHERIT login, or role=... in its connection options).
         SELECT 1 FROM pg_roles r WHERE pg_has_role(a.usesysid, r.oid, 'MEMBER') AND has_table_privilege(r.oid, 'cpq.users', 'INSERT')
       ) END AS "canWrite"
     FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = ${lock.objsubid} AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = ${lock.classid} AND l.objid = ${lock.objid}
     LIMIT 1`.compile(queryBuilder),
  );
  return rows[0] ?? null;
}

/**
 * A holder that cannot write the cpq tables (canWrite false: a reporting login with cpq_reader) is
 * no cpq-sync run: what it is, and how to end it. Said by the run it stops (SyncLockHeldByOutsider,
 * exit code 6) and by `check`.
 */
export function outsiderHolder(holder: SyncLockHolder, of: 'run' | 'migration' = 'run'): { who: string; end: string } {
  return {
    who: `a session of role ${holder.role} (pid ${holder.pid}), which cannot write the cpq tables, so it is no cpq-sync ${of}`,
    end: `SELECT pg_terminate_backend(${holder.pid})`,
  };
}

/** A holder that can write the cpq tables, so a run's session: "the database session of pid N since T". */
export function runHolder(holder: SyncLockHolder): string {
  return `the database session of pid ${holder.pid}${holder.since ? ` since ${holder.since.toISOString()}` : ''}`;
}

/** Whether no session holds `site`'s sync lock; false when that cannot be read (a caller then takes a run's record as it is). */
export async function syncLockIsFree(on: Queryable, site: string): Promise<boolean> {
  try {
    return (await readSyncLockHolder(on, site)) === null;
  } catch {
    return false;
  }
}
