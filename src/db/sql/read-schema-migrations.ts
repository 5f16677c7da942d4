import { sql } from 'kysely';
import { errorCode } from '../../errors.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

const UNDEFINED_FUNCTION = '42883';
const INVALID_SCHEMA = '3F000';

/**
 * The migrations applied to the database, through cpq.applied_migrations() (migration 0012), which
 * any role may call; null when the database predates it (or has no cpq schema at all).
 */
export async function readSchemaMigrations(on: Queryable): Promise<string[] | null> {
  try {
    const rows = await runCompiled(on, sql<{ name: string }>`SELECT name FROM cpq.applied_migrations() AS name`.compile(queryBuilder));
    return rows.map((r) => r.name);
  } catch (err) {
    const code = errorCode(err);
    if (code === UNDEFINED_FUNCTION || code === INVALID_SCHEMA) return null;
    throw err;
  }
}
