import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** What one committed run did to one company's users. */
export interface CompanyRunCounts {
  company: string;
  inserted: number;
  updated: number;
  deleted: number;
  restored: number;
  unchanged: number;
}

/**
 * Per company, what a committed run changed, for the summary a terminal shows after `run`: its
 * change rows by kind, and the users it read and found unchanged. The run merges an unchanged user
 * by moving only its last_synced_at, to the time of the run's transaction, which began after the
 * run row was created (started_at), and runs of one site never overlap (its sync lock): so those
 * are the present users of the run's site synced at or after started_at whose last change is not
 * this run's.
 */
export async function countRunChangesByCompany(on: Queryable, runId: string): Promise<CompanyRunCounts[]> {
  const rows = await runCompiled(
    on,
    sql<{ company: string; inserted: string; updated: string; deleted: string; restored: string; unchanged: string }>`
     WITH changes AS (
       SELECT company_login AS company,
              count(*) FILTER (WHERE change = 'insert') AS inserted,
              count(*) FILTER (WHERE change = 'update') AS updated,
              count(*) FILTER (WHERE change = 'delete') AS deleted,
              count(*) FILTER (WHERE change = 'restore') AS restored
       FROM cpq.user_change_log WHERE run_id = ${runId}::bigint GROUP BY company_login
     ), same AS (
       SELECT u.company_login AS company, count(*) AS unchanged
       FROM cpq.users u JOIN cpq.sync_runs r ON r.id = ${runId}::bigint AND u.site = r.site
       WHERE u.deleted_at IS NULL AND u.last_changed_run_id IS DISTINCT FROM r.id AND u.last_synced_at >= r.started_at
       GROUP BY u.company_login
     )
     SELECT coalesce(c.company, s.company) AS company,
            coalesce(c.inserted, 0) AS inserted, coalesce(c.updated, 0) AS updated, coalesce(c.deleted, 0) AS deleted,
            coalesce(c.restored, 0) AS restored, coalesce(s.unchanged, 0) AS unchanged
     FROM changes c FULL JOIN same s ON s.company = c.company
     ORDER BY 1`.compile(queryBuilder),
  );
  return rows.map((r) => ({
    company: r.company,
    inserted: Number(r.inserted),
    updated: Number(r.updated),
    deleted: Number(r.deleted),
    restored: Number(r.restored),
    unchanged: Number(r.unchanged),
  }));
}
