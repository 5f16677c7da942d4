import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * How many change rows the committed runs after the watermark `after` (of `sites`, or of every
 * site) logged: each run counts its inserts, updates, deletions and restores as it logs them, a
 * row each (cpq.sync_runs), and the change log keeps its rows for good (a retention redacts them).
 * A row per run, where a count of the change log would read what an export of it reads.
 */
export async function countChangesLoggedAfter(on: Queryable, after: string, sites: readonly string[]): Promise<number> {
  const [row] = await runCompiled(
    on,
    sql<{ n: string }>`SELECT coalesce(sum(users_inserted + users_updated + users_deleted + users_restored), 0)::text AS n
      FROM cpq.sync_runs WHERE commit_seq > ${after} AND (cardinality(${sites}::text[]) = 0 OR site = ANY(${sites}::text[]))`.compile(queryBuilder),
  );
  return Number(row!.n);
}
