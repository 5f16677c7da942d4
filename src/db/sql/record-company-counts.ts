import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** What a run read of one company. */
export interface CompanyRead {
  company: string;
  mode: 'full' | 'incremental';
  /** CPQ's totalResults on the first page; null when CPQ did not send it. */
  totalResults: number | null;
  received: number;
  /** cpq.login_checksum of the logins received (src/sync/login-checksum.ts). */
  receivedChecksum: string;
}

/**
 * Records, in the run's transaction and after its merge, each company's read next to the users the
 * database holds active (count and login checksum): cpq.run_company_counts. A full read, or a
 * company without an earlier record, counts them in cpq.users; an incremental read carries the
 * previous record forward by this run's inserts, restores and deletions in the change log, which
 * costs what the run changed rather than a scan of every user.
 */
export async function recordCompanyCounts(client: Queryable, site: string, runId: string, reads: readonly CompanyRead[]): Promise<void> {
  if (reads.length === 0) return;
  const rows = JSON.stringify(
    reads.map((r) => ({ company: r.company, mode: r.mode, total_results: r.totalResults, received: r.received, received_checksum: r.receivedChecksum })),
  );
  await runCompiled(
    client,
    sql`WITH r AS (
          SELECT * FROM jsonb_to_recordset(${rows}::jsonb) AS r(company text, mode text, total_results bigint, received bigint, received_checksum text)
        ), previous AS (
          SELECT DISTINCT ON (k.company_login) k.company_login, k.active_rows, k.active_checksum
          FROM cpq.run_company_counts k WHERE k.site = ${site} AND k.company_login IN (SELECT company FROM r)
          ORDER BY k.company_login, k.run_id DESC
        ), source AS (
          SELECT r.*, CASE WHEN r.mode = 'full' OR p.company_login IS NULL THEN 'table' ELSE 'change_log' END AS active_source,
                 p.active_rows AS previous_rows, p.active_checksum AS previous_checksum
          FROM r LEFT JOIN previous p ON p.company_login = r.company
        ), changed AS (
          -- One pass over the run's change log, and none when no company needs it: a full first
          -- load logs every user and reads none of it here.
          SELECT c.company_login, sum(CASE c.change WHEN 'delete' THEN -1 ELSE 1 END) AS n,
                 sum(CASE c.change WHEN 'delete' THEN -1 ELSE 1 END * cpq.login_hash(c.login)::numeric) AS h
          FROM cpq.user_change_log c
          WHERE EXISTS (SELECT 1 FROM source WHERE active_source = 'change_log')
            AND c.run_id = ${runId}::bigint AND c.change IN ('insert', 'restore', 'delete')
            AND c.company_login IN (SELECT company FROM source WHERE active_source = 'change_log')
          GROUP BY c.company_login
        )
        INSERT INTO cpq.run_company_counts
          (run_id, site, company_login, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
        SELECT ${runId}::bigint, ${site}, s.company, s.mode, s.total_results, s.received, s.received_checksum,
               CASE s.active_source WHEN 'table' THEN coalesce(t.n, 0) ELSE s.previous_rows + coalesce(ch.n, 0) END,
               CASE s.active_source WHEN 'table' THEN cpq.login_checksum(t.h)
                    ELSE cpq.login_checksum(('x' || s.previous_checksum)::bit(64)::bigint + coalesce(ch.h, 0)) END,
               s.active_source
        FROM source s
        -- Each company counted on its own, along its (site, company_login, login) index: a GROUP BY
        -- over every user sorted them first, on disk at a million users.
        CROSS JOIN LATERAL (
          SELECT count(*) AS n, sum(cpq.login_hash(u.login)) AS h FROM cpq.users u
          WHERE s.active_source = 'table' AND u.site = ${site} AND u.company_login = s.company AND u.deleted_at IS NULL
        ) t
        LEFT JOIN changed ch ON ch.company_login = s.company`.compile(queryBuilder),
  );
}
