import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** The database's clock as a run of `site` sees it at its start. */
export interface RunClock {
  /** The database's time, read at the run's start. */
  now: Date;
  /** The effective time of the site's last successful run (its versions' valid_from); null when none has. */
  lastEffectiveAt: Date | null;
}

/**
 * What a run needs of the database's clock at its start: the floor of its effective time (after
 * the site's last run: valid_from follows commit order whatever the workers' clocks), and the
 * database's time, which readsFrom judges SYNC_FULL_EVERY by. The effective time itself is
 * read when the run's first write begins (readDatabaseNow). Workers on several machines write one
 * history: by their own clocks, one an hour ahead would date its versions after a later run's, and
 * a version would end before it began. The database's clock is the one they share.
 */
export async function readRunClock(on: Queryable, site: string): Promise<RunClock> {
  const rows = await runCompiled(
    on,
    sql<{ now: Date; last: Date | null }>`SELECT clock_timestamp() AS now,
      (SELECT max(effective_at) FROM cpq.sync_runs WHERE site = ${site} AND status = 'succeeded') AS last`.compile(queryBuilder),
  );
  return { now: rows[0]!.now, lastEffectiveAt: rows[0]!.last };
}
