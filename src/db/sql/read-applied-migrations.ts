import { sql } from 'kysely';
import { errorCode } from '../../errors.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

const UNDEFINED_FUNCTION = '42883';
const INVALID_SCHEMA = '3F000';
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * The names of the migrations applied to this database, in name order, or null when it has none
 * (a database no run has touched). Only reads: Kysely's own Migrator would create its tables
 * first. Through cpq.applied_migrations() (migration 0012), which any role may call, the
 * cpq_reader role included; a schema older than that is read from Kysely's table, when this role
 * may (null when not: it cannot tell).
 */
export async function readAppliedMigrations(on: Queryable): Promise<string[] | null> {
  try {
    const rows = await runCompiled(on, sql<{ name: string }>`SELECT name FROM cpq.applied_migrations() AS name ORDER BY name`.compile(queryBuilder));
    return rows.map((r) => r.name);
  } catch (err) {
    const code = errorCode(err);
    if (code !== UNDEFINED_FUNCTION && code !== INVALID_SCHEMA) throw err;
  }
  const present = await runCompiled(on, sql<{ present: boolean }>`SELECT to_regclass('cpq.kysely_migration') IS NOT NULL AS present`.compile(queryBuilder));
  if (!present[0]?.present) return null;
  try {
    const rows = await runCompiled(on, sql<{ name: string }>`SELECT name FROM cpq.kysely_migration ORDER BY name`.compile(queryBuilder));
    return rows.map((r) => r.name);
  } catch (err) {
    if (errorCode(err) === INSUFFICIENT_PRIVILEGE) return null;
    throw err;
  }
}
