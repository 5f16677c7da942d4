import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The sites of cpq.sites that `named` leaves out (removed from the sites file, renamed, or another
 * deployment's) whose personal fields HISTORY_RETENTION has not redacted up to `before`: those a
 * run of a named site redacts for them (src/sync/redact-unnamed-sites.ts).
 */
export async function readUnnamedSitesDue(on: Queryable, named: readonly string[], before: Date): Promise<string[]> {
  const rows = await runCompiled(
    on,
    sql<{ name: string }>`SELECT s.name FROM cpq.sites s LEFT JOIN cpq.retention_state r ON r.site = s.name
      WHERE s.name <> ALL (${named}::text[]) AND (r.redacted_before IS NULL OR r.redacted_before < ${before}::timestamptz)
      ORDER BY s.name`.compile(queryBuilder),
  );
  return rows.map((r) => r.name);
}
