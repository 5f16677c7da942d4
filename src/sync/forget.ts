import type pg from 'pg';
import { analyzeErasedTables } from '../db/sql/analyze-erased-tables.js';
import { erasureCommitted, lastErasure, lockUserForErasure, recordErasure, scrubAlertOutbox } from '../db/sql/erasures.js';
import { personalValues, redactUser } from '../db/sql/redact-personal.js';
import { readSiteNames } from '../db/sql/read-site-names.js';
import { describeWriteBlockersOf } from '../db/sql/read-cpq-lock-holders.js';
import { withSyncLock } from '../db/sql/with-sync-lock.js';
import { prepareHoldingSession, releaseHoldingSession } from '../db/sql/holding-session.js';
import { SyncError, errorMessage, rethrowAsSyncError, toDatabaseOrInternal } from '../errors.js';
import type { Logger } from '../logger.js';

export interface ForgetRequest {
  site: string;
  company: string;
  login: string;
  reason: string;
  /** Who asked: a person or ticket, recorded in cpq.erasures. */
  requestedBy: string;
}

export interface Erasure {
  /** The erasure recorded; with `earlier`, the earlier one (none was recorded now). */
  erasureId: string;
  userId: string;
  /** Rows redacted, by table. */
  rowsRedacted: Record<string, number>;
  /**
   * Set when nothing was left to erase and an erasure of this user is recorded already (a
   * `forget` run twice): no row is added to cpq.erasures; when and by whom it was erased.
   */
  earlier?: { erasedAt: string; requestedBy: string };
}

/**
 * `cpq-sync forget`: redacts one deleted user's personal fields everywhere this database holds
 * them (current row, every version, raw records, change diffs, the alert outbox) and records who
 * asked, when and why in cpq.erasures, in one transaction, under the site's sync lock. A user the database holds as present is
 * refused: CPQ may still have it (only a full read marks a user deleted), so the next run would copy its data back.
 */
export async function forgetUser(pool: pg.Pool, request: ForgetRequest, log: Logger): Promise<Erasure> {
  if (request.reason.trim() === '') throw new SyncError('config', 'forget needs a --reason (recorded in cpq.erasures)');
  const who = `${request.company}/${request.login}`;
  const client = await pool.connect().catch((err: unknown) => {
    throw toDatabaseOrInternal(err);
  });
  try {
    // This session holds the site's sync lock while its statements may wait for locks (a report
    // reading cpq.erasures holds up the INSERT there): killed then, it let go of nothing until
    // that lock was freed, and every run of the site was skipped meanwhile; and a role's
    // statement_timeout cancelled a wait SYNC_LOCK_TIMEOUT allows (review DE).
    await prepareHoldingSession(client).catch(rethrowAsSyncError);
    // Not a site's first lock: a misspelt --site would be added to cpq.sites for good.
    if (!(await readSiteNames(client).catch(rethrowAsSyncError)).includes(request.site))
      throw new SyncError('config', `no site ${request.site} in this database: nothing to forget`);
    // Under the site's sync lock: a run going on may have read the user's rows before this erasure
    // and would write them back, in a restore's diff and an ended version, when it commits.
    // A database error of the lock's own statements (the connection lost) is one too, exit code 6.
    return await withSyncLock(client, request.site, () => erase(client, request, pool), {
      whenHeld: `a run of site ${request.site} is going on (it holds the site's sync lock) and could write ${who}'s data back: forget again once it has finished`,
      log,
    }).catch(rethrowAsSyncError);
  } finally {
    await releaseHoldingSession(client);
  }
}

/** `pool`: where to ask, once the answer to COMMIT was lost, whether the erasure committed. */
async function erase(client: pg.PoolClient, request: ForgetRequest, pool: pg.Pool): Promise<Erasure> {
  const who = `${request.company}/${request.login}`;
  try {
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
    const user = await lockUserForErasure(client, request.site, request.company, request.login);
    if (!user) throw new SyncError('config', `no user ${who} in site ${request.site}: nothing to forget`);
    if (user.deleted_at === null) {
      throw new SyncError(
        'config',
        // Only a full read marks a user deleted: the usual mistake is an incremental run after the deletion in CPQ.
        `refusing to forget ${who}: the database holds this user as present (no full read has found it deleted), so the next run would copy it back while CPQ has it; delete it in CPQ, then run a full read (cpq-sync run --full --site ${request.site}), and forget again`,
      );
    }
    const values = await personalValues(client, user.id);
    const rowsRedacted: Record<string, number> = { ...(await redactUser(client, user.id)) };
    const outbox = await scrubAlertOutbox(client, request.site, request.company, request.login, values);
    if (outbox !== undefined) rowsRedacted.alert_outbox = outbox;
    // Forgotten already, and nothing came back since (a user restored and deleted again has new
    // rows to erase, and is recorded as usual): a second row would record an erasure of nothing.
    // One with nothing to erase and no erasure recorded (the retention redacted it) is recorded: the request was met.
    if (Object.values(rowsRedacted).every((n) => n === 0)) {
      const earlier = await lastErasure(client, request.site, request.company, request.login, user.id);
      if (earlier) {
        await client.query('ROLLBACK');
        // The statistics still, outside the transaction: an erasure by a release before they were
        // refreshed left the values in pg_stats, and forget run again is how to clear them (review DR).
        await analyzeErasedTables(client);
        return { erasureId: earlier.id, userId: user.id, rowsRedacted, earlier: { erasedAt: earlier.erasedAt, requestedBy: earlier.requestedBy } };
      }
    }
    const erasureId = await recordErasure(client, {
      site: request.site,
      company: request.company,
      login: request.login,
      userId: user.id,
      reason: request.reason,
      requestedBy: request.requestedBy,
      rowsRedacted,
    });
    await analyzeErasedTables(client);
    try {
      await client.query('COMMIT');
    } catch (err) {
      // The connection lost as COMMIT was sent: it may have gone through, and then the user is
      // forgotten. Said as it is, not as an erasure rolled back (review HQ); and when that cannot
      // be known, not as either.
      const committed = await erasureCommitted(pool, erasureId, user.id).catch((askErr: unknown) => {
        throw new SyncError(
          'database',
          `lost the connection to Postgres as the erasure was committing (${errorMessage(err)}), and could not tell whether the erasure committed (${errorMessage(askErr)}): forget again, which says it was forgotten already if it did`,
        );
      });
      if (committed) return { erasureId, userId: user.id, rowsRedacted };
      throw err;
    }
    return { erasureId, userId: user.id, rowsRedacted };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (err instanceof SyncError) throw err;
    throw toDatabaseOrInternal(err, await describeWriteBlockersOf(client, err));
  }
}
