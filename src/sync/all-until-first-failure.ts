import pLimit from 'p-limit';

/**
 * Runs `task` for every item, at most `concurrency` at once, like Promise.all, except that once
 * one fails no other starts, `onFailure` runs (to stop those under way), and every task is
 * awaited before the first failure is thrown: none outlives the run.
 */
export async function allUntilFirstFailure<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
  onFailure: (err: unknown) => void = () => undefined,
): Promise<R[]> {
  const limit = pLimit(concurrency);
  let failure: { error: unknown } | undefined;
  const results = new Array<R>(items.length);
  await Promise.allSettled(
    items.map((item, index) =>
      limit(async () => {
        if (failure) return;
        try {
          results[index] = await task(item, index);
        } catch (err) {
          // Another task may have failed while this one awaited; TS keeps the narrowing from before the await.
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          if (!failure) {
            failure = { error: err };
            onFailure(err);
          }
        }
      }),
    ),
  );
  if (failure) throw failure.error;
  return results;
}
