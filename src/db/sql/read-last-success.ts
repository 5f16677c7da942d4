import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** When the last successful run of `site` finished; null when none has. */
export async function readLastSuccess(on: Queryable, site: string): Promise<Date | null> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_runs')
      .select((eb) => eb.fn.max('finished_at').as('at'))
      .where('site', '=', site)
      .where('status', '=', 'succeeded')
      .compile(),
  );
  return rows[0]?.at ?? null;
}
