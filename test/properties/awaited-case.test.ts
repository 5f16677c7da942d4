import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { awaitedCase, caseSettled } from './arbitraries.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a case the time limit gave up on', () => {
  it('goes on after fc.assert returns, and caseSettled waits for its end (clean-up included)', async () => {
    let started = 0;
    let ended = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        awaitedCase(async () => {
          started++;
          try {
            // The first case is quick (so fast-check counts one run); the second outlasts the limit.
            if (started > 1) await sleep(1500);
          } finally {
            ended++;
          }
        }),
      ),
      { numRuns: 5, plugins: [fc.interruptAfterTimeLimit(500)] },
    );
    // fast-check stopped waiting: the second case it started is still running.
    expect(started).toBe(2);
    expect(ended).toBe(1);
    await caseSettled();
    expect(ended).toBe(2);
  });

  it('one that fails after fast-check gave up on it: caseSettled still returns, its failure unreported', async () => {
    let started = 0;
    let failed = false;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        awaitedCase(async () => {
          started++;
          if (started === 1) return;
          await sleep(1500);
          failed = true;
          throw new Error('planted failure after the time limit');
        }),
      ),
      { numRuns: 5, plugins: [fc.interruptAfterTimeLimit(500)] },
    );
    expect(failed).toBe(false);
    await expect(caseSettled()).resolves.toBeUndefined();
    expect(failed).toBe(true);
  });
});
