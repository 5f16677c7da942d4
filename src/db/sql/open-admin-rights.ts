import type pg from 'pg';
import Cursor from 'pg-cursor';
import { sql } from 'kysely';
import { isoUtcText, selectList, type TextColumn } from '../as-text.js';
import { queryBuilder } from '../compiled-query.js';
import { runOfSite, snapshotRunColumns } from './open-snapshot.js';

const a = (name: string) => sql.ref(`a.${name}`);
const text = (name: string): TextColumn => ({ name, json: false, expr: a(name) });

/**
 * Opens a cursor over every admin right held at `asOf` (cpq.admin_rights_as_of: each admin flag
 * and each Administrator-type group of each user present then, with the start of the unbroken
 * stretch in which the user held it) in the sites of `runIds`, each row naming the run of its site
 * that the state reflects (`runIds`: one per site, findSnapshotRuns), as text, in code-point order
 * of site, company, login and right. On the caller's client, so that it reads in the caller's
 * transaction.
 */
export function openAdminRights(
  client: pg.PoolClient,
  { asOf, runIds }: { asOf: Date; runIds: readonly string[] },
): { columns: TextColumn[]; cursor: Cursor<(string | null)[]> } {
  const columns: TextColumn[] = [
    ...snapshotRunColumns(asOf),
    text('site'),
    text('company_login'),
    text('login'),
    text('admin_right'),
    text('group_variable_name'),
    { name: 'since', json: false, expr: isoUtcText(a('since')) },
  ];
  // Per site: cpq.admin_rights_as_of(ts, site) sorts and joins that site's users and versions only
  // (migrations/0030), where the one-argument form joined to the runs did every site's.
  const query = sql`SELECT ${selectList(columns)}
     FROM ${runOfSite(runIds)}
     CROSS JOIN LATERAL cpq.admin_rights_as_of(${asOf}::timestamptz, run.site) a
     ORDER BY a.site COLLATE "C", a.company_login COLLATE "C", a.login COLLATE "C", a.admin_right COLLATE "C", a.group_variable_name COLLATE "C"`.compile(
    queryBuilder,
  );
  return { columns, cursor: client.query(new Cursor<(string | null)[]>(query.sql, [...query.parameters], { rowMode: 'array' })) };
}
