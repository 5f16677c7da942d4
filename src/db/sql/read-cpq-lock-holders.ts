import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** A session holding a lock on something of schema cpq, as pg_locks and pg_stat_activity show it to this role. */
interface CpqLockHolder {
  pid: number;
  role: string | null;
  application: string | null;
  /** idle in transaction, active, …; null when this role may not see another role's sessions. */
  state: string | null;
  /** When its transaction began; null likewise. */
  since: Date | null;
}

/**
 * The other sessions that hold a lock on a table, view or sequence of schema cpq, or Kysely's
 * migration lock (an advisory lock, any role may take it), oldest transaction first: those a
 * migration that could not get its locks waited for (a report's open transaction, a run in
 * progress, a dump), for the line that says so. Read after the attempt gave up, so a session that
 * let go meanwhile is not named.
 */
export async function readCpqLockHolders(on: Queryable, kyselyLock: { classid: number; objid: number }): Promise<CpqLockHolder[]> {
  return runCompiled(
    on,
    sql<CpqLockHolder>`SELECT a.pid, a.usename::text AS role, a.application_name AS application, a.state, a.xact_start AS since
     FROM pg_catalog.pg_stat_activity a
     WHERE a.pid <> pg_catalog.pg_backend_pid() AND EXISTS (
       SELECT 1 FROM pg_catalog.pg_locks l
       WHERE l.pid = a.pid AND l.granted AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
         AND (l.relation IN (SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.to_regnamespace('cpq'))
           OR (l.locktype = 'advisory' AND l.objsubid = 1 AND l.classid = ${kyselyLock.classid} AND l.objid = ${kyselyLock.objid})))
     ORDER BY a.xact_start NULLS LAST, a.pid`.compile(queryBuilder),
  );
}

/** The holders in one line: `pid 123 (role reporting, application psql, idle in transaction since …)`, or what to look at when none is left. */
export function describeCpqLockHolders(holders: readonly CpqLockHolder[]): string {
  if (holders.length === 0) return 'none holds them now: they let go as the attempt gave up';
  return holders
    .map((h) => {
      const what = [h.role === null ? undefined : `role ${h.role}`, h.application ? `application ${h.application}` : undefined];
      if (h.state !== null) what.push(h.since === null ? h.state : `${h.state}, in a transaction since ${h.since.toISOString()}`);
      const known = what.filter((w) => w !== undefined);
      return known.length === 0 ? `pid ${h.pid}` : `pid ${h.pid} (${known.join(', ')})`;
    })
    .join('; ');
}
