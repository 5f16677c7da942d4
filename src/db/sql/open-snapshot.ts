import type pg from 'pg';
import Cursor from 'pg-cursor';
import { sql } from 'kysely';
import { isoUtcText, selectList, type TextColumn } from '../as-text.js';
import { queryBuilder } from '../compiled-query.js';

const u = (name: string) => sql.ref(`u.${name}`);
const text = (name: string): TextColumn => ({ name, json: false, expr: u(name) });
/** A jsonb, boolean or number column of cpq.users, as its text. */
const json = (name: string): TextColumn => ({ name, json: true, expr: sql`${u(name)}::text` });
const isoUtc = (name: string): TextColumn => ({ name, json: false, expr: isoUtcText(u(name)) });

/** The snapshot's columns after the three naming the run, every one as text. */
const USER_COLUMNS: TextColumn[] = [
  text('company_login'),
  text('login'),
  text('party_number'),
  text('first_name'),
  text('last_name'),
  text('email'),
  json('status'),
  text('status_display'),
  text('type'),
  text('type_display'),
  json('is_integration_user'),
  text('oauth_client_id'),
  json('is_user_admin_perm_enabled'),
  json('is_access_admin_perm_enabled'),
  json('is_application_admin_perm_enabled'),
  isoUtc('last_login'),
  isoUtc('date_modified'),
  { name: 'groups', json: true, expr: sql`coalesce(g.groups, '[]')::text` },
  { name: 'access_permissions', json: true, expr: sql`coalesce(p.access_permissions, '[]')::text` },
  json('party_id'),
  // After the columns of a release before sites, so that they keep their places.
  text('site'),
];

/**
 * Columns added since, after every earlier one (raw too, when asked for) for the same reason:
 * the proxy permission (to log in as other users), an admin flag to the admin_flag alert rule
 * and cpq.administrators.
 */
const ADDED_COLUMNS: TextColumn[] = [json('is_proxy_perm_enabled')];

/** The columns that name what a snapshot's row reflects (its time, and the run of its site: `run`, runOfSite). */
export function snapshotRunColumns(asOf: Date): TextColumn[] {
  return [
    { name: 'snapshot_as_of', json: false, expr: isoUtcText(sql`${asOf}::timestamptz`) },
    { name: 'snapshot_run_id', json: false, expr: sql`run.id::text` },
    { name: 'snapshot_run_finished_at', json: false, expr: isoUtcText(sql.ref('run.finished_at')) },
  ];
}

/** `run`, the run of each site among `runIds` (one per site, findSnapshotRuns), to join on its site. */
export const runOfSite = (runIds: readonly string[]) => sql`(SELECT site, id, finished_at FROM cpq.sync_runs WHERE id = ANY(${runIds}::bigint[])) run`;

/**
 * Opens a cursor over every user present at `asOf` (cpq.users_as_of) in the sites of `runIds`,
 * with groups and access permissions as the database held them then, each row naming the run of
 * its site that the state reflects (`runIds`: one per site, findSnapshotRuns): a row of `columns` (as text) each, by company and login. `withRaw` adds `raw`, the
 * record as CPQ sent it. On the caller's client, so that it reads in the caller's transaction.
 */
export function openSnapshot(
  client: pg.PoolClient,
  { asOf, runIds, withRaw }: { asOf: Date; runIds: readonly string[]; withRaw: boolean },
): { columns: TextColumn[]; cursor: Cursor<(string | null)[]> } {
  const columns: TextColumn[] = [...snapshotRunColumns(asOf), ...USER_COLUMNS, ...(withRaw ? [json('raw')] : []), ...ADDED_COLUMNS];
  // The sql tag, not the builder: aggregates of set-returning functions joined in CTEs read better
  // as SQL, and the rows are streamed by pg-cursor in array row mode, not run by runCompiled.
  // In code-point order (COLLATE "C"): the same state is the same file from any database, whatever its collation.
  // The memberships and permissions of the snapshot's sites only: aggregated before the join, those
  // of every site were (a snapshot of 100 users beside a site of 64,000 took 3 s). An array, not a
  // join: the filter then reaches each branch of the as-of functions' UNION ALL.
  const sitesOfRuns = sql`ARRAY(SELECT site FROM cpq.sync_runs WHERE id = ANY(${runIds}::bigint[]))`;
  const query = sql`WITH g AS (
       SELECT g.user_id,
              jsonb_agg(jsonb_build_object('variableName', g.group_variable_name, 'label', gr.label, 'type', gr.type)
                        ORDER BY g.group_variable_name COLLATE "C") AS groups
       FROM cpq.user_groups_as_of(${asOf}) g LEFT JOIN cpq.groups_as_of(${asOf}) gr ON gr.site = g.site AND gr.variable_name = g.group_variable_name
       WHERE g.site = ANY(${sitesOfRuns})
       GROUP BY g.user_id
     ), p AS (
       SELECT p.user_id,
              jsonb_agg(jsonb_build_object('type', p.type, 'variableName', p.variable_name, 'name', p.name, 'hasAccess', p.has_access)
                        ORDER BY p.type COLLATE "C", p.variable_name COLLATE "C") AS access_permissions
       FROM cpq.user_access_permissions_as_of(${asOf}) p
       WHERE p.site = ANY(${sitesOfRuns})
       GROUP BY p.user_id
     )
     SELECT ${selectList(columns)}
     FROM cpq.users_as_of(${asOf}) u
     JOIN ${runOfSite(runIds)} ON run.site = u.site
     LEFT JOIN g ON g.user_id = u.id
     LEFT JOIN p ON p.user_id = u.id
     WHERE u.deleted_at IS NULL
     ORDER BY u.site COLLATE "C", u.company_login COLLATE "C", u.login COLLATE "C"`.compile(queryBuilder);
  return { columns, cursor: client.query(new Cursor<(string | null)[]>(query.sql, [...query.parameters], { rowMode: 'array' })) };
}
