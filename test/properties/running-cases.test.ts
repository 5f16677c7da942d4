import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { casesSettled } from './running-cases.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/*
 * The plugin test/setup/property-cases.ts installs for every property (no wrapper in the test):
 * casesSettled waits for a case fast-check's time limit gave up on.
 */
describe('a case the time limit gave up on', () => {
  it('goes on after fc.assert returns, and casesSettled waits for its end (clean-up included)', async () => {
    let started = 0;
    let ended = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(), async () => {
        started++;
        try {
          // The first case is quick (so fast-check counts one run); the second outlasts the limit.
          if (started > 1) await sleep(1500);
        } finally {
          ended++;
        }
      }),
      { numRuns: 5, plugins: [fc.interruptAfterTimeLimit(500)] },
    );
    // fast-check stopped waiting: the second case it started is still running.
    expect(started).toBe(2);
    expect(ended).toBe(1);
    await casesSettled();
    expect(ended).toBe(2);
  });

  it('one that fails after fast-check gave up on it: casesSettled still returns, its failure unreported', async () => {
    let started = 0;
    let failed = false;
    await fc.assert(
      fc.asyncProperty(fc.nat(), async () => {
        started++;
        if (started === 1) return;
        await sleep(1500);
        failed = true;
        throw new Error('planted failure after the time limit');
      }),
      { numRuns: 5, plugins: [fc.interruptAfterTimeLimit(500)] },
    );
    expect(failed).toBe(false);
    await expect(casesSettled()).resolves.toBeUndefined();
    expect(failed).toBe(true);
  });

  it('a synchronous property still runs synchronously, and its failure is still reported', () => {
    expect(() => fc.assert(fc.property(fc.nat(), (n) => n >= 0))).not.toThrow();
    expect(() =>
      fc.assert(
        fc.property(fc.nat(), (n) => n < 0),
        { numRuns: 3 },
      ),
    ).toThrow(/Property failed/);
  });
});
