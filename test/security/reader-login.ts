import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { TestDatabase } from '../helpers/database.js';

/**
 * A reporting login of `t` (a member of cpq_reader only), connected: with a password, so that a
 * server that asks for one (scram, as embedded Postgres and most do) is answered. `end` closes the
 * connection and drops the login and whatever it owns.
 */
export async function connectReaderLogin(t: TestDatabase, name: string): Promise<{ reader: pg.Client; end: () => Promise<void> }> {
  const role = `${name}_${process.pid}`;
  const password = randomBytes(12).toString('hex');
  await t.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'; GRANT cpq_reader TO ${role}`);
  const url = new URL(t.url);
  url.username = role;
  url.password = password;
  const reader = new pg.Client({ connectionString: url.href });
  await reader.connect();
  return {
    reader,
    end: async () => {
      await reader.end();
      await t.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`).catch(() => undefined);
    },
  };
}
