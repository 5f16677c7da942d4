import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * The names of the migrations applied to this database, in name order, or null when it has no
 * migration table yet (a database no run has touched). Only reads: Kysely's own Migrator would
 * create its tables first.
 */
export async function readAppliedMigrations(on: Queryable): Promise<string[] | null> {
  const present = await runCompiled(on, sql<{ present: boolean }>`SELECT to_regclass('cpq.kysely_migration') IS NOT NULL AS present`.compile(queryBuilder));
  if (!present[0]?.present) return null;
  const rows = await runCompiled(on, sql<{ name: string }>`SELECT name FROM cpq.kysely_migration ORDER BY name`.compile(queryBuilder));
  return rows.map((r) => r.name);
}
