import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * `count` new ids from the users' identity sequence. Sequence values are not transactional: ids
 * taken by a run that fails are a gap in the ids, as a failed insert leaves.
 */
export async function reserveUserIds(on: Queryable, count: number): Promise<number[]> {
  // The sql tag, not the builder: nextval over generate_series has no builder form.
  const rows = await runCompiled(
    on,
    sql<{ ids: string[] }>`SELECT array_agg(nextval(pg_get_serial_sequence('cpq.users', 'id'))) AS ids FROM generate_series(1, ${count}::int)`.compile(
      queryBuilder,
    ),
  );
  return rows[0]!.ids.map(Number);
}
