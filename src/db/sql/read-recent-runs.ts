import { sql } from 'kysely';
import { isoUtcText } from '../as-text.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The last `limit` runs of `site`, newest first, as the database holds them: times as ISO text (with their
 * microseconds), jsonb as its text; `seconds` the run's duration, up to now for a run still going,
 * null for an abandoned one (when it ended is not known). `progress`: whether the table has
 * its progress columns (syncRunsHaveProgress); without them, every run reads none.
 */
export async function readRecentRuns(on: Queryable, site: string, limit: number, progress: boolean) {
  return runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sync_runs')
      .select((eb) => [
        'id',
        isoUtcText(eb.ref('started_at')).as('started_at'),
        isoUtcText(eb.ref('finished_at')).as('finished_at'),
        sql<number | null>`CASE WHEN status = 'abandoned' AND finished_at IS NULL THEN NULL
                                ELSE extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 END`.as('seconds'),
        'status',
        'mode',
        'pages',
        'users_seen',
        'users_inserted',
        'users_updated',
        'users_unchanged',
        'users_deleted',
        'users_restored',
        'http_requests',
        // As text: node-postgres would parse jsonb with JSON.parse.
        sql<string>`http_retries::text`.as('http_retries'),
        sql<string>`streams::text`.as('streams'),
        sql<string>`warnings::text`.as('warnings'),
        'error',
        // Named only when they exist: a newer release's status against a database of the release
        // before (its workers not upgraded yet) reads null, not an error.
        (progress ? sql<string | null>`NULLIF(progress, 'null'::jsonb)::text` : sql<string | null>`NULL::text`).as('progress'),
        isoUtcText(progress ? eb.ref('progress_at') : sql<Date | null>`NULL::timestamptz`).as('progress_at'),
      ])
      .where('site', '=', site)
      .orderBy('id', 'desc')
      .limit(limit)
      .compile(),
  );
}
