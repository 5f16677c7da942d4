import { sql } from 'kysely';
import { LOCK_NOT_AVAILABLE, errorCode } from '../../errors.js';
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
  /** What it holds or waits for, when the query says (readCpqWriteBlockers): `ShareLock on cpq.users`, `waits for … behind pid 12`. */
  locks?: string;
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

/**
 * The other sessions that hold or wait for a lock on a table or view of schema cpq in a mode that
 * can stop a run's writes (any but ACCESS SHARE: a plain reader's lock conflicts only with DDL),
 * each with what it holds or waits for, and whom a waiting one queues behind (a lock request in
 * the queue holds up every later one, and its blocker is the one to end). Read as a run gives up
 * on SYNC_LOCK_TIMEOUT, for its error (review DU): its own request is gone by then, so this names
 * the sessions that could have stopped it, which may include another site's run.
 */
export async function readCpqWriteBlockers(on: Queryable): Promise<CpqLockHolder[]> {
  const rows = await runCompiled(
    on,
    sql<CpqLockHolder & { behind: number[] | null }>`SELECT a.pid, a.usename::text AS role, a.application_name AS application, a.state, a.xact_start AS since,
       string_agg(CASE WHEN l.granted THEN '' ELSE 'waits for ' END || l.mode || ' on cpq.' || pg_catalog.quote_ident(c.relname), ', ' ORDER BY c.relname, l.mode) AS locks,
       CASE WHEN bool_or(NOT l.granted) THEN pg_catalog.pg_blocking_pids(a.pid) END AS behind
     FROM pg_catalog.pg_locks l
     JOIN pg_catalog.pg_class c ON c.oid = l.relation AND c.relnamespace = pg_catalog.to_regnamespace('cpq') AND c.relkind IN ('r', 'p', 'v', 'm')
     JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
     WHERE l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
       AND l.mode <> 'AccessShareLock' AND l.pid <> pg_catalog.pg_backend_pid()
     GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start
     ORDER BY a.xact_start NULLS LAST, a.pid`.compile(queryBuilder),
  );
  return rows.map(({ behind, ...holder }) =>
    behind === null || behind.length === 0 ? holder : { ...holder, locks: `${holder.locks} behind ${behind.map((pid) => `pid ${pid}`).join(', ')}` },
  );
}

/** The holders in one line: `pid 123 (role reporting, application psql, idle in transaction since …)`, or what to look at when none is left. */
export function describeCpqLockHolders(holders: readonly CpqLockHolder[]): string {
  if (holders.length === 0) return 'none holds them now: they let go as the attempt gave up';
  const named = holders
    .slice(0, NAMED_AT_MOST)
    .map((h) => {
      const what = [h.role === null ? undefined : `role ${h.role}`, h.application ? `application ${h.application}` : undefined];
      if (h.state !== null) what.push(h.since === null ? h.state : `${h.state}, in a transaction since ${h.since.toISOString()}`);
      const known = what.filter((w) => w !== undefined);
      const who = known.length === 0 ? `pid ${h.pid}` : `pid ${h.pid} (${known.join(', ')})`;
      return h.locks === undefined ? who : `${who}: ${h.locks}`;
    })
    .join('; ');
  return holders.length > NAMED_AT_MOST ? `${named}; and ${holders.length - NAMED_AT_MOST} more` : named;
}

/** Sessions named in one line, at most: a line in a run record and a log, not a listing of a busy server. */
const NAMED_AT_MOST = 10;

/**
 * For a statement that gave up on SYNC_LOCK_TIMEOUT (lock_not_available), the sessions that could
 * have stopped it, in one line (describeCpqLockHolders); undefined for any other failure, or when
 * they cannot be read (the failure is reported all the same).
 */
export async function describeWriteBlockersOf(on: Queryable, err: unknown): Promise<string | undefined> {
  if (errorCode(err) !== LOCK_NOT_AVAILABLE) return undefined;
  return readCpqWriteBlockers(on).then(describeCpqLockHolders, () => undefined);
}
