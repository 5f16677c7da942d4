import type pg from 'pg';
import type { Logger } from '../logger.js';
import { MAPPED_FIELD_KEYS } from '../cpq/user-fields.js';
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
/** Columns a change's diff reports: every data column but raw and the digest. */
const DIFF_COLUMNS = DATA_COLUMNS.filter((c) => c !== 'raw' && c !== 'content_hash');

const PG_TYPE: Record<string, string> = Object.fromEntries([
  ['company_name', 'text'],
  ['is_integration_user', 'boolean'],
  ...USER_VALUE_COLUMN_TYPES.map((c) => [c.column, c.pgType]),
]);
/** A column value as JSON text; numbers and booleans print as JSON already, the rest goes through to_json. */
/** A timestamptz as CPQ writes dates (2025-09-26T12:17:59.000Z), whatever the session time zone. */
const isoUtc = (expr: string) => `to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const asJson = (expr: string, column: string) => {
  const type = PG_TYPE[column]!;
  if (['boolean', 'integer', 'bigint'].includes(type)) return `coalesce(${expr}::text, 'null')`;
  // The same ISO form CPQ sends and inserts are logged with, whatever the session time zone.
  if (type === 'timestamptz') return `coalesce(to_json(${isoUtc(expr)})::text, 'null')`;
  return `coalesce(to_json(${expr})::text, 'null')`;
};

/**
 * The field diff of an updated user as one jsonb: `"col":{"old":...,"new":...}` for every column
 * whose value differs between the old row `o` and the new row `u`. Against an empty `o` it is
 * the field part of an insert's diff: cpq.insert_diff (migrations/0005) holds a copy of it.
 * Built as text and parsed once: jsonb_each/jsonb_object_agg per row costs ten times more.
 * concat_ws skips NULLs; it takes at most 100 arguments, hence the chunks.
 */
export const FIELD_DIFF = (() => {
  const fragments = DIFF_COLUMNS.map(
    (c) => `CASE WHEN o.${c} IS DISTINCT FROM u.${c} THEN '"${c}":{"old":' || ${asJson(`o.${c}`, c)} || ',"new":' || ${asJson(`u.${c}`, c)} || '}' END`,
  );
  const chunks: string[] = [];
  for (let i = 0; i < fragments.length; i += 40) chunks.push(`nullif(concat_ws(',', ${fragments.slice(i, i + 40).join(', ')}), '')`);
  return `('{' || concat_ws(',', ${chunks.join(', ')}) || '}')::jsonb`;
})();


/**
 * A user the database held before this run. Users this run inserted before its final merge (a
 * merge batch, a direct first load) were read, not lost, and do not count as known to the
 * deletion guard.
 */
const knownBeforeRun = (user: string, runId: string) => `${user}.first_seen_run_id IS DISTINCT FROM ${runId}`;

/**
 * Notes the group definitions that the staged rows of the users in `users` (a table with seq)
 * carry, in stage_groups, the copy staged last winning. cpq.groups is written once per run, by
 * GROUP_STEPS.
 */
const stageGroups = (users: string, where: string) => `
  INSERT INTO stage_groups (variable_name, label, type)
  SELECT DISTINCT ON (g.variable_name) g.variable_name, g.label, g.type
  FROM stage_user_groups g JOIN ${users} r ON r.seq = g.seq
  WHERE ${where}
  ORDER BY g.variable_name, g.seq DESC
  ON CONFLICT (variable_name) DO UPDATE
    -- A CSV export names groups without label or type: keep what a fuller read said.
    SET label = coalesce(excluded.label, stage_groups.label), type = coalesce(excluded.type, stage_groups.type)`;

/**
 * Whether two records' raw are equal but for their groups (under any spelling of the key): what
 * a group's rename leaves as it was. The usual spelling is a key removal; others take a rebuild.
 */
/** Lower-cased keys of a raw record that the mapping reads (columns, groups, links, ...): constants, never data. */
const MAPPED_KEYS = `ARRAY[${MAPPED_FIELD_KEYS.map((k) => `'${k}'`).join(', ')}]::text[]`;

/**
 * The fields of raw the mapping has no column for (custom fields), as one jsonb object; the
 * content digest covers exactly these besides the columns (user-record.ts, unknownFieldsJson).
 */
const unmappedFields = (raw: string) =>
  `(SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM jsonb_each(${raw}) e WHERE lower(e.key) <> ALL (${MAPPED_KEYS}))`;

/**
 * The diff entries of custom fields between the old row `o` and the new row `u`:
 * `"raw.<field>":{"old":...,"new":...}` for each top-level field the mapping has no column for
 * whose value differs (null where a side lacks it), '{}' when none does.
 */
const UNMAPPED_DIFF = `(SELECT coalesce(jsonb_object_agg('raw.' || k.key, jsonb_build_object('old', o.raw -> k.key, 'new', u.raw -> k.key)), '{}'::jsonb)
   FROM (SELECT jsonb_object_keys(o.raw) UNION SELECT jsonb_object_keys(u.raw)) AS k(key)
   WHERE lower(k.key) <> ALL (${MAPPED_KEYS}) AND (o.raw -> k.key) IS DISTINCT FROM (u.raw -> k.key))`;

/**
 * The group step, once per run after the users are merged (groups are a few hundred, users up to
 * millions): the definitions the run read (stage_groups) against cpq.groups. A null label or type
 * (a CSV export) keeps what a fuller read said. A group whose label or type changes ends its
 * version into cpq.group_versions and starts a new one at $2; a new or changed group gets one
 * cpq.group_changes row. $1 = run id, $2 = the run's effective time.
 */
const GROUP_STEPS: string[] = [
  `CREATE TEMP TABLE run_group_changes ON COMMIT DROP AS
   SELECT n.variable_name, g.variable_name IS NULL AS is_new, g.label AS old_label, g.type AS old_type,
          coalesce(n.label, g.label) AS label, coalesce(n.type, g.type) AS type
   FROM stage_groups n LEFT JOIN cpq.groups g ON g.variable_name = n.variable_name
   WHERE g.variable_name IS NULL OR (g.label, g.type) IS DISTINCT FROM (coalesce(n.label, g.label), coalesce(n.type, g.type))`,
  `INSERT INTO cpq.group_versions (variable_name, label, type, first_seen_at, last_synced_at, valid_from, valid_to, ended_by_run_id)
   SELECT g.variable_name, g.label, g.type, g.first_seen_at, g.last_synced_at, g.valid_from, $2, $1
   FROM cpq.groups g JOIN run_group_changes c ON c.variable_name = g.variable_name`,
  `INSERT INTO cpq.groups AS g (variable_name, label, type, valid_from)
   SELECT variable_name, label, type, $2 FROM stage_groups
   ON CONFLICT (variable_name) DO UPDATE
     SET label = coalesce(excluded.label, g.label), type = coalesce(excluded.type, g.type), last_synced_at = now(),
         valid_from = CASE WHEN g.variable_name IN (SELECT variable_name FROM run_group_changes) THEN excluded.valid_from ELSE g.valid_from END`,
  `INSERT INTO cpq.group_changes (run_id, change, group_variable_name, detected_at, diff)
   SELECT $1, CASE WHEN is_new THEN 'insert' ELSE 'update' END, variable_name, $2,
          CASE WHEN label IS DISTINCT FROM old_label THEN jsonb_build_object('label', jsonb_build_object('old', old_label, 'new', label)) ELSE '{}' END
          || CASE WHEN type IS DISTINCT FROM old_type THEN jsonb_build_object('type', jsonb_build_object('old', old_type, 'new', type)) ELSE '{}' END
   FROM run_group_changes ORDER BY variable_name`,
];

/** Inserts the users of `users` that pass `where` into cpq.users and notes their new ids there. */
const insertUsers = (users: string, where: string) => `
  WITH inserted AS (
    INSERT INTO cpq.users (company_login, login, ${list('')}, first_seen_run_id, last_changed_run_id, valid_from)
    SELECT s.company_login, s.login, ${list('s.')}, $1, $1, $2
    FROM ${users} r JOIN stage_users s ON s.seq = r.seq WHERE ${where}
    RETURNING id, company_login, login
  )
  UPDATE ${users} r SET user_id = i.id
  FROM inserted i WHERE r.company_login = i.company_login AND r.login = i.login`;

/**
 * A merge batch: the users staged with $3 < seq <= $4 that the database does not hold at all,
 * written while the run goes on reading (on a first load, every user). Everything else (updates,
 * restores, unchanged users, deletions, and a later copy of a user a batch inserted) is left to
 * the final merge. $1 = run id, $2 = the run's effective time.
 */
const BATCH_STEPS: string[] = [
  'DROP TABLE IF EXISTS batch_users',
  `CREATE TEMP TABLE batch_users ON COMMIT DROP AS
   SELECT DISTINCT ON (s.company_login, s.login) s.seq, s.company_login, s.login, NULL::bigint AS user_id
   FROM stage_users s
   WHERE s.seq > $3 AND s.seq <= $4
     AND NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.company_login = s.company_login AND u.login = s.login)
   ORDER BY s.company_login, s.login, s.seq DESC`,
  stageGroups('batch_users', 'true'),
  insertUsers('batch_users', 'true'),
  `INSERT INTO cpq.user_groups (user_id, group_variable_name, added_at)
   SELECT r.user_id, g.variable_name, $2 FROM batch_users r JOIN stage_user_groups g ON g.seq = r.seq
   ON CONFLICT DO NOTHING`,
  `INSERT INTO cpq.user_access_permissions (user_id, type, variable_name, name, has_access, valid_from)
   SELECT r.user_id, p.type, p.variable_name, p.name, p.has_access, $2 FROM batch_users r JOIN stage_user_permissions p ON p.seq = r.seq`,
  // An insert's diff is its first version: the cpq.user_changes view reads it from history.
  `INSERT INTO cpq.user_change_log (run_id, change, user_id, company_login, login, party_number, date_modified, detected_at, diff)
   SELECT $1, 'insert', r.user_id, r.company_login, r.login, s.party_number, s.date_modified, $2, NULL
   FROM batch_users r JOIN stage_users s ON s.seq = r.seq`,
];

/**
 * The merge of the staged rows into the current tables, the history tables and the change log,
 * one set-based statement per step, all in the run's transaction.
 * $1 = run id, $2 = the run's effective time (valid_from of the versions it writes),
 * $3 = companies whose users this run may mark deleted.
 *
 * The steps first work out what changes (run_users.action, the deleted users, the membership
 * and permission diffs), move the versions being replaced into the *_versions tables, apply
 * the change to the current tables, and last write one change row per changed user.
 */
const mergeSteps = (userColumns: string[]): string[] => [
  // The last copy of each user read (by seq into stage_users), and what it means for the row we hold.
  `CREATE TEMP TABLE run_users ON COMMIT DROP AS
   SELECT DISTINCT ON (s.company_login, s.login)
     s.seq, s.company_login, s.login, s.has_groups, s.has_permissions,
     u.id AS user_id,
     CASE
       WHEN u.id IS NULL THEN 'insert'
       -- Inserted earlier in this run (a merge batch or a direct load): done, unless a later copy
       -- was read, which then replaces what was written (still one insert: its diff is read
       -- from the version).
       WHEN u.first_seen_run_id = $1 THEN CASE WHEN u.content_hash = s.content_hash THEN 'batched' ELSE 'reinsert' END
       WHEN u.deleted_at IS NOT NULL THEN 'restore'
       WHEN u.content_hash = s.content_hash THEN 'unchanged'
       ELSE 'update'
     END AS action
   FROM stage_users s
   LEFT JOIN cpq.users u ON u.company_login = s.company_login AND u.login = s.login
   ORDER BY s.company_login, s.login, s.seq DESC`,
  `CREATE INDEX ON run_users (seq); CREATE INDEX ON run_users (user_id); ANALYZE run_users;
   ANALYZE stage_users (seq, company_login, login)`,
  // A user whose record says what the stored one says, in other words, has not changed: every
  // column, membership, access permission and custom field is the same, and only what no change
  // row can name differs (a group's label or type, logged once per group by GROUP_STEPS; a record
  // read from a CSV export after a JSON read, or the reverse; another spelling of a field name).
  // Its row takes the record as read (raw, digest) in a new version, and no change row.
  `UPDATE run_users r SET action = 'restated'
   FROM stage_users s, cpq.users u
   WHERE r.action = 'update' AND s.seq = r.seq AND u.id = r.user_id
     AND (${DIFF_COLUMNS.map((c) => `u.${c}`).join(', ')}) IS NOT DISTINCT FROM (${DIFF_COLUMNS.map((c) => `s.${c}`).join(', ')})
     AND (NOT s.has_groups OR (
       NOT EXISTS (SELECT 1 FROM stage_user_groups g WHERE g.seq = r.seq
                   AND NOT EXISTS (SELECT 1 FROM cpq.user_groups ug WHERE ug.user_id = r.user_id AND ug.group_variable_name = g.variable_name))
       AND NOT EXISTS (SELECT 1 FROM cpq.user_groups ug WHERE ug.user_id = r.user_id
                       AND NOT EXISTS (SELECT 1 FROM stage_user_groups g WHERE g.seq = r.seq AND g.variable_name = ug.group_variable_name))))
     AND (NOT s.has_permissions OR (
       NOT EXISTS (SELECT 1 FROM stage_user_permissions p WHERE p.seq = r.seq
                   AND NOT EXISTS (SELECT 1 FROM cpq.user_access_permissions up WHERE up.user_id = r.user_id AND up.type = p.type
                                   AND up.variable_name = p.variable_name AND (up.name, up.has_access) IS NOT DISTINCT FROM (p.name, p.has_access)))
       AND NOT EXISTS (SELECT 1 FROM cpq.user_access_permissions up WHERE up.user_id = r.user_id
                       AND NOT EXISTS (SELECT 1 FROM stage_user_permissions p WHERE p.seq = r.seq AND p.type = up.type AND p.variable_name = up.variable_name))))
     AND ${unmappedFields('u.raw')} = ${unmappedFields('s.raw')}`,

  // Users of fully read companies that CPQ no longer returns.
  `CREATE TEMP TABLE run_deleted ON COMMIT DROP AS
   SELECT u.id AS user_id
   FROM cpq.users u
   WHERE u.company_login = ANY($3::text[]) AND u.deleted_at IS NULL AND ${knownBeforeRun('u', '$1')}
     AND NOT EXISTS (SELECT 1 FROM run_users r WHERE r.company_login = u.company_login AND r.login = u.login)`,

  // The current versions this run replaces: kept for the diff, and ended into cpq.user_versions.
  `CREATE TEMP TABLE run_old ON COMMIT DROP AS
   SELECT u.* FROM cpq.users u JOIN run_users r ON r.user_id = u.id
   WHERE r.action IN ('update', 'restore', 'restated')`,
  `INSERT INTO cpq.user_versions (${userColumns.join(', ')}, valid_to, ended_by_run_id)
   SELECT ${userColumns.map((c) => `u.${c}`).join(', ')}, $2, $1
   FROM cpq.users u
   WHERE u.id IN (SELECT id FROM run_old UNION ALL SELECT user_id FROM run_deleted)`,

  // Batched users' groups were noted by their batch (label and type come from the copy staged
  // last among those each statement saw, as with concurrent streams before).
  stageGroups('run_users', "r.action <> 'batched'"),

  // Current users.
  insertUsers('run_users', "r.action = 'insert'"),
  `UPDATE cpq.users u
   SET (${list('')}) = (${list('s.')}),
       last_synced_at = now(), last_changed_at = now(), last_changed_run_id = $1, deleted_at = NULL, valid_from = $2
   FROM run_users r JOIN stage_users s ON s.seq = r.seq
   WHERE r.action IN ('update', 'restore', 'reinsert') AND u.id = r.user_id`,
  `UPDATE cpq.users u SET last_synced_at = now() FROM run_users r WHERE r.action = 'unchanged' AND u.id = r.user_id`,
  `UPDATE cpq.users u SET raw = s.raw, content_hash = s.content_hash, last_synced_at = now(), valid_from = $2
   FROM run_users r JOIN stage_users s ON s.seq = r.seq
   WHERE r.action = 'restated' AND u.id = r.user_id`,
  `UPDATE cpq.users u SET deleted_at = $2, last_changed_at = now(), last_changed_run_id = $1, valid_from = $2
   FROM run_deleted d WHERE u.id = d.user_id`,

  // A reinserted user's memberships and permissions all started in this run: the later copy
  // replaces them outright (where it carries them), and they are added again below.
  `DELETE FROM cpq.user_groups ug USING run_users r WHERE r.action = 'reinsert' AND r.has_groups AND ug.user_id = r.user_id`,
  `DELETE FROM cpq.user_access_permissions p USING run_users r WHERE r.action = 'reinsert' AND r.has_permissions AND p.user_id = r.user_id`,

  // Membership diff: staged groups against current ones, for users whose record changed.
  `CREATE TEMP TABLE run_group_diff ON COMMIT DROP AS
   SELECT r.user_id, g.variable_name, 'added' AS op
   FROM run_users r JOIN stage_user_groups g ON g.seq = r.seq
   WHERE r.action NOT IN ('unchanged', 'batched') AND r.has_groups
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
   WHERE r.action NOT IN ('unchanged', 'batched') AND r.has_permissions
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

  // Memberships: ended ones move to their versions table, new ones start now.
  `WITH removed AS (
     DELETE FROM cpq.user_groups ug USING run_group_diff d
     WHERE d.op = 'removed' AND ug.user_id = d.user_id AND ug.group_variable_name = d.variable_name
     RETURNING ug.user_id, ug.group_variable_name, ug.added_at
   )
   INSERT INTO cpq.user_group_versions (user_id, group_variable_name, added_at, valid_to, ended_by_run_id)
   SELECT user_id, group_variable_name, added_at, $2, $1 FROM removed`,
  `INSERT INTO cpq.user_groups (user_id, group_variable_name, added_at)
   SELECT user_id, variable_name, $2 FROM run_group_diff WHERE op = 'added'
   ON CONFLICT DO NOTHING`,

  // Access permissions: removed and changed ones end their version; changed and added ones start one.
  `INSERT INTO cpq.user_access_permission_versions (user_id, type, variable_name, name, has_access, valid_from, valid_to, ended_by_run_id)
   SELECT p.user_id, p.type, p.variable_name, p.name, p.has_access, p.valid_from, $2, $1
   FROM cpq.user_access_permissions p JOIN run_permission_diff d
     ON d.op IN ('removed', 'changed') AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name`,
  `DELETE FROM cpq.user_access_permissions p USING run_permission_diff d
   WHERE d.op = 'removed' AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name`,
  `UPDATE cpq.user_access_permissions p SET name = d.new_name, has_access = d.new_has_access, valid_from = $2
   FROM run_permission_diff d
   WHERE d.op = 'changed' AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name`,
  `INSERT INTO cpq.user_access_permissions (user_id, type, variable_name, name, has_access, valid_from)
   SELECT user_id, type, variable_name, new_name, new_has_access, $2 FROM run_permission_diff WHERE op = 'added'`,

  // The change log: one row per changed user, the field diff of updates computed set-based.
  `CREATE TEMP TABLE run_changed ON COMMIT DROP AS
   SELECT user_id, action FROM run_users WHERE action NOT IN ('unchanged', 'batched', 'reinsert', 'restated')
   UNION ALL SELECT user_id, 'delete' FROM run_deleted`,
  `INSERT INTO cpq.user_change_log (run_id, change, user_id, company_login, login, party_number, date_modified, detected_at, diff)
   SELECT $1, c.action, u.id, u.company_login, u.login, u.party_number, u.date_modified, $2,
     -- An insert's diff is its first version: the cpq.user_changes view reads it from history.
     CASE WHEN c.action = 'insert' THEN NULL ELSE
       CASE WHEN c.action = 'delete' THEN '{}'::jsonb ELSE ${FIELD_DIFF} || ${UNMAPPED_DIFF} END
       || CASE c.action
            WHEN 'delete' THEN jsonb_build_object('deleted_at', jsonb_build_object('old', NULL, 'new', ${isoUtc('$2::timestamptz')}))
            WHEN 'restore' THEN jsonb_build_object('deleted_at', jsonb_build_object('old', ${isoUtc('o.deleted_at')}, 'new', NULL))
            ELSE '{}'::jsonb
          END
       || CASE WHEN g.user_id IS NULL THEN '{}'::jsonb
          ELSE jsonb_build_object('groups', jsonb_build_object('added', g.added, 'removed', g.removed)) END
       || CASE WHEN p.user_id IS NULL THEN '{}'::jsonb
          ELSE jsonb_build_object('accessPermissions', jsonb_build_object('added', p.added, 'removed', p.removed, 'changed', p.changed)) END
     END
   FROM run_changed c
   JOIN cpq.users u ON u.id = c.user_id
   LEFT JOIN run_old o ON o.id = c.user_id
   LEFT JOIN (
     SELECT user_id,
            coalesce(jsonb_agg(variable_name ORDER BY variable_name) FILTER (WHERE op = 'added'), '[]') AS added,
            coalesce(jsonb_agg(variable_name ORDER BY variable_name) FILTER (WHERE op = 'removed'), '[]') AS removed
     FROM run_group_diff WHERE user_id IN (SELECT user_id FROM run_changed WHERE action <> 'insert') GROUP BY user_id
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
     FROM run_permission_diff WHERE user_id IN (SELECT user_id FROM run_changed WHERE action <> 'insert') GROUP BY user_id
   ) p ON p.user_id = c.user_id`,

  ...GROUP_STEPS,
];

/** Per company read in full: how many known users the read did not return (the deletion guard's input). */
export async function deletionCandidates(client: pg.PoolClient, runId: string, companies: string[]): Promise<DeletionCandidates[]> {
  if (companies.length === 0) return [];
  const { rows } = await client.query<{ company: string; known: string; missing: string }>(
    `SELECT c.company,
            count(u.id) AS known,
            count(u.id) FILTER (WHERE NOT EXISTS (
              SELECT 1 FROM stage_users s WHERE s.company_login = u.company_login AND s.login = u.login)) AS missing
     FROM unnest($1::text[]) AS c(company)
     LEFT JOIN cpq.users u ON u.company_login = c.company AND u.deleted_at IS NULL AND ${knownBeforeRun('u', '$2')}
     GROUP BY c.company`,
    [companies, runId],
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

/** Runs statements in order, each given only the parameters ($1...) it uses; timings at debug. */
async function runSteps(client: pg.PoolClient, steps: string[], params: unknown[], what: string, log?: Logger): Promise<void> {
  for (const [index, step] of steps.entries()) {
    const started = performance.now();
    // Statements without parameters may hold several statements, which only the simple query
    // protocol runs.
    const used = params.map((_, i) => i + 1).filter((n) => step.includes(`$${n}`));
    if (used.length === 0) await client.query(step);
    else await client.query(step.replace(/\$(\d)/g, (_, n: string) => `$${used.indexOf(Number(n)) + 1}`), used.map((n) => params[n - 1]));
    log?.debug({ step: index + 1, ms: Math.round(performance.now() - started), sql: step.trim().split('\n')[0] }, what);
  }
}

/** Merges the users staged with afterSeq < seq <= toSeq that are new to the database; returns how many. */
export async function mergeNewUsers(
  client: pg.PoolClient,
  runId: string,
  effectiveAt: Date,
  afterSeq: number,
  toSeq: number,
  log?: Logger,
): Promise<number> {
  await runSteps(client, BATCH_STEPS, [runId, effectiveAt, afterSeq, toSeq], 'merge batch step', log);
  const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM batch_users');
  return rows[0]!.n;
}

/**
 * Merges what was staged; `deleteIn` names the companies whose missing users are marked deleted,
 * `insertedEarlier` how many users this run inserted already (merge batches and direct loads).
 */
export async function mergeStaged(
  client: pg.PoolClient,
  runId: string,
  effectiveAt: Date,
  deleteIn: string[],
  insertedEarlier: number,
  log?: Logger,
): Promise<MergeCounts> {
  await runSteps(client, mergeSteps(await userColumns(client)), [runId, effectiveAt, deleteIn], 'merge step', log);
  const { rows } = await client.query<{ action: string; n: string }>(
    `SELECT action, count(*) AS n FROM run_users GROUP BY action
     UNION ALL SELECT 'delete', count(*) FROM run_deleted`,
  );
  const count = (action: string) => Number(rows.find((r) => r.action === action)?.n ?? 0);
  const counts = {
    // 'batched' and 'reinsert' users are among insertedEarlier.
    inserted: insertedEarlier + count('insert'),
    updated: count('update'),
    restored: count('restore'),
    // A user whose record was only restated (see the 'restated' step) is an unchanged user.
    unchanged: count('unchanged') + count('restated'),
    deleted: count('delete'),
  };
  return { seen: counts.inserted + counts.updated + counts.restored + counts.unchanged, ...counts };
}
