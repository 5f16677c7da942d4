import { step, type Step } from '../db/steps.js';
import { BATCH_PARAMS, RUN_PARAMS, type BatchParam } from './merge-params.js';
import { KEEP_UNLESS_DESCRIBED, copyPreference, keptAsStored } from '../db/sql/stage-groups.js';
import { dataColumns } from './merge-sql.js';

/*
 * The steps that write users new to the database: shared by the merge batches (below), which
 * write them while the run goes on reading, and the final merge (merge-plan.ts).
 */

/**
 * Notes the group definitions that the staged rows of the users in `users` (a table with seq)
 * carry, in stage_groups, the copy staged last winning. cpq.groups is written once per run, by
 * the group steps.
 */
export const stageGroups = (name: string, users: string, where: string) =>
  step(
    name,
    RUN_PARAMS,
    (p) => `
  INSERT INTO stage_groups (variable_name, label, type, described)
  SELECT DISTINCT ON (g.variable_name) g.variable_name, g.label, g.type, g.described
  FROM stage_user_groups g JOIN ${users} r ON r.seq = g.seq
  LEFT JOIN cpq.groups s ON s.site = ${p.site} AND s.variable_name = g.variable_name
  WHERE ${where}
  ORDER BY g.variable_name, ${copyPreference('g', 's', 'g.seq')}
  ON CONFLICT (variable_name) DO UPDATE
    -- A CSV export names groups without label or type: keep what a fuller read said.
    SET ${KEEP_UNLESS_DESCRIBED} WHERE ${keptAsStored(p.site)}`,
  );

/** Inserts the users of `users` that pass `where` into cpq.users and notes their new ids there. */
export const insertUsers = (name: string, users: string, where: string) =>
  step(
    name,
    RUN_PARAMS,
    (p) => `
  WITH inserted AS (
    INSERT INTO cpq.users (site, company_login, login, ${dataColumns('')}, first_seen_run_id, last_changed_run_id, valid_from)
    SELECT ${p.site}, s.company_login, s.login, ${dataColumns('s.')}, ${p.runId}, ${p.runId}, ${p.effectiveAt}
    FROM ${users} r JOIN stage_users s ON s.seq = r.seq WHERE ${where}
    RETURNING id, company_login, login
  )
  UPDATE ${users} r SET user_id = i.id
  FROM inserted i WHERE r.company_login = i.company_login AND r.login = i.login`,
  );

/**
 * A merge batch: the users staged with afterSeq < seq <= toSeq that the database does not hold
 * at all, written while the run goes on reading (on a first load, every user). Everything else
 * (updates, restores, unchanged users, deletions, and a later copy of a user a batch inserted)
 * is left to the final merge.
 */
export const BATCH_STEPS: Step<BatchParam>[] = [
  // Each batch of the run makes its own; the one before is done with.
  step('drop the previous batch', [], () => 'DROP TABLE IF EXISTS batch_users'),
  step(
    'find new users',
    BATCH_PARAMS,
    (p) => `CREATE TEMP TABLE batch_users ON COMMIT DROP AS
   SELECT DISTINCT ON (s.company_login COLLATE "C", s.login COLLATE "C") s.seq, s.company_login, s.login, NULL::bigint AS user_id
   FROM stage_users s
   WHERE s.seq > ${p.afterSeq} AND s.seq <= ${p.toSeq}
     AND NOT EXISTS (SELECT 1 FROM cpq.users u WHERE u.site = ${p.site} AND u.company_login = s.company_login AND u.login = s.login)
   -- In code-point order, as run_users (merge-plan.ts), whatever the database's collation.
   ORDER BY s.company_login COLLATE "C", s.login COLLATE "C", s.seq DESC`,
  ),
  stageGroups('note the batch groups', 'batch_users', 'true'),
  insertUsers('insert the batch users', 'batch_users', 'true'),
  step(
    'insert the batch memberships',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.user_groups (site, user_id, group_variable_name, added_at)
   SELECT ${p.site}, r.user_id, g.variable_name, ${p.effectiveAt} FROM batch_users r JOIN stage_user_groups g ON g.seq = r.seq
   ON CONFLICT DO NOTHING`,
  ),
  step(
    'insert the batch permissions',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.user_access_permissions (site, user_id, type, variable_name, name, has_access, valid_from)
   SELECT ${p.site}, r.user_id, p.type, p.variable_name, p.name, p.has_access, ${p.effectiveAt} FROM batch_users r JOIN stage_user_permissions p ON p.seq = r.seq`,
  ),
  // An insert's diff is its first version: the cpq.user_changes view reads it from history.
  step(
    'log the batch inserts',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.user_change_log (site, run_id, change, user_id, company_login, login, party_number, date_modified, detected_at, diff)
   SELECT ${p.site}, ${p.runId}, 'insert', r.user_id, r.company_login, r.login, s.party_number, s.date_modified, ${p.effectiveAt}, NULL
   FROM batch_users r JOIN stage_users s ON s.seq = r.seq`,
  ),
];
