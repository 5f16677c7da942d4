import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** The name of every site that has run against this database, in name order. */
export async function readSiteNames(on: Queryable): Promise<string[]> {
  // cpq.sites gains a site when its run takes the lock; sync_runs also names the runs written by
  // hand or by a release before sites.
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sites')
      .select('name')
      .union((eb) => eb.selectFrom('cpq.sync_runs').select('site as name'))
      .orderBy('name')
      .compile(),
  );
  return rows.map((r) => r.name);
}
