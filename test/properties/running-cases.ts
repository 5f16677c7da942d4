import type fc from 'fast-check';

/*
 * Cases of an async property that may still run. `runs`' time limit (fc.interruptAfterTimeLimit)
 * makes fast-check stop waiting for a case, shrinking included, and report; but the case itself
 * goes on. One left running acts on whatever the next test set up: in chaos-process its clean-up
 * killed the next test's processes, and a property's afterAll that drops its database would meet
 * it there. test/setup/property-cases.ts installs `trackRunningCases` for every property of every
 * test file and waits for `casesSettled` after each test (after the file's own afterEach hooks:
 * a clean-up there may still meet such a case; the next test never does).
 */
const running = new Set<Promise<unknown>>();

/**
 * A fast-check plugin that keeps each async case's run until it ends. Installed in the 'post'
 * position, it wraps the predicate inside the time limit's race, so it sees the case itself.
 */
export const trackRunningCases: fc.UniversalPlugin = () => ({
  decorateRun: (nestedRun) => (value) => {
    const out = nestedRun(value);
    // A synchronous property's run returns its outcome, which must stay synchronous.
    if (out === null || typeof out !== 'object' || !('then' in out)) return out;
    const settled: Promise<unknown> = Promise.resolve(out).then(
      () => running.delete(settled),
      () => running.delete(settled),
    );
    running.add(settled);
    return out;
  },
});

/** Resolves once no case of an async property runs (one fast-check gave up on included). */
export async function casesSettled(): Promise<void> {
  while (running.size > 0) await Promise.all(running);
}
