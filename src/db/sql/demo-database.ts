import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * `cpq-sync demo` marks the database it writes (a comment on the cpq schema), so that it can tell
 * its own sites from a real setup's sites of the same names (a production database whose sites
 * are called emea and americas) when DATABASE_URL names a database.
 */
const DEMO_MARK = 'cpq-sync demo: simulated sites only';

/** Whether the demo marked this database (false when it has no cpq schema). */
export async function readIsDemoDatabase(on: Queryable): Promise<boolean> {
  const rows = await runCompiled(
    on,
    sql<{ marked: boolean }>`SELECT coalesce(obj_description(oid, 'pg_namespace') = ${DEMO_MARK}, false) AS marked
      FROM pg_namespace WHERE nspname = 'cpq'`.compile(queryBuilder),
  );
  return rows[0]?.marked ?? false;
}

/** Whether the database has a cpq schema with any table or view in it (written by some release). */
export async function readHoldsCpqTables(on: Queryable): Promise<boolean> {
  const rows = await runCompiled(
    on,
    sql<{ holds: boolean }>`SELECT EXISTS (
      SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cpq' AND c.relkind IN ('r', 'p', 'v')
    ) AS holds`.compile(queryBuilder),
  );
  return rows[0]?.holds ?? false;
}

/** Marks the database as the demo's, creating the cpq schema if there is none yet. */
export async function markDemoDatabase(on: Queryable): Promise<void> {
  await runCompiled(on, sql`CREATE SCHEMA IF NOT EXISTS cpq`.compile(queryBuilder));
  // COMMENT takes no parameters: the mark is a constant.
  await runCompiled(on, sql`COMMENT ON SCHEMA cpq IS ${sql.lit(DEMO_MARK)}`.compile(queryBuilder));
}
