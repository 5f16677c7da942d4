import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** Whether schema cpq exists, and whether this role may make it (the database's CREATE), its tables (the schema's CREATE), or write them. */
export interface SchemaRights {
  role: string;
  database: string;
  schemaExists: boolean;
  mayCreateSchema: boolean;
  /** null when there is no schema. */
  mayCreateInSchema: boolean | null;
  /** Whether it may write the users table; null when there is none. */
  mayWriteUsers: boolean | null;
}

export async function readSchemaRights(on: Queryable): Promise<SchemaRights> {
  const [row] = await runCompiled(
    on,
    sql<SchemaRights>`
      SELECT current_user::text AS role, current_database()::text AS database,
        to_regnamespace('cpq') IS NOT NULL AS "schemaExists",
        has_database_privilege(current_database(), 'CREATE') AS "mayCreateSchema",
        CASE WHEN to_regnamespace('cpq') IS NOT NULL THEN has_schema_privilege('cpq', 'CREATE') END AS "mayCreateInSchema",
        CASE WHEN to_regclass('cpq.users') IS NOT NULL THEN has_table_privilege('cpq.users', 'INSERT') AND has_table_privilege('cpq.users', 'UPDATE') END AS "mayWriteUsers"`.compile(
      queryBuilder,
    ),
  );
  return row!;
}

/** Who owns schema cpq, and whether this role may use it (its USAGE): what a role never given cpq_reader lacks. */
export interface SchemaUsage {
  role: string;
  owner: string;
  mayUse: boolean;
  /** Whether role cpq_reader exists (migration 0003 makes it only when the migrating role may create roles). */
  readerExists: boolean;
  /** Whether this role has cpq_reader's privileges (a member that inherits them). */
  isReader: boolean;
}

/**
 * SchemaUsage, or undefined when there is no schema cpq. From the catalogs alone, which any role
 * reads: every name in cpq (cpq.applied_migrations(), to_regclass('cpq.users')) is refused to a
 * role without USAGE.
 */
export async function readSchemaUsage(on: Queryable): Promise<SchemaUsage | undefined> {
  const [row] = await runCompiled(
    on,
    sql<SchemaUsage>`
      SELECT current_user::text AS role, pg_get_userbyid(n.nspowner)::text AS owner,
        has_schema_privilege(n.oid, 'USAGE') AS "mayUse",
        to_regrole('cpq_reader') IS NOT NULL AS "readerExists",
        CASE WHEN to_regrole('cpq_reader') IS NOT NULL THEN pg_has_role('cpq_reader', 'USAGE') ELSE false END AS "isReader"
      FROM pg_namespace n WHERE n.nspname = 'cpq'`.compile(queryBuilder),
  );
  return row;
}
