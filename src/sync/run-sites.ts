import pLimit from 'p-limit';
import { deliverPendingAlerts } from '../alerts/delivery.js';
import type { SiteConfig } from '../config.js';
import { SyncError, asSyncError } from '../errors.js';
import type { RunOptions, RunResult, SyncDeps } from './run-types.js';
import { runSync } from './run.js';

/** How one site's run ended: its result, or the error it failed with. */
export type SiteOutcome = { site: string; result: RunResult; error?: undefined } | { site: string; result?: undefined; error: SyncError };

/**
 * Runs each of `sites` once, at most `concurrency` at a time. Sites are independent: each has its
 * own lock, transaction and run record, so one site's failure (bad credentials, a held lock, an
 * outage) neither stops nor rolls back another. The due alerts are sent once, after every site:
 * sent after each site's run, a slow webhook held up the sites waiting their turn (review EC).
 * Never throws; the outcomes are in `sites` order.
 */
export async function runSites(deps: SyncDeps, sites: readonly SiteConfig[], options: Omit<RunOptions, 'site'>, concurrency: number): Promise<SiteOutcome[]> {
  const outcomes = await runEach(deps, sites, options, concurrency);
  if (options.signal?.aborted && deps.config.alerts.webhook) {
    // Asked to stop: no pass, or it would hold the exit; said, since a site that committed before the signal has its alerts waiting (review ED).
    deps.log.warn('alerts not sent: asked to stop; the pending ones go out with the next run, the worker, or `cpq-sync alerts retry`');
  } else {
    // A database error ends the pass with a warning; the alerts stay pending for the next one.
    await deliverPendingAlerts({ on: deps.pool, config: deps.config.alerts, log: deps.log, signal: options.signal });
  }
  return outcomes;
}

function runEach(deps: SyncDeps, sites: readonly SiteConfig[], options: Omit<RunOptions, 'site'>, concurrency: number): Promise<SiteOutcome[]> {
  const limit = pLimit(concurrency);
  return Promise.all(
    sites.map((site) =>
      limit(async (): Promise<SiteOutcome> => {
        // Asked to stop while this site waited its turn: not started, so no run record says interrupted.
        if (options.signal?.aborted) {
          return { site: site.name, error: new SyncError('interrupted', 'not started: asked to stop (SIGTERM/SIGINT) before its turn', { site: site.name }) };
        }
        try {
          return { site: site.name, result: await runSync(deps, { ...options, site: site.name }) };
        } catch (err) {
          // A failure no part of the run classified (its record could not be written, no connection slot): the database's or internal.
          const error = asSyncError(err);
          return { site: site.name, error: error.site === undefined ? error.with({ site: site.name }) : error };
        }
      }),
    ),
  );
}
