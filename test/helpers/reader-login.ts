import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import pg from 'pg';
import { admin } from './database.js';

/**
 * A reporting login (a member of `memberOf`, cpq_reader unless told; null: of no role), connected to `databaseUrl`
 * (`url`: that URL with its name and password):
 * with a password, so that a server that asks for one (scram, as embedded Postgres and most do) is
 * answered. Roles are the server's, not a database's: the login's name is random, and `end`
 * closes the connection and drops the login, with whatever it owns in that database; a connect
 * that fails drops the login before its error is thrown.
 */
export async function connectReaderLogin(
  databaseUrl: string,
  memberOf: string | null = 'cpq_reader',
): Promise<{ reader: pg.Client; url: string; role: string; end: () => Promise<void> }> {
  const role = `cpq_rr_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await admin((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'${memberOf === null ? '' : ` IN ROLE ${memberOf}`}`));
  const url = new URL(databaseUrl);
  url.username = role;
  url.password = password;
  const reader = new pg.Client({ connectionString: url.href });
  try {
    await reader.connect();
  } catch (err) {
    // Roles are the server's: left here, a login of every failed connect stayed on a shared
    // TEST_DATABASE_URL server. It owns nothing yet, so DROP ROLE alone, from the admin's database
    // (the login's may be the one it could not connect to). What failed is the connect's error.
    await admin((c) => c.query(`DROP ROLE ${role}`)).catch(() => undefined);
    throw err;
  }
  return {
    reader,
    role,
    // For a process of its own that logs in as it (the CLI run as a reporting login).
    url: url.href,
    end: async () => {
      await reader.end();
      // As the server's admin, in the login's database: DROP OWNED reaches only the database it runs in.
      const ownerUrl = new URL(inject('adminDatabaseUrl'));
      ownerUrl.pathname = new URL(databaseUrl).pathname;
      const owner = new pg.Client({ connectionString: ownerUrl.href });
      await owner.connect();
      try {
        await owner.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
      } finally {
        await owner.end();
      }
    },
  };
}
