import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';
import { registerSite } from './with-sync-lock.js';

/** How long claimed ticks are kept: long enough to read who ran what, short enough to stay small. */
const KEEP_TICKS = '30 days';

/**
 * Claims `site`'s tick due at `dueAt` for `worker`; true when this call claimed it, false when
 * another `schedule` process sharing the database already had. Every process with the same
 * schedule names a tick by the same time, so each due tick runs on at most one of them (a claim
 * is kept if its worker dies before the run: the next tick syncs the site). Also forgets the
 * site's ticks older than KEEP_TICKS.
 */
export async function claimScheduledTick(pool: pg.Pool, site: string, dueAt: Date, worker: string): Promise<boolean> {
  // A tick names its site (a foreign key): the first tick of a new site adds it.
  await registerSite(pool, site);
  const claimed = await runCompiled(
    pool,
    queryBuilder
      .insertInto('cpq.scheduled_ticks')
      .values({ site, due_at: dueAt, claimed_by: worker })
      .onConflict((oc) => oc.columns(['site', 'due_at']).doNothing())
      .returning('due_at')
      .compile(),
  );
  await runCompiled(
    pool,
    queryBuilder
      .deleteFrom('cpq.scheduled_ticks')
      .where('site', '=', site)
      .where('due_at', '<', sql<Date>`now() - ${KEEP_TICKS}::interval`)
      .compile(),
  );
  return claimed.length === 1;
}
