import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

export interface HostAliasRows {
  /** Present users filed under the alias. */
  users: number;
  /** Of them, those with no present user of the same login under `_host`: not a duplicate of a host user. */
  withoutHostTwin: number;
}

/** Per host alias that holds present users: how many, and how many are no twin of a present `_host` user. */
export async function countHostAliasRows(on: pg.PoolClient, site: string, aliases: readonly string[]): Promise<Map<string, HostAliasRows>> {
  if (aliases.length === 0) return new Map();
  const rows = await runCompiled(
    on,
    sql<{ company_login: string; users: string; without_twin: string }>`SELECT a.company_login, count(*) AS users,
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM cpq.users h
                                          WHERE h.site = a.site AND h.company_login = '_host' AND h.login = a.login AND h.deleted_at IS NULL)) AS without_twin
     FROM cpq.users a
     WHERE a.site = ${site} AND a.company_login = ANY(${aliases}::text[]) AND a.deleted_at IS NULL
     GROUP BY a.company_login`.compile(queryBuilder),
  );
  return new Map(rows.map((r) => [r.company_login, { users: Number(r.users), withoutHostTwin: Number(r.without_twin) }]));
}
