import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gate } from '../helpers/cli-process.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { casesSettled } from './running-cases.js';

/*
 * fast-check's time limit counts from the start of fc.assert and is checked again before each
 * case: it must not run out before the second case starts, or that case never runs. A loaded CI
 * can stall the process for seconds, so the limit is generous; the case it gives up on waits for
 * the test to let it go (a gate), not for a sleep that must outlast the limit.
 */
const TIME_LIMIT_MS = 5_000;

/** Each test's timeout: CI's default (vitest.config.ts), an hour under FC_NUM_RUNS as for every property. */
const TIMEOUT = propertyTimeout(120_000);

/**
 * The shared settings (FC_NUM_RUNS, FC_SEED), with the time limit these tests are about in place
 * of runs()' own: that one is the test timeout's and fails a deep run it interrupts, where here an
 * interruption is the point. No FC_PATH: the cases ignore their values, and a path would replay one.
 */
function givingUpAfterTimeLimit(ci: number): fc.Parameters<unknown> {
  return { ...runs(ci, TIMEOUT), path: undefined, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] };
}

/** fc.assert with a bound on its own wait: a time limit that never interrupts fails the test (not the test timeout). */
async function assertWithin(run: Promise<void>, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`fc.assert still waiting after 60 s: ${what}`)), 60_000);
  });
  try {
    await Promise.race([run, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A turn of the event loop, as a case's clean-up may take: without one, a case let go would end
 * within the microtasks of opening its gate, and a casesSettled that did not wait would pass.
 */
const turn = () => new Promise((r) => setImmediate(r));

/*
 * The plugin test/setup/property-cases.ts installs for every property (no wrapper in the test):
 * casesSettled waits for a case fast-check's time limit gave up on.
 */
describe('a case the time limit gave up on', { timeout: TIMEOUT }, () => {
  it('goes on after fc.assert returns, and casesSettled waits for its end (clean-up included)', async () => {
    let started = 0;
    let ended = 0;
    const letGo = gate();
    try {
      await assertWithin(
        fc.assert(
          fc.asyncProperty(fc.nat(), async () => {
            started++;
            try {
              // The first case is quick (so fast-check counts one run); the second lasts until let go, past the limit.
              if (started > 1) await letGo.promise;
            } finally {
              await turn();
              ended++;
            }
          }),
          givingUpAfterTimeLimit(5),
        ),
        'the time limit did not give up on the second case',
      );
      // fast-check stopped waiting: the second case it started is still running.
      expect(started).toBe(2);
      expect(ended).toBe(1);
    } finally {
      letGo.open();
    }
    await casesSettled();
    expect(ended).toBe(2);
  });

  it('one that fails after fast-check gave up on it: casesSettled still returns, its failure unreported', async () => {
    let started = 0;
    let failed = false;
    const letGo = gate();
    try {
      await assertWithin(
        fc.assert(
          fc.asyncProperty(fc.nat(), async () => {
            started++;
            if (started === 1) return;
            await letGo.promise;
            await turn();
            failed = true;
            throw new Error('planted failure after the time limit');
          }),
          givingUpAfterTimeLimit(5),
        ),
        'the time limit did not give up on the second case',
      );
      expect(failed).toBe(false);
    } finally {
      letGo.open();
    }
    await expect(casesSettled()).resolves.toBeUndefined();
    expect(failed).toBe(true);
  });

  it('a synchronous property still runs synchronously, and its failure is still reported', () => {
    expect(() =>
      fc.assert(
        fc.property(fc.nat(), (n) => n >= 0),
        runs(100, TIMEOUT),
      ),
    ).not.toThrow();
    expect(() =>
      fc.assert(
        fc.property(fc.nat(), (n) => n < 0),
        runs(3, TIMEOUT),
      ),
    ).toThrow(/Property failed/);
  });
});
