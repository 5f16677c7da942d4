import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** When the last successful run finished; null when none has. */
export async function readLastSuccess(on: Queryable): Promise<Date | null> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_runs')
      .select((eb) => eb.fn.max('finished_at').as('at'))
      .where('status', '=', 'succeeded')
      .compile(),
  );
  return rows[0]?.at ?? null;
}
