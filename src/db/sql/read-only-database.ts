import { sql } from 'kysely';
import type { Db } from '../database.js';

/** Whether this role's sessions of the database may write: the server in recovery, or transactions read-only from the start. */
export interface WriteAccess {
  role: string;
  /** A hot standby (pg_is_in_recovery): nothing can be written there. */
  inRecovery: boolean;
  /** A new transaction is read-only (default_transaction_read_only, set on the database, the role or the connection's options). */
  readOnly: boolean;
}

/** Read in a transaction of its own, which starts as a run's would. */
export async function readWriteAccess(db: Db): Promise<WriteAccess> {
  const { rows } = await sql<WriteAccess>`SELECT current_user::text AS role, pg_catalog.pg_is_in_recovery() AS "inRecovery",
    pg_catalog.current_setting('transaction_read_only') = 'on' AS "readOnly"`.execute(db);
  return rows[0]!;
}

/**
 * Why nothing can be written, or undefined when it can: every command that writes failed at its
 * first write with Postgres's "cannot execute UPDATE in a read-only transaction", which named
 * neither a standby given for the primary nor a DBA's default_transaction_read_only, and `check`
 * passed. Not overridden with a session setting: a DBA who made the role read-only meant it.
 */
export function writeAccessProblem(access: WriteAccess): { problem: string; fix: string } | undefined {
  if (access.inRecovery) {
    return {
      problem: 'the database is read-only: the server DATABASE_URL names is a standby in recovery (a read replica), so nothing can be written',
      fix: 'point DATABASE_URL at the primary',
    };
  }
  if (access.readOnly) {
    return {
      problem: `the database is read-only: sessions of role ${access.role} start read-only (default_transaction_read_only is on for the database, the role or DATABASE_URL's options), so nothing can be written`,
      fix: `turn it off for this role (ALTER ROLE ${access.role} SET default_transaction_read_only = off) or its database, or point DATABASE_URL at a database the runs may write`,
    };
  }
  return undefined;
}
