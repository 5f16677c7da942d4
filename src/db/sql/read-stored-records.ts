import type pg from 'pg';
import { parseExactJson } from '../../exact-json.js';

/**
 * The stored records (`raw`, numbers exact) of the given users, keyed by `key(company, login)`;
 * `integrationOnly` leaves out users not stored as integration users.
 */
export async function readStoredRecords(
  on: pg.Pool | pg.PoolClient,
  users: readonly { company: string; login: string }[],
  { integrationOnly, key }: { integrationOnly: boolean; key: (company: string, login: string) => string },
): Promise<Map<string, Record<string, unknown>>> {
  // raw as text: node-postgres would parse jsonb with JSON.parse and round the int64s.
  const { rows } = await on.query<{ company_login: string; login: string; raw: string }>(
    `SELECT company_login, login, raw::text AS raw FROM cpq.users
     WHERE (company_login, login) IN (SELECT * FROM unnest($1::text[], $2::text[]))${integrationOnly ? ' AND is_integration_user' : ''}`,
    [users.map((u) => u.company), users.map((u) => u.login)],
  );
  return new Map(rows.map((r) => [key(r.company_login, r.login), parseExactJson(r.raw) as Record<string, unknown>]));
}
