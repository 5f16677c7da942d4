import type pg from 'pg';
import { readUnnamedSitesDue } from '../db/sql/read-unnamed-sites-due.js';
import { withSyncLock } from '../db/sql/with-sync-lock.js';
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
 */
export async function redactUnnamedSites(
  client: pg.PoolClient,
  named: readonly string[],
  retainedFrom: Date,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<void> {
  const due = await readUnnamedSitesDue(client, named, new Date(retainedFrom.getTime() - UNNAMED_SITE_LAG_MS));
  for (const other of due) {
    // A shutdown waits for no more of them: the run has committed; the next one goes on.
    if (signal?.aborted) return;
    try {
      await withSyncLock(client, other, async () => {
        const redacted = await redactSiteOutsideRun(client, other, retainedFrom);
        if (redactedAny(redacted)) {
          log.info({ unnamedSite: other, redacted }, 'personal fields past HISTORY_RETENTION redacted in a site the configuration does not name');
        }
      });
    } catch (err) {
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
