import { isoUtcText } from '../as-text.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** Every stream of `site`: its cursor and when it was last read, by stream name, times as ISO text (with their microseconds). */
export async function readStreamStates(on: Queryable, site: string) {
  return runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_state')
      .select((eb) => [
        'stream',
        isoUtcText(eb.ref('cursor')).as('cursor'),
        isoUtcText(eb.ref('last_full_sync_at')).as('last_full_sync_at'),
        'last_run_id',
        isoUtcText(eb.ref('updated_at')).as('updated_at'),
      ])
      .where('site', '=', site)
      .orderBy('stream')
      .compile(),
  );
}
