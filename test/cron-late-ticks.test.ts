import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { CronSchedule } from '../src/worker/cron-schedule.js';

/*
 * A tick the process cannot run on time (a paused VM, a blocked event loop) is run late, named
 * by when it was due; node-cron's default dropped any tick more than a second late, and a daily
 * schedule lost its day without a run or a count (review AB). One a later tick overtook is
 * counted as missed.
 */

/** Keeps the event loop busy for `ms`: no timer fires meanwhile. */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

/** Resolves just after the next whole second that is a multiple of `every` seconds. */
async function justAfterSlot(every: number): Promise<void> {
  const now = Date.now();
  const next = Math.ceil((now + 1) / (every * 1000)) * every * 1000;
  await new Promise((resolve) => setTimeout(resolve, next - now + 50));
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A schedule every `everySeconds`, started just after one of its slots; `meanwhile` runs, then it
 * stops. Returns the ticks it ran (when due, when run) and how many it counted as missed.
 */
async function scheduleAround(everySeconds: number, meanwhile: () => Promise<void>): Promise<{ ran: { dueAt: number; at: number }[]; missed: number }> {
  const ran: { dueAt: number; at: number }[] = [];
  let missed = 0;
  const schedule = new CronSchedule({
    cron: `*/${everySeconds} * * * * *`,
    timezone: 'UTC',
    log: pino({ level: 'silent' }),
    onTick: (dueAt) => {
      ran.push({ dueAt: dueAt.getTime(), at: Date.now() });
      return Promise.resolve();
    },
    onMissed: () => missed++,
  });
  try {
    await justAfterSlot(everySeconds);
    schedule.start();
    await meanwhile();
  } finally {
    schedule.stop();
  }
  return { ran, missed };
}

describe('a tick the process could not run on time', () => {
  it('runs late, named by when it was due, while the next is not due yet', async () => {
    const { ran, missed } = await scheduleAround(6, async () => {
      // Blocked from 2 s before the next slot to 2.6 s after it: the slot's timer fires that late
      // (node-cron counts whole seconds: 2 s, beyond its default tolerance of 1 s).
      await pause(3900);
      block(4600);
      await pause(500);
    });
    expect(missed).toBe(0);
    expect(ran).toHaveLength(1);
    expect(ran[0]!.dueAt % 6000).toBe(0);
    expect(ran[0]!.at - ran[0]!.dueAt).toBeGreaterThan(2000);
  });

  it('one overtaken by a later tick is counted as missed, and the later one runs', async () => {
    const { ran, missed } = await scheduleAround(2, async () => {
      await pause(200);
      // Blocked across two slots (at about +1.75 s and +3.75 s): the first is overtaken.
      block(4600);
      await pause(300);
    });
    expect(missed).toBeGreaterThanOrEqual(1);
    expect(ran.length).toBeGreaterThanOrEqual(1);
  });
});
