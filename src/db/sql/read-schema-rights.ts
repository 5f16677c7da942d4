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
