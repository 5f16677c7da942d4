import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** The commit_seq of the last run that committed, as text ('0' when none has): the change log's watermark. */
export async function readLastWatermark(on: Queryable): Promise<string> {
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_runs')
      // As text: commit_seq is an int8, and the watermark is compared as a BigInt, never a double.
      .select((eb) => sql<string>`coalesce(${eb.fn.max('commit_seq')}, 0)::text`.as('w'))
      .compile(),
  );
  return rows[0]!.w;
}
