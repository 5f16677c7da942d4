import type { AppConfig, SiteConfig } from '../config.js';
import { durationSetting } from '../config-env.js';
import { cronInterval } from '../worker/cron-schedule.js';

/** A duration as read, for people: `36 s`, `1 d`. */
const asRead = (ms: number) => durationSetting(ms).replace(/^([\d.]+)/, '$1 ');

/**
 * check's warnings for SYNC_STALE_AFTER and SYNC_FULL_EVERY shorter than the time between two runs
 * of a site's schedule, one per setting and site. A bare number is seconds: SYNC_STALE_AFTER=36
 * (its default shown as 36h) made `status` and /readyz call a site stale 36 s after each run, and
 * SYNC_FULL_EVERY=7 made every run a full read. Not refused: configurations that hold them work.
 * Neither can be set per site; each site's schedule can (its cron, timezone).
 */
export function shortDurationWarnings(config: AppConfig, sites: readonly SiteConfig[]): string[] {
  const settings = [
    { name: 'SYNC_STALE_AFTER', ms: config.worker.staleAfterMs, effect: 'status and /readyz call the site stale between its runs' },
    { name: 'SYNC_FULL_EVERY', ms: config.fullEveryMs, effect: 'every run of the site reads in full' },
  ];
  const warnings: string[] = [];
  for (const site of sites) {
    const interval = cronInterval(site.cron, site.timezone);
    if (interval === undefined) continue;
    for (const { name, ms, effect } of settings) {
      if (ms >= interval) continue;
      warnings.push(
        `${name} is read as ${asRead(ms)}, shorter than the ${asRead(interval)} between two runs of site ${site.name}'s schedule (${site.cron}) at its longest: ${effect}; make it longer (a number without a unit is seconds)`,
      );
    }
  }
  return warnings;
}
