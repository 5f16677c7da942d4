import { sql } from 'kysely';
import type { Db } from '../database.js';

/** The database's character set (server_encoding): UTF8, LATIN1, SQL_ASCII... */
export async function readDatabaseEncoding(db: Db): Promise<string> {
  const { rows } = await sql<{ encoding: string }>`SELECT current_setting('server_encoding') AS encoding`.execute(db);
  return rows[0]!.encoding;
}

/**
 * Why a database of `encoding` cannot hold what CPQ sends, or undefined when it can. Names are
 * any Unicode: in LATIN1 the first name outside it fails a run months later, naming no user.
 * UTF8 holds them; so does SQL_ASCII, which converts nothing: the UTF-8 the sync writes is stored
 * as its bytes and read back as it was (what embedded Postgres made where no locale was set, as
 * in the Docker image, before its clusters were UTF8).
 */
export function encodingProblem(encoding: string): string | undefined {
  if (encoding === 'UTF8' || encoding === 'SQL_ASCII') return undefined;
  return `the database's encoding is ${encoding}, and CPQ's names and values are any Unicode: use a database created with ENCODING 'UTF8' (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)`;
}
