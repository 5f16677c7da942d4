import { step, type Step } from '../db/steps.js';
import { knownBeforeRun } from '../db/sql/known-before-run.js';
import { heldByAnother, keptIdentity } from '../db/sql/last-known-identity.js';
import { isoUtcSql } from '../db/as-text.js';
import { GROUP_STEPS } from './group-steps.js';
import { MERGE_PARAMS, RUN_PARAMS, type MergeParam } from './merge-params.js';
import { DIFF_COLUMNS, FIELD_DIFF, UNMAPPED_DIFF, dataColumns, erasedFieldsDiff, unmappedFields } from './merge-sql.js';
import { insertUsers, stageGroups } from './new-user-steps.js';

/*
 * The merge's statements, one set-based statement per step, each named for what it does (the
 * name is what the debug log shows) and declaring the parameters it reads by name (db/steps.ts).
 * They run in the run's transaction, on temporary tables the stager filled (stager.ts).
 */

/*
 * The final merge of the staged rows into the current tables, the history tables and the change
 * log. The steps first work out what changes (run_users.action, the deleted users, the membership
 * and permission diffs), move the versions being replaced into the *_versions tables, apply the
 * change to the current tables, and last write one change row per changed user.
 */

/** The last copy of each user read (by seq into stage_users), and what it means for the row we hold. */
const findRunUsers = step(
  'find what each user read means',
  RUN_PARAMS,
  (p) => `CREATE TEMP TABLE run_users ON COMMIT DROP AS
   SELECT DISTINCT ON (s.company_login COLLATE "C", s.login COLLATE "C")
     s.seq, s.company_login, s.login,
     -- Another user given the login (heldByAnother): what the former holder had is not theirs, so
     -- a relation the record does not carry (the integration feed sends no access permissions, a
     -- CSV export none either) is read as empty, not left as it was.
     s.has_groups OR another.holder AS has_groups,
     s.has_permissions OR another.holder AS has_permissions,
     another.holder AS another_holder,
     u.id AS user_id,
     CASE
       WHEN u.id IS NULL THEN 'insert'
       -- Inserted earlier in this run (a merge batch or a direct load): done, unless a later copy
       -- was read, which then replaces what was written (still one insert: its diff is read
       -- from the version).
       WHEN u.first_seen_run_id = ${p.runId} THEN CASE WHEN u.content_hash = s.content_hash THEN 'batched' ELSE 'reinsert' END
       WHEN u.deleted_at IS NOT NULL THEN 'restore'
       WHEN u.content_hash = s.content_hash THEN 'unchanged'
       ELSE 'update'
     END AS action
   FROM stage_users s
   LEFT JOIN cpq.users u ON u.site = ${p.site} AND u.company_login = s.company_login AND u.login = s.login
   CROSS JOIN LATERAL (SELECT ${heldByAnother('s', 'u')} AS holder) another
   -- In code-point order: the change rows are numbered as this table is read, and by the
   -- database's collation a run's changes came in another order from a database of another
   -- locale (review GX: the changes export, en-US against C).
   ORDER BY s.company_login COLLATE "C", s.login COLLATE "C", s.seq DESC`,
);

/**
 * The dateAdded and CPQ id last known of each stored login's holder, where the row is to hold
 * null (last-known-identity.ts): written before the users are, which read the stored row. Only
 * rows replaced by a record that says otherwise (an unchanged one says the same). A deleted user
 * coming back starts afresh, as a one-feed read takes it (readStoredRecords leaves deleted users
 * out): the login may be someone else's now, and the deleted holder's values are not its own
 * (review GM: a new holder sending none, then its own, was taken for a third person). So does a
 * user reinserted (read twice in the run that first stored it): the later copy replaces the first
 * outright, and no version keeps the first copy's values, which cpq.admin_rights_as_of, reading
 * the versions, would not know (review GN: an id only that copy sent told the next holder apart).
 */
const startsAfresh = "(r.another_holder OR r.action IN ('restore', 'reinsert'))";
const keepKnownIdentity = step(
  'keep the identity last known',
  RUN_PARAMS,
  (p) => `WITH kept AS (
     SELECT r.user_id,
       ${keptIdentity('s', 'u', startsAfresh, 'date_added')} AS date_added,
       ${keptIdentity('s', 'u', startsAfresh, 'cpq_id')} AS cpq_id
     FROM run_users r JOIN stage_users s ON s.seq = r.seq JOIN cpq.users u ON u.id = r.user_id
     WHERE r.action IN ('update', 'restore', 'reinsert')
   ), cleared AS (
     DELETE FROM cpq.user_known_identity k USING kept WHERE k.user_id = kept.user_id AND kept.date_added IS NULL AND kept.cpq_id IS NULL
   )
   INSERT INTO cpq.user_known_identity (user_id, site, date_added, cpq_id)
   SELECT user_id, ${p.site}, date_added, cpq_id FROM kept WHERE date_added IS NOT NULL OR cpq_id IS NOT NULL
   ON CONFLICT (user_id) DO UPDATE SET date_added = excluded.date_added, cpq_id = excluded.cpq_id
   WHERE (cpq.user_known_identity.date_added, cpq.user_known_identity.cpq_id) IS DISTINCT FROM (excluded.date_added, excluded.cpq_id)`,
);

/** The steps below join run_users by seq and user id; without statistics the planner guesses its size. */
const indexRunUsers = step(
  'index run_users',
  [],
  () => `CREATE INDEX ON run_users (seq); CREATE INDEX ON run_users (user_id); ANALYZE run_users;
   ANALYZE stage_users (seq, company_login, login)`,
);

/**
 * A user whose record says what the stored one says, in other words, has not changed: every
 * column, membership, access permission and custom field is the same, and only what no change
 * row can name differs (a group's label or type, logged once per group by the group steps; a
 * record read from a CSV export after a JSON read, or the reverse; another spelling of a field
 * name). Its row takes the record as read (raw, digest) in a new version, and no change row.
 */
const findRestatedUsers = step(
  'find restated users',
  [],
  // One CASE, so the tests run cheapest first and stop at the first difference. As separate
  // conditions, Postgres made the custom-field comparison a hash-join key and computed it for
  // every updated user, though a changed column had already settled most of them: 1.2 s of a
  // million-user nightly run that changed 10,000.
  // Memberships and permissions are compared as sorted arrays, each side read once by its index:
  // as NOT EXISTS in both directions, planned for the few groups a user has on average, a user in
  // k groups cost k² (review HJ: 32,000 groups, 65 s; a CSV cell of 100,000 names, past 10 minutes).
  () => `UPDATE run_users r SET action = 'restated'
   FROM stage_users s, cpq.users u
   WHERE r.action = 'update' AND s.seq = r.seq AND u.id = r.user_id
     AND CASE
       WHEN (${DIFF_COLUMNS.map((c) => `u.${c}`).join(', ')}) IS DISTINCT FROM (${DIFF_COLUMNS.map((c) => `s.${c}`).join(', ')}) THEN false
       WHEN r.has_groups
         AND ARRAY(SELECT DISTINCT g.variable_name COLLATE "C" FROM stage_user_groups g WHERE g.seq = r.seq ORDER BY 1)
             <> ARRAY(SELECT ug.group_variable_name COLLATE "C" FROM cpq.user_groups ug WHERE ug.user_id = r.user_id ORDER BY 1) THEN false
       WHEN r.has_permissions
         AND ARRAY(SELECT DISTINCT ROW(p.type, p.variable_name, p.name, p.has_access) FROM stage_user_permissions p WHERE p.seq = r.seq ORDER BY 1)
             <> ARRAY(SELECT ROW(up.type, up.variable_name, up.name, up.has_access) FROM cpq.user_access_permissions up WHERE up.user_id = r.user_id ORDER BY 1) THEN false
       ELSE ${unmappedFields('u.raw')} = ${unmappedFields('s.raw')}
     END`,
);

/** Users CPQ no longer returns, in the companies MergeDeletions names. */
const findDeletedUsers = step(
  'find deleted users',
  MERGE_PARAMS,
  (p) => `CREATE TEMP TABLE run_deleted ON COMMIT DROP AS
   SELECT u.id AS user_id
   FROM cpq.users u
   WHERE u.site = ${p.site} AND u.deleted_at IS NULL AND ${knownBeforeRun('u', p.runId)}
     AND (u.company_login = ANY(${p.deleteIn}::text[])
          OR (NOT u.is_integration_user AND u.company_login = ANY(${p.deleteNonIntegrationIn}::text[]))
          OR (u.is_integration_user AND u.company_login = ANY(${p.integrationDeleteIn}::text[])))
     AND NOT EXISTS (SELECT 1 FROM run_users r WHERE r.company_login = u.company_login AND r.login = u.login)`,
);

/** The current versions this run replaces: kept for the diff, and ended into cpq.user_versions. */
const keepReplacedUsers = step(
  'keep the replaced versions',
  [],
  () => `CREATE TEMP TABLE run_old ON COMMIT DROP AS
   SELECT u.* FROM cpq.users u JOIN run_users r ON r.user_id = u.id
   WHERE r.action IN ('update', 'restore', 'restated')`,
);

/** `userColumns`: every column of cpq.users (user-columns.ts), so a version keeps all a later migration adds. */
const endUserVersions = (userColumns: readonly string[]) =>
  step(
    'end the replaced user versions',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.user_versions (${userColumns.join(', ')}, valid_to, ended_by_run_id)
   SELECT ${userColumns.map((c) => `u.${c}`).join(', ')}, ${p.effectiveAt}, ${p.runId}
   FROM cpq.users u
   WHERE u.id IN (SELECT id FROM run_old UNION ALL SELECT user_id FROM run_deleted)`,
  );

/**
 * Batched users' groups were noted by their batch (label and type come from the copy staged last
 * among those each statement saw, as with concurrent streams before).
 */
const stageRunGroups = stageGroups('note the run groups', 'run_users', "r.action <> 'batched'");
const insertRunUsers = insertUsers('insert new users', 'run_users', "r.action = 'insert'");
const updateUsers = step(
  'update changed users',
  RUN_PARAMS,
  (p) => `UPDATE cpq.users u
   SET (${dataColumns('')}) = (${dataColumns('s.')}),
       last_synced_at = now(), last_changed_at = now(), last_changed_run_id = ${p.runId}, deleted_at = NULL, valid_from = ${p.effectiveAt}
   FROM run_users r JOIN stage_users s ON s.seq = r.seq
   WHERE r.action IN ('update', 'restore', 'reinsert') AND u.id = r.user_id`,
);
const touchUnchangedUsers = step(
  'touch unchanged users',
  [],
  () => `UPDATE cpq.users u SET last_synced_at = now() FROM run_users r WHERE r.action = 'unchanged' AND u.id = r.user_id`,
);
const restateUsers = step(
  'restate users',
  RUN_PARAMS,
  (p) => `UPDATE cpq.users u SET raw = s.raw, content_hash = s.content_hash, last_synced_at = now(), valid_from = ${p.effectiveAt}
   FROM run_users r JOIN stage_users s ON s.seq = r.seq
   WHERE r.action = 'restated' AND u.id = r.user_id`,
);
const markUsersDeleted = step(
  'mark users deleted',
  RUN_PARAMS,
  (p) => `UPDATE cpq.users u SET deleted_at = ${p.effectiveAt}, last_changed_at = now(), last_changed_run_id = ${p.runId}, valid_from = ${p.effectiveAt}
   FROM run_deleted d WHERE u.id = d.user_id`,
);

/*
 * A reinserted user's memberships and permissions all started in this run: the later copy
 * replaces them outright (where it carries them), and they are added again below.
 */
const clearReinsertedGroups = step(
  'clear reinserted memberships',
  [],
  () => `DELETE FROM cpq.user_groups ug USING run_users r WHERE r.action = 'reinsert' AND r.has_groups AND ug.user_id = r.user_id`,
);
const clearReinsertedPermissions = step(
  'clear reinserted permissions',
  [],
  () => `DELETE FROM cpq.user_access_permissions p USING run_users r WHERE r.action = 'reinsert' AND r.has_permissions AND p.user_id = r.user_id`,
);

/*
 * The membership and permission diffs join what the run read (`read`) with what is held (`held`)
 * for the users whose record changed (`changed`, one scan of run_users: in a run that changed no
 * one, that scan is all the work), in one FULL JOIN on the whole key. Postgres can run that only as
 * a hash or merge join, so the work grows with the rows, whatever the planner guesses. As NOT
 * EXISTS per row, planned for the few groups a user has on average, a user in k groups cost k²
 * (review HJ: 8 users of 8,000 groups, one removed, took 70 s). What was held is removed only from
 * users it was replaced for (updated, restored); added is what no held row matches.
 */

/** Membership diff: staged groups against current ones, for users whose record changed. */
const diffMemberships = step(
  'diff memberships',
  [],
  () => `CREATE TEMP TABLE run_group_diff ON COMMIT DROP AS
   WITH changed AS (
     SELECT seq, user_id, action FROM run_users WHERE action NOT IN ('unchanged', 'batched') AND has_groups
   ), read AS (
     SELECT c.user_id, g.variable_name FROM changed c JOIN stage_user_groups g ON g.seq = c.seq
   ), held AS (
     SELECT c.user_id, c.action, ug.group_variable_name AS variable_name FROM changed c JOIN cpq.user_groups ug ON ug.user_id = c.user_id
   )
   SELECT coalesce(s.user_id, h.user_id) AS user_id, coalesce(s.variable_name, h.variable_name) AS variable_name,
          CASE WHEN h.user_id IS NULL THEN 'added' ELSE 'removed' END AS op
   FROM read s FULL JOIN held h ON h.user_id = s.user_id AND h.variable_name = s.variable_name
   WHERE h.user_id IS NULL OR (s.user_id IS NULL AND h.action IN ('update', 'restore'))
   UNION ALL
   SELECT ug.user_id, ug.group_variable_name, 'removed'
   FROM run_deleted d JOIN cpq.user_groups ug ON ug.user_id = d.user_id`,
);

/** Permission diff: added, removed, or changed name/hasAccess. */
const diffPermissions = step(
  'diff permissions',
  [],
  () => `CREATE TEMP TABLE run_permission_diff ON COMMIT DROP AS
   WITH changed AS (
     SELECT seq, user_id, action FROM run_users WHERE action NOT IN ('unchanged', 'batched') AND has_permissions
   ), read AS (
     SELECT c.user_id, p.type, p.variable_name, p.name, p.has_access FROM changed c JOIN stage_user_permissions p ON p.seq = c.seq
   ), held AS (
     SELECT c.user_id, c.action, p.type, p.variable_name, p.name, p.has_access FROM changed c JOIN cpq.user_access_permissions p ON p.user_id = c.user_id
   )
   SELECT coalesce(s.user_id, h.user_id) AS user_id, coalesce(s.type, h.type) AS type, coalesce(s.variable_name, h.variable_name) AS variable_name,
          h.name AS old_name, h.has_access AS old_has_access, s.name AS new_name, s.has_access AS new_has_access,
          CASE WHEN h.user_id IS NULL THEN 'added' WHEN s.user_id IS NULL THEN 'removed' ELSE 'changed' END AS op
   FROM read s FULL JOIN held h ON h.user_id = s.user_id AND h.type = s.type AND h.variable_name = s.variable_name
   WHERE h.user_id IS NULL
      OR (h.action IN ('update', 'restore') AND (s.user_id IS NULL OR (h.name, h.has_access) IS DISTINCT FROM (s.name, s.has_access)))
   UNION ALL
   SELECT p.user_id, p.type, p.variable_name, p.name, p.has_access, NULL, NULL, 'removed'
   FROM run_deleted d JOIN cpq.user_access_permissions p ON p.user_id = d.user_id`,
);

/** Memberships: ended ones move to their versions table, new ones start now. */
const endMemberships = step(
  'end removed memberships',
  RUN_PARAMS,
  (p) => `WITH removed AS (
     DELETE FROM cpq.user_groups ug USING run_group_diff d
     WHERE d.op = 'removed' AND ug.user_id = d.user_id AND ug.group_variable_name = d.variable_name
     RETURNING ug.site, ug.user_id, ug.group_variable_name, ug.added_at
   )
   INSERT INTO cpq.user_group_versions (site, user_id, group_variable_name, added_at, valid_to, ended_by_run_id)
   SELECT site, user_id, group_variable_name, added_at, ${p.effectiveAt}, ${p.runId} FROM removed`,
);
const addMemberships = step(
  'add memberships',
  RUN_PARAMS,
  (p) => `INSERT INTO cpq.user_groups (site, user_id, group_variable_name, added_at)
   SELECT ${p.site}, user_id, variable_name, ${p.effectiveAt} FROM run_group_diff WHERE op = 'added'
   ON CONFLICT DO NOTHING`,
);

/** Access permissions: removed and changed ones end their version; changed and added ones start one. */
const endPermissionVersions = step(
  'end replaced permission versions',
  RUN_PARAMS,
  (p) => `INSERT INTO cpq.user_access_permission_versions (site, user_id, type, variable_name, name, has_access, valid_from, valid_to, ended_by_run_id)
   SELECT p.site, p.user_id, p.type, p.variable_name, p.name, p.has_access, p.valid_from, ${p.effectiveAt}, ${p.runId}
   FROM cpq.user_access_permissions p JOIN run_permission_diff d
     ON d.op IN ('removed', 'changed') AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name`,
);
const removePermissions = step(
  'remove permissions',
  [],
  () => `DELETE FROM cpq.user_access_permissions p USING run_permission_diff d
   WHERE d.op = 'removed' AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name`,
);
const changePermissions = step(
  'change permissions',
  RUN_PARAMS,
  (p) => `UPDATE cpq.user_access_permissions p SET name = d.new_name, has_access = d.new_has_access, valid_from = ${p.effectiveAt}
   FROM run_permission_diff d
   WHERE d.op = 'changed' AND p.user_id = d.user_id AND p.type = d.type AND p.variable_name = d.variable_name`,
);
const addPermissions = step(
  'add permissions',
  RUN_PARAMS,
  (p) => `INSERT INTO cpq.user_access_permissions (site, user_id, type, variable_name, name, has_access, valid_from)
   SELECT ${p.site}, user_id, type, variable_name, new_name, new_has_access, ${p.effectiveAt} FROM run_permission_diff WHERE op = 'added'`,
);

/** The users that get a change row: batched, reinserted and restated ones have theirs already or none. */
const findChangedUsers = step(
  'find changed users',
  [],
  () => `CREATE TEMP TABLE run_changed ON COMMIT DROP AS
   SELECT user_id, action FROM run_users WHERE action NOT IN ('unchanged', 'batched', 'reinsert', 'restated')
   UNION ALL SELECT user_id, 'delete' FROM run_deleted`,
);

/**
 * Whether the old row `o` had its personal fields erased: by `forget` (an erasure of the user), or
 * by HISTORY_RETENTION (deleted before the cutoff the last run redacted to). Both erase only
 * deleted users, so only a restore reads such a row.
 */
const erasedRow = (site: string) =>
  `(o.deleted_at < (SELECT s.redacted_before FROM cpq.retention_state s WHERE s.site = ${site})
    OR EXISTS (SELECT 1 FROM cpq.erasures e WHERE e.site = ${site} AND e.company_login = o.company_login AND e.login = o.login AND e.user_id = o.id))`;

/**
 * The change log: one row per changed user, the field diff of updates computed set-based. Groups
 * and permissions in code-point order (COLLATE "C"), as an insert's diff lists them
 * (cpq.insert_diff): by the database's collation, the same change read differently in two
 * databases (`Beta` after `alpha` under en-US), and so did their seals.
 */
const logUserChanges = step(
  'log user changes',
  RUN_PARAMS,
  (p) => `INSERT INTO cpq.user_change_log (site, run_id, change, user_id, company_login, login, party_number, date_modified, detected_at, diff)
   SELECT u.site, ${p.runId}, c.action, u.id, u.company_login, u.login, u.party_number, u.date_modified, ${p.effectiveAt},
     -- An insert's diff is its first version: the cpq.user_changes view reads it from history.
     CASE WHEN c.action = 'insert' THEN NULL ELSE
       CASE WHEN c.action = 'delete' THEN '{}'::jsonb ELSE ${FIELD_DIFF} || ${UNMAPPED_DIFF} END
       || ${erasedFieldsDiff(`c.action = 'restore' AND ${erasedRow(p.site)}`)}
       || CASE c.action
            WHEN 'delete' THEN jsonb_build_object('deleted_at', jsonb_build_object('old', NULL, 'new', ${isoUtcSql(`${p.effectiveAt}::timestamptz`)}))
            WHEN 'restore' THEN jsonb_build_object('deleted_at', jsonb_build_object('old', ${isoUtcSql('o.deleted_at')}, 'new', NULL))
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
            coalesce(jsonb_agg(variable_name ORDER BY variable_name COLLATE "C") FILTER (WHERE op = 'added'), '[]') AS added,
            coalesce(jsonb_agg(variable_name ORDER BY variable_name COLLATE "C") FILTER (WHERE op = 'removed'), '[]') AS removed
     FROM run_group_diff WHERE user_id IN (SELECT user_id FROM run_changed WHERE action <> 'insert') GROUP BY user_id
   ) g ON g.user_id = c.user_id
   LEFT JOIN (
     SELECT user_id,
            coalesce(jsonb_agg(jsonb_build_object('type', type, 'variableName', variable_name, 'name', new_name, 'hasAccess', new_has_access)
                       ORDER BY type COLLATE "C", variable_name COLLATE "C") FILTER (WHERE op = 'added'), '[]') AS added,
            coalesce(jsonb_agg(jsonb_build_object('type', type, 'variableName', variable_name, 'name', old_name, 'hasAccess', old_has_access)
                       ORDER BY type COLLATE "C", variable_name COLLATE "C") FILTER (WHERE op = 'removed'), '[]') AS removed,
            coalesce(jsonb_agg(jsonb_build_object('type', type, 'variableName', variable_name,
                       'old', jsonb_build_object('name', old_name, 'hasAccess', old_has_access),
                       'new', jsonb_build_object('name', new_name, 'hasAccess', new_has_access))
                       ORDER BY type COLLATE "C", variable_name COLLATE "C") FILTER (WHERE op = 'changed'), '[]') AS changed
     FROM run_permission_diff WHERE user_id IN (SELECT user_id FROM run_changed WHERE action <> 'insert') GROUP BY user_id
   ) p ON p.user_id = c.user_id`,
);

/**
 * A user written earlier in this run and read again with other content (a later copy) has its
 * insert row already, logged with the first copy's keys: they are the stored row's now. (Its diff
 * is its first version, read from history, which the later copy already replaced.)
 */
const relogReinsertedUsers = step(
  'relog reinserted users',
  RUN_PARAMS,
  (p) => `UPDATE cpq.user_change_log l SET party_number = u.party_number, date_modified = u.date_modified
   FROM run_users r JOIN cpq.users u ON u.id = r.user_id
   WHERE r.action = 'reinsert' AND l.run_id = ${p.runId} AND l.user_id = r.user_id AND l.change = 'insert'
     AND (l.party_number IS DISTINCT FROM u.party_number OR l.date_modified IS DISTINCT FROM u.date_modified)`,
);

/** The final merge's steps in order; `userColumns` are cpq.users' columns, quoted (user-columns.ts). */
export const mergeSteps = (userColumns: readonly string[]): Step<MergeParam>[] => [
  findRunUsers,
  indexRunUsers,
  keepKnownIdentity,
  findRestatedUsers,
  findDeletedUsers,
  keepReplacedUsers,
  endUserVersions(userColumns),
  stageRunGroups,
  // Current users.
  insertRunUsers,
  updateUsers,
  touchUnchangedUsers,
  restateUsers,
  markUsersDeleted,
  clearReinsertedGroups,
  clearReinsertedPermissions,
  diffMemberships,
  diffPermissions,
  endMemberships,
  addMemberships,
  endPermissionVersions,
  removePermissions,
  changePermissions,
  addPermissions,
  findChangedUsers,
  logUserChanges,
  relogReinsertedUsers,
  ...GROUP_STEPS,
];
