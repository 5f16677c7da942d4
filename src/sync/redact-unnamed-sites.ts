import type pg from 'pg';
import { readUnnamedSitesDue } from '../db/sql/read-unnamed-sites-due.js';
import { sessionEnded, withSyncLock } from '../db/sql/with-sync-lock.js';
import { cancelOnAbort, cancellableSession } from '../db/cancel-on-abort.js';
import { SyncError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { redactedAny } from '../db/sql/redact-personal.js';
import { redactSiteOutsideRun } from './redact-site.js';

/** A site no run names is redacted at most this long after its cutoff moved: once an hour, not every run. */
const UNNAMED_SITE_LAG_MS = 3_600_000;

/**
 * HISTORY_RETENTION is the database's: a site no run syncs any more (removed from the sites file,
 * renamed) would keep its deleted users' personal data for ever. After its own commit, a run of a
 * named site redacts each such site up to `retainedFrom`, one at a time, each in a transaction of
 * its own under that site's sync lock, taken only when free and let go at once: a run of that
 * site (another deployment's) starting meanwhile is skipped, as for any held lock, for no longer
 * than one site's redaction.
 *
 * `signal` cancels each statement (cancelOnAbort): one waiting for a lock (a report's session
 * holding a site's retention state or rows) held a shutdown until SHUTDOWN_TIMEOUT ended the
 * process by force, the run committed. A redaction cancelled rolls back whole; the next run redoes it.
 */
export async function redactUnnamedSites(
  client: pg.PoolClient,
  named: readonly string[],
  retainedFrom: Date,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<void> {
  // A shutdown waits for none of them: the run has committed; the next one goes on.
  if (signal?.aborted) return;
  const due = await readUnnamedSitesDue(cancellableSession(client, signal), named, new Date(retainedFrom.getTime() - UNNAMED_SITE_LAG_MS));
  for (const [i, other] of due.entries()) {
    if (signal?.aborted) return;
    // An unlock that failed ended the run's session (withSyncLock): each site left would fail on it.
    if (sessionEnded(client)) {
      log.warn(
        { unnamedSites: due.slice(i) },
        'sites the configuration does not name were not redacted this time: the session ended; the next run redacts them',
      );
      return;
    }
    try {
      await withSyncLock(
        client,
        other,
        async () => {
          const stopCancelling = cancelOnAbort(client, signal);
          // A cancel sent is delivered before the site's unlock: landing on it, it left the lock held by the session.
          const redacted = await redactSiteOutsideRun(client, other, retainedFrom).finally(stopCancelling);
          if (redactedAny(redacted)) {
            log.info({ unnamedSite: other, redacted }, 'personal fields past HISTORY_RETENTION redacted in a site the configuration does not name');
          }
        },
        { signal, log },
      );
    } catch (err) {
      // Cancelled by the shutdown: rolled back, and no news (the next run redoes it).
      if (signal?.aborted) return;
      // Its lock held by a run of it (which redacts it itself) is no news; anything else is personal
      // data kept past its retention, said where the operator sees it. The next run tries again.
      if (err instanceof SyncError && err.kind === 'lock') {
        log.debug({ unnamedSite: other }, 'a site the configuration does not name was not redacted this time: a run of it holds its lock');
      } else {
        log.warn({ unnamedSite: other, error: errorMessage(err) }, 'could not redact, past HISTORY_RETENTION, a site the configuration does not name');
      }
    }
  }
}
