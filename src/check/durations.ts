import { createTask } from 'node-cron';
import type { AppConfig, SiteConfig } from '../config.js';
import { durationSetting } from '../config-env.js';

/** How many of a schedule's next ticks cronInterval looks at: a week and more of a daily or hourly one, in ~20 ms. */
const TICKS_LOOKED_AT = 200;

/**
 * The longest time between two of the next ticks of `cron` in `timezone` (TICKS_LOOKED_AT of
 * them), as node-cron (which `schedule` runs on) computes them; undefined when it names fewer than
 * two. The longest, not the next: the next two of `0 6 * * 1-5` are a day apart but on a Friday,
 * and of `0 8,9 * * *` an hour apart at 08:30, so what check said hung on the day and hour it ran
 * (review IT). The task is never started: no timer is set.
 */
export function cronInterval(cron: string, timezone: string): number | undefined {
  const task = createTask(cron, () => undefined, { timezone });
  try {
    const ticks = task.getNextRuns(TICKS_LOOKED_AT).map((t) => t.getTime());
    let longest: number | undefined;
    for (let i = 1; i < ticks.length; i++) longest = Math.max(longest ?? 0, ticks[i]! - ticks[i - 1]!);
    return longest;
  } finally {
    void task.destroy();
  }
}

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
