import { createTask, type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import { ConfigError, scheduleProblems } from '../config.js';
import type { Logger } from '../logger.js';

export interface CronScheduleOptions {
  /** SYNC_CRON: five fields, or six with seconds first (node-cron v4). */
  cron: string;
  /** SYNC_TIMEZONE: an IANA zone such as UTC or Europe/Berlin. */
  timezone: string;
  log: Logger;
  /**
   * Called on every tick with the time it was due (by this machine's clock, whole seconds: every
   * process with the same schedule names a tick alike); never concurrently with itself (a tick
   * that finds it running is skipped).
   */
  onTick: (dueAt: Date) => Promise<void>;
  /** A name for node-cron's log lines (the site). */
  name?: string;
  /** Called for a tick skipped because the previous one was still running. */
  onOverlap?: () => void;
  /** Called for a tick that never ran: a later one was due by the time the process could run it. */
  onMissed?: () => void;
}

/** Checks SYNC_CRON and SYNC_TIMEZONE; throws ConfigError (exit code 2) naming the variable. */
export function validateSchedule(cron: string, timezone: string): void {
  const problems = scheduleProblems(cron, timezone);
  if (problems.length > 0) throw ConfigError.listing(problems);
}

/** How many of a schedule's next ticks cronInterval looks at: a week and more of a daily or hourly one, in ~20 ms. */
const TICKS_LOOKED_AT = 200;

/**
 * The longest time between two of the next ticks of `cron` in `timezone` (TICKS_LOOKED_AT of
 * them), as node-cron computes them for CronSchedule below; undefined when it names fewer than
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

/** node-cron's own messages go to our logger. */
function cronLogger(log: Logger): CronLogger {
  const text = (m: string | Error) => (m instanceof Error ? m.message : m);
  return {
    info: (m) => log.debug({ source: 'node-cron' }, m),
    // Its overlap warning repeats the line CronSchedule logs itself; missed ticks stay warnings.
    warn: (m) => (/overlap/i.test(m) ? log.debug({ source: 'node-cron' }, m) : log.warn({ source: 'node-cron' }, m)),
    error: (m, err) => log.error({ source: 'node-cron', error: err?.message }, text(m)),
    debug: (m) => log.debug({ source: 'node-cron' }, text(m)),
  };
}

/** A time as read in the schedule's zone, for log lines people read ("2024-05-02 02:00:00 UTC"). */
export function formatInZone(date: Date, timezone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')} ${timezone}`;
}

/**
 * The sync schedule on node-cron. Overlap is prevented by node-cron itself (`noOverlap`): a tick
 * that comes while the previous run is still going is dropped, not queued, and reported.
 */
export class CronSchedule {
  private readonly task: ScheduledTask;

  constructor(private readonly options: CronScheduleOptions) {
    validateSchedule(options.cron, options.timezone);
    this.task = createTask(options.cron, (context) => options.onTick(new Date(Math.floor(context.date.getTime() / 1000) * 1000)), {
      timezone: options.timezone,
      noOverlap: true,
      name: options.name ?? 'cpq-sync',
      logger: cronLogger(options.log),
      // A tick the process could not run on time (the VM paused, the event loop blocked by a long
      // collection) runs late, named by when it was due, as long as the next is not due yet:
      // node-cron's default (1 s late) dropped it, and a daily schedule lost its day.
      missedExecutionTolerance: Number.MAX_SAFE_INTEGER,
    });
    this.task.on('execution:overlap', () => {
      options.log.info('tick skipped: the previous run of this worker is still going');
      options.onOverlap?.();
    });
    this.task.on('execution:missed', (context) => {
      options.log.warn({ dueAt: context.date.toISOString() }, 'tick missed: the process could not run it before the next one was due');
      options.onMissed?.();
    });
  }

  start(): void {
    void this.task.start();
  }

  /** The next tick, or null when stopped. */
  nextRun(): Date | null {
    return this.task.getNextRun();
  }

  /** Logs when the next run is due, in UTC and in the schedule's zone. */
  logNextRun(): void {
    const next = this.nextRun();
    if (!next) return;
    this.options.log.info(
      { nextRun: next.toISOString(), cron: this.options.cron, timezone: this.options.timezone },
      `next run at ${formatInZone(next, this.options.timezone)}`,
    );
  }

  /** No further ticks; a tick in progress is not affected. */
  stop(): void {
    void this.task.destroy();
  }
}
