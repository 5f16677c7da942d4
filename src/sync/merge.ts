import type pg from 'pg';
import { USER_VALUE_COLUMN_TYPES } from '../normalize/user-fields.js';

export interface MergeCounts {
  seen: number;
  inserted: number;
  updated: number;
  unchanged: number;
  deleted: number;
  restored: number;
}

export interface DeletionCandidates {
  company: string;
  /** Users of the company the database holds as present. */
  known: number;
  /** Of those, how many this full read did not return. */
  missing: number;
}

// Column lists are constants from the field mapping, never data.
const DATA_COLUMNS = ['company_name', 'is_integration_user', ...USER_VALUE_COLUMN_TYPES.map((c) => c.column), 'raw', 'content_hash'];
const list = (prefix: string) => DATA_COLUMNS.map((c) => `${prefix}${c}`).join(', ');
/** The same columns read from run_users, where raw is still text. */
const staged = (prefix: string) => DATA_COLUMNS.map((c) => (c === 'raw' ? `${prefix}raw::jsonb` : `${prefix}${c}`)).join(', ');

/**
 * The merge of the staged rows into the current tables, the history tables and the change log,
 * one set-based statement per step, all in the run's transaction.
 * $1 = run id, $2 = the run's effective time (valid_from of the versions it writes),
 * $3 = companies whose users this run may mark deleted.
 *
 * The steps first work out what changes (run_users.action, the membership and permission
 * diffs, the deleted users), then apply it to the current tables and close/open history
 * versions from the same diff tables, and last write one change row per changed user.
 */
const mergeSteps = (userColumns: string[]): string[] => [
  // The last copy of each user read, and what it means for the row we hold.
  `CREATE TEMP TABLE run_users ON COMMIT DROP AS
   SELECT DISTINCT ON (s.company_login, s.login)
     s.*,
     u.id AS user_id,
     CASE
       WHEN u.id IS NULL THEN 'insert'
       WHEN u.deleted_at IS NOT NULL THEN 'restore'
       WHEN u.content_hash = s.content_hash THEN 'unchanged'
       ELSE 'update'
     END AS action
   FROM stage_users s
   LEFT JOIN cpq.users u ON u.company_login = s.company_login AND u.login = s.login
   ORDER BY s.company_login, s.login, s.seq DESC`,
  `CREATE INDEX ON run_users (seq); CREATE INDEX ON run_users (user_id); ANALYZE run_users`,

  // Users of fully read companies that CPQ no longer returns.
  `CREATE TEMP TABLE run_deleted ON COMMIT DROP AS
   SELECT u.id AS user_id, u.deleted_at AS old_deleted_at
   FROM cpq.users u
   WHERE u.company_login = ANY($3::text[]) AND u.deleted_at IS NULL
     AND NOT EXISTS (SELECT 1 FROM run_users r WHERE r.company_login = u.company_login AND r.login = u.login)`,

  // Field values before the change, for the diff.
  `CREATE TEMP TABLE run_old ON COMMIT DROP AS
   SELECT u.id AS user_id, cpq.user_doc(u) AS doc, u.deleted_at
   FROM cpq.users u JOIN run_users r ON r.user_id = u.id
   WHERE r.action IN ('update', 'restore')`,

  `INSERT INTO cpq.groups (variable_name, label, type)
   SELECT DISTINCT ON (g.variable_name) g.variable_name, g.label, g.type
   FROM stage_user_groups g JOIN run_users r ON r.seq = g.seq
   ORDER BY g.variable_name, g.seq DESC
   ON CONFLICT (variable_name) DO UPDATE
     SET label = excluded.label, type = excluded.type, last_synced_at = now()`,

  // Current users.
  `WITH inserted AS (
     INSERT INTO cpq.users (company_login, login, ${list('')}, first_seen_run_id, last_changed_run_id)
     SELECT company_login, login, ${staged('')}, $1, $1 FROM run_users WHERE action = 'insert'
     RETURNING id, company_login, login
   )
   UPDATE run_users r SET user_id = i.id
   FROM inserted i WHERE r.company_login = i.company_login AND r.login = i.login`,
  `UPDATE cpq.users u
   SET (${list('')}) = (${staged('r.')}),
       last_synced_at = now(), last_changed_at = now(), last_changed_run_id = $1, deleted_at = NULL
   FROM run_users r
   WHERE r.action IN ('update', 'restore') AND u.id = r.user_id`,
  `UPDATE cpq.users u SET last_synced_at = now() FROM run_users r WHERE r.action = 'unchanged' AND u.id = r.user_id`,
  `UPDATE cpq.users u SET deleted_at = $2, last_changed_at = now(), last_changed_run_id = $1
   FROM run_deleted d WHERE u.id = d.user_id`,

  // Membership diff: staged groups against current ones, for users whose record changed.
  `CREATE TEMP TABLE run_group_diff ON COMMIT DROP AS
   SELECT r.user_id, g.variable_name, 'added' AS op
   FROM run_users r JOIN stage_user_groups g ON g.seq = r.seq
   WHERE r.action <> 'unchanged' AND r.has_groups
     AND NOT EXISTS (SELECT 1 FROM cpq.user_groups ug WHERE ug.user_id = r.user_id AND ug.group_variable_name = g.variable_name)
   UNION ALL
   SELECT ug.user_id, ug.group_variable_name, 'removed'
   FROM run_users r JOIN cpq.user_groups ug ON ug.user_id = r.user_id
   WHERE r.action IN ('update', 'restore') AND r.has_groups
     AND NOT EXISTS (SELECT 1 FROM stage_user_groups g WHERE g.seq = r.seq AND g.variable_name = ug.group_variable_name)
   UNION ALL
   SELECT ug.user_id, ug.group_variable_name, 'removed'
   FROM run_deleted d JOIN cpq.user_groups ug ON ug.user_id = d.user_id`,

  // Permission diff: added, removed, or changed name/hasAccess.
  `CREATE TEMP TABLE run_permission_diff ON COMMIT DROP AS
   SELECT r.user_id, s.type, s.variable_name, NULL::text AS old_name, NULL::boolean AS old_has_access,
          s.name AS new_name, s.has_access AS new_has_access, 'added' AS op
   FROM run_users r JOIN stage_user_permissions s ON s.seq = r.seq
   WHERE r.action <> 'unchanged' AND r.has_permissions
     AND NOT EXISTS (SELECT 1 FROM cpq.user_access_permissions p
                     WHERE p.user_id = r.user_id AND p.type = s.type AND p.variable_name = s.variable_name)
   UNION ALL
   SELECT r.user_id, s.type, s.variable_name, p.name, p.has_access, s.name, s.has_access, 'changed'
   FROM run_users r
   JOIN stage_user_permissions s ON s.seq = r.seq
   JOIN cpq.user_access_permissions p ON p.user_id = r.user_id AND p.type = s.type AND p.variable_name = s.variable_name
   WHERE r.action IN ('update', 'restore') AND r.has_permissions
     AND (p.name, p.has_access) IS DISTINCT FROM (s.name, s.has_access)
   UNION ALL
   SELECT p.user_id, p.type, p.variable_name, p.name, p.has_access, NULL, NULL, 'removed'
   FROM run_users r JOIN cpq.user_access_permissions p ON p.user_id = r.user_id
   WHERE r.action IN ('update', 'restore') AND r.has_permissions
     AND NOT EXISTS (SELECT 1 FROM stage_user_permissions s
                     WHERE s.seq = r.seq AND s.type = p.type AND s.variable_name = p.variable_name)
   UNION ALL
   SELECT p.user_id, p.type, p.variable_name, p.name, p.has_access, NULL, NULL, 'removed'
   FROM run_deleted d JOIN cpq.user_access_permissions p ON p.user_id = d.user_id`,

  // Memberships and their history, from the diff.
  `WITH removed AS (
     DELETE FROM cpq.user_groups ug USING run_group_diff d
     WHERE d.op = 'removed' AND ug.user_id = d.user_id AND ug.group_variable_name = d.variable_name
     RETURNING ug.user_id, ug.group_variable_name
   )
   UPDATE cpq.user_group_history h SET valid_to = $2
   FROM removed r
   WHERE h.user_id = r.user_id AND h.group_variable_name = r.group_variable_name AND h.valid_to IS NULL`,
  `WITH added AS (
     INSERT INTO cpq.user_groups (user_id, group_variable_name, added_at)
     SELECT r.user_id, g.variable_name, $2
     FROM run_users r JOIN stage_user_groups g ON g.seq = r.seq
     WHERE r.action <> 'unchanged' AND r.has_groups
     ON CONFLICT DO NOTHING
     RETURNING user_id, group_variable_name, added_at
   )
   INSERT INTO cpq.user_group_history (user_id, group_variable_name, added_at, valid_from, run_id)
   SELECT user_id, group_variable_name, added_at, $2, $1 FROM added`,

  // Access permissions and their history.
  `WITH removed AS (
     DELETE FROM cpq.user_access_permissions p USING run_permission_diff d
     WHERE d.op = 'removed' AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name
     RETURNING p.user_id, p.type, p.variable_name
   )
   UPDATE cpq.user_access_permission_history h SET valid_to = $2
   FROM removed r
   WHERE h.user_id = r.user_id AND h.type = r.type AND h.variable_name = r.variable_name AND h.valid_to IS NULL`,
  `WITH written AS (
     INSERT INTO cpq.user_access_permissions (user_id, type, variable_name, name, has_access)
     SELECT r.user_id, s.type, s.variable_name, s.name, s.has_access
     FROM run_users r JOIN stage_user_permissions s ON s.seq = r.seq
     WHERE r.action <> 'unchanged' AND r.has_permissions
     ON CONFLICT (user_id, type, variable_name) DO UPDATE
       SET name = excluded.name, has_access = excluded.has_access
       WHERE (cpq.user_access_permissions.name, cpq.user_access_permissions.has_access)
         IS DISTINCT FROM (excluded.name, excluded.has_access)
     RETURNING user_id, type, variable_name, name, has_access
   ),
   closed AS (
     UPDATE cpq.user_access_permission_history h SET valid_to = $2
     FROM written w
     WHERE h.user_id = w.user_id AND h.type = w.type AND h.variable_name = w.variable_name AND h.valid_to IS NULL
   )
   INSERT INTO cpq.user_access_permission_history (user_id, type, variable_name, name, has_access, valid_from, run_id)
   SELECT user_id, type, variable_name, name, has_access, $2, $1 FROM written`,

  // User versions: close the current one, open the new one, for every user whose row changed.
  `CREATE TEMP TABLE run_changed ON COMMIT DROP AS
   SELECT user_id, action FROM run_users WHERE action <> 'unchanged'
   UNION ALL SELECT user_id, 'delete' FROM run_deleted`,
  `UPDATE cpq.user_history h SET valid_to = $2
   FROM run_changed c WHERE h.id = c.user_id AND h.valid_to IS NULL`,
  `INSERT INTO cpq.user_history (${userColumns.join(', ')}, valid_from, valid_to, run_id)
   SELECT ${userColumns.map((c) => `u.${c}`).join(', ')}, $2::timestamptz, NULL::timestamptz, $1::bigint
   FROM cpq.users u JOIN run_changed c ON c.user_id = u.id`,

  // The change log.
  `INSERT INTO cpq.user_changes (run_id, change, user_id, company_login, login, party_number, date_modified, detected_at, diff)
   SELECT $1, c.action, u.id, u.company_login, u.login, u.party_number, u.date_modified, $2,
     CASE c.action
       WHEN 'insert' THEN cpq.jsonb_diff('{}', jsonb_strip_nulls(cpq.user_doc(u)))
       WHEN 'delete' THEN jsonb_build_object('deleted_at', jsonb_build_object('old', NULL, 'new', to_jsonb($2::timestamptz)))
       WHEN 'restore' THEN cpq.jsonb_diff(o.doc, cpq.user_doc(u))
         || jsonb_build_object('deleted_at', jsonb_build_object('old', to_jsonb(o.deleted_at), 'new', NULL))
       ELSE cpq.jsonb_diff(o.doc, cpq.user_doc(u))
     END
     || CASE WHEN g.added IS NULL AND g.removed IS NULL THEN '{}'::jsonb
        ELSE jsonb_build_object('groups', jsonb_build_object('added', coalesce(g.added, '[]'), 'removed', coalesce(g.removed, '[]'))) END
     || CASE WHEN p.user_id IS NULL THEN '{}'::jsonb
        ELSE jsonb_build_object('accessPermissions', jsonb_build_object('added', p.added, 'removed', p.removed, 'changed', p.changed)) END
   FROM run_changed c
   JOIN cpq.users u ON u.id = c.user_id
   LEFT JOIN run_old o ON o.user_id = c.user_id
   LEFT JOIN (
     SELECT user_id,
            jsonb_agg(variable_name ORDER BY variable_name) FILTER (WHERE op = 'added') AS added,
            jsonb_agg(variable_name ORDER BY variable_name) FILTER (WHERE op = 'removed') AS removed
     FROM run_group_diff GROUP BY user_id
   ) g ON g.user_id = c.user_id
   LEFT JOIN (
     SELECT user_id,
            coalesce(jsonb_agg(jsonb_build_object('type', type, 'variableName', variable_name, 'name', new_name, 'hasAccess', new_has_access)
                       ORDER BY type, variable_name) FILTER (WHERE op = 'added'), '[]') AS added,
            coalesce(jsonb_agg(jsonb_build_object('type', type, 'variableName', variable_name, 'name', old_name, 'hasAccess', old_has_access)
                       ORDER BY type, variable_name) FILTER (WHERE op = 'removed'), '[]') AS removed,
            coalesce(jsonb_agg(jsonb_build_object('type', type, 'variableName', variable_name,
                       'old', jsonb_build_object('name', old_name, 'hasAccess', old_has_access),
                       'new', jsonb_build_object('name', new_name, 'hasAccess', new_has_access))
                       ORDER BY type, variable_name) FILTER (WHERE op = 'changed'), '[]') AS changed
     FROM run_permission_diff GROUP BY user_id
   ) p ON p.user_id = c.user_id`,
];

/** Per company read in full: how many known users the read did not return (the deletion guard's input). */
export async function deletionCandidates(client: pg.PoolClient, companies: string[]): Promise<DeletionCandidates[]> {
  if (companies.length === 0) return [];
  const { rows } = await client.query<{ company: string; known: string; missing: string }>(
    `SELECT c.company,
            count(u.id) AS known,
            count(u.id) FILTER (WHERE NOT EXISTS (
              SELECT 1 FROM stage_users s WHERE s.company_login = u.company_login AND s.login = u.login)) AS missing
     FROM unnest($1::text[]) AS c(company)
     LEFT JOIN cpq.users u ON u.company_login = c.company AND u.deleted_at IS NULL
     GROUP BY c.company`,
    [companies],
  );
  return rows.map((r) => ({ company: r.company, known: Number(r.known), missing: Number(r.missing) }));
}

/** Every column of cpq.users, quoted, from the catalog: history versions copy them all, whatever later migrations add. */
async function userColumns(client: pg.PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT quote_ident(column_name) AS name FROM information_schema.columns
     WHERE table_schema = 'cpq' AND table_name = 'users' ORDER BY ordinal_position`,
  );
  return rows.map((r) => r.name);
}

/** Merges what was staged; `deleteIn` names the companies whose missing users are marked deleted. */
export async function mergeStaged(client: pg.PoolClient, runId: string, effectiveAt: Date, deleteIn: string[]): Promise<MergeCounts> {
  const params = [runId, effectiveAt, deleteIn];
  for (const step of mergeSteps(await userColumns(client))) {
    // Only the statements that use a parameter get them: the others may hold several
    // statements, which only the simple query protocol runs.
    const used = [1, 2, 3].filter((n) => step.includes(`$${n}`));
    if (used.length === 0) await client.query(step);
    else await client.query(step.replace(/\$(\d)/g, (_, n: string) => `$${used.indexOf(Number(n)) + 1}`), used.map((n) => params[n - 1]));
  }
  const { rows } = await client.query<{ action: string; n: string }>(
    `SELECT action, count(*) AS n FROM run_users GROUP BY action
     UNION ALL SELECT 'delete', count(*) FROM run_deleted`,
  );
  const count = (action: string) => Number(rows.find((r) => r.action === action)?.n ?? 0);
  const counts = {
    inserted: count('insert'),
    updated: count('update'),
    restored: count('restore'),
    unchanged: count('unchanged'),
    deleted: count('delete'),
  };
  return { seen: counts.inserted + counts.updated + counts.restored + counts.unchanged, ...counts };
}
