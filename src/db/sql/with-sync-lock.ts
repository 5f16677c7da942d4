import type pg from 'pg';
import { sql } from 'kysely';
import { SyncError, errorMessage } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import { SITE_LOCK_CLASS } from '../site-lock-key.js';
import { cancellableSession } from '../cancel-on-abort.js';
import { outsiderHolder, readSyncLockHolder, runHolder } from './read-sync-lock-holder.js';

/**
 * Adds `site` to cpq.sites unless it is there (its first run, or its first scheduled tick);
 * returns the number its sync lock is keyed by. Run outside a transaction: the row must stay even
 * when the run rolls back.
 */
export async function registerSite(on: Queryable, site: string): Promise<number> {
  const lockIdOf = async () => (await runCompiled(on, queryBuilder.selectFrom('cpq.sites').select('lock_id').where('name', '=', site).compile()))[0]?.lock_id;
  // Looked up first: an insert that does nothing still takes a number of the lock_id identity,
  // and every run and every tick of every worker used one up (2^31, then every run failed).
  const known = await lockIdOf();
  if (known !== undefined) return known;
  // Two statements, not one with a CTE: when another session adds the same site at the same
  // moment, the insert waits for it and does nothing, and only a statement that starts after that
  // (a fresh snapshot) sees the row it added.
  await runCompiled(
    on,
    queryBuilder
      .insertInto('cpq.sites')
      .values({ name: site })
      .onConflict((oc) => oc.column('name').doNothing())
      .compile(),
  );
  return (await lockIdOf())!;
}

/** A site's sync lock held by a session that is no cpq-sync run (its role cannot write the tables): a failure, not a skip. */
export class SyncLockHeldByOutsider extends SyncError {
  constructor(message: string) {
    super('database', message);
  }
}

/**
 * Runs `work` holding `site`'s sync lock on `client`, or fails with a 'lock' SyncError (`whenHeld`
 * its message, and who holds it: runHolder) when another run's session holds it, and with
 * SyncLockHeldByOutsider (a 'database' error, exit code 6) when a session that cannot write the
 * cpq tables does (outsiderHolder). Session-level: held by this connection for the
 * whole run (across its transaction), and released by Postgres if the process dies. One run per site at a time; runs of
 * different sites go on side by side.
 *
 * `signal` cancels the site's look-up (cancelOnAbort), which waits for a session holding cpq.sites
 * whole: a shutdown then waited for it, and was ended by force at SHUTDOWN_TIMEOUT. Not the
 * lock's taking, which never waits: cancelled after it took the lock, the statement would fail
 * with the lock held, and the session go back to its pool holding it.
 *
 * An unlock that fails (a cancel landing on it, a statement refused once a signal armed on the
 * session has aborted: cancelOnAbort, a session gone) ends the session, which lets go of the lock,
 * and says so on `log` (a warning naming the site): back in its pool still holding it, the session
 * had every later run of the site that got it skipped as "another run holds the lock" until the pool
 * closed it. The caller releases the client as before; its pool discards an ended one. Ending
 * it lets go of every lock it holds: a withSyncLock around this one on the same client (a run's,
 * around its redaction of the sites the configuration does not name) has lost its own, and its
 * unlock is not sent (sessionEnded).
 */
export async function withSyncLock<T>(
  client: pg.PoolClient,
  site: string,
  work: () => Promise<T>,
  {
    whenHeld = `another cpq-sync run holds the sync lock of site ${site}; this run was skipped`,
    signal,
    log,
  }: { whenHeld?: string; signal?: AbortSignal; log: Logger },
): Promise<T> {
  const lockId = await registerSite(cancellableSession(client, signal), site);
  const rows = await runCompiled(client, sql<{ locked: boolean }>`SELECT pg_try_advisory_lock(${SITE_LOCK_CLASS}, ${lockId}) AS locked`.compile(queryBuilder));
  if (!rows[0]?.locked) {
    // Any role may take any advisory lock: a session that cannot write the tables (a reporting
    // login with cpq_reader) holding it would stop every run of the site, each only "skipped".
    // That is a failure to see and act on, not a run in progress.
    const holder = await readSyncLockHolder(client, site).catch(() => null);
    if (holder?.canWrite === false) {
      const { who, end } = outsiderHolder(holder);
      throw new SyncLockHeldByOutsider(`the sync lock of site ${site} is held by ${who}: no run of this site can start until it lets go (${end})`);
    }
    // Who holds it, and how to end it should it be stuck (a process stopped, not killed, keeps it).
    const heldBy =
      holder === null
        ? ''
        : `: held by ${runHolder(holder)}; if that run is stuck, stop its process, or end that session (SELECT pg_terminate_backend(${holder.pid}))`;
    throw new SyncError('lock', `${whenHeld}${heldBy}`);
  }
  try {
    return await work();
  } finally {
    // Ended by a withSyncLock inside this one: the lock went with the session.
    if (!endedSessions.has(client)) {
      await runCompiled(client, sql`SELECT pg_advisory_unlock(${SITE_LOCK_CLASS}, ${lockId})`.compile(queryBuilder)).catch(async (err: unknown) => {
        log.warn({ site, error: errorMessage(err) }, "could not release the site's sync lock: its database session is ended, which lets go of it");
        endedSessions.add(client);
        // Awaited: the server lets go of the session's locks before it closes the connection, so the
        // lock is free once this returns. A connection already broken is closed at once.
        await client.end().catch(() => undefined);
      });
    }
  }
}

/** The sessions withSyncLock ended because an unlock failed. */
const endedSessions = new WeakSet<pg.PoolClient>();

/** withSyncLock ended `client`'s session (an unlock failed): it holds no lock, and takes no statement. */
export function sessionEnded(client: pg.PoolClient): boolean {
  return endedSessions.has(client);
}
