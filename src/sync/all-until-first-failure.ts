/**
 * Runs `task` for every item, at most `concurrency` at once, like Promise.all, except that once
 * one fails no other starts, `onFailure` runs (to stop those under way), and every task is
 * awaited before the first failure is thrown: none outlives the run. Items are taken in order by
 * `concurrency` workers, not queued each at once: a queued task costs ~770 bytes of heap before it
 * starts, and a company list within CPQ_MAX_PAGE_BYTES (450,000 companies at 36 bytes each) queued
 * whole took more than the image's 192 MB heap before its first company was read.
 */
export async function allUntilFirstFailure<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
  onFailure: (err: unknown) => void = () => undefined,
): Promise<R[]> {
  let failure: { error: unknown } | undefined;
  let next = 0;
  const results = new Array<R>(items.length);
  const worker = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index]!, index);
      } catch (err) {
        // Another task may have failed while this one awaited; TS keeps the narrowing from before the await.
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
        if (!failure) {
          failure = { error: err };
          onFailure(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure) throw failure.error;
  return results;
}
