import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import { SITE_LOCK_CLASS } from '../site-lock-key.js';

/**
 * The sites of cpq.sites that `named` leaves out (removed from the sites file, renamed, or
 * another deployment's) whose sync lock the current transaction could take, holding it until the
 * transaction ends: none of their runs, nor a `forget`, is going on or can start meanwhile. A site
 * whose lock is held is left out.
 */
export async function lockUnnamedSites(client: Queryable, named: readonly string[]): Promise<string[]> {
  const rows = await runCompiled(
    client,
    // OFFSET 0 keeps the name test before the lock: a lock taken on a named site would hold its
    // next run off until this transaction ends.
    sql<{ name: string }>`SELECT s.name FROM (SELECT name, lock_id FROM cpq.sites WHERE name <> ALL (${named}::text[]) OFFSET 0) s
      WHERE pg_try_advisory_xact_lock(${SITE_LOCK_CLASS}, s.lock_id) ORDER BY s.name`.compile(queryBuilder),
  );
  return rows.map((r) => r.name);
}
