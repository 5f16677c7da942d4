import { step, type Step } from '../db/steps.js';
import { RUN_PARAMS } from './merge-params.js';

/** A staged group's label or type as it is to be stored: a null of one not described (a CSV export) keeps the stored one. */
const newValue = (column: 'label' | 'type') => `CASE WHEN n.described THEN n.${column} ELSE coalesce(n.${column}, g.${column}) END`;

/*
 * The group steps, once per run after the users are merged (groups are a few hundred, users up to
 * millions): the definitions the run read (stage_groups) against cpq.groups. A null label or type
 * read from JSON clears it; from a CSV export (which has none) it keeps what a fuller read said. A group whose label or type changes ends its
 * version into cpq.group_versions and starts a new one at the run's effective time; a new or
 * changed group gets one cpq.group_changes row.
 */
export const GROUP_STEPS: Step<(typeof RUN_PARAMS)[number]>[] = [
  step(
    'find changed groups',
    RUN_PARAMS,
    (p) => `CREATE TEMP TABLE run_group_changes ON COMMIT DROP AS
   SELECT n.variable_name, g.variable_name IS NULL AS is_new, g.label AS old_label, g.type AS old_type,
          ${newValue('label')} AS label, ${newValue('type')} AS type
   FROM stage_groups n LEFT JOIN cpq.groups g ON g.site = ${p.site} AND g.variable_name = n.variable_name
   WHERE g.variable_name IS NULL OR (g.label, g.type) IS DISTINCT FROM (${newValue('label')}, ${newValue('type')})`,
  ),
  step(
    'end changed group versions',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.group_versions (site, variable_name, label, type, first_seen_at, last_synced_at, valid_from, valid_to, ended_by_run_id)
   SELECT g.site, g.variable_name, g.label, g.type, g.first_seen_at, g.last_synced_at, g.valid_from, ${p.effectiveAt}, ${p.runId}
   FROM cpq.groups g JOIN run_group_changes c ON g.site = ${p.site} AND c.variable_name = g.variable_name`,
  ),
  step(
    'upsert groups',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.groups AS g (site, variable_name, label, type, valid_from)
   SELECT ${p.site}, n.variable_name, ${newValue('label')}, ${newValue('type')}, ${p.effectiveAt}
   FROM stage_groups n LEFT JOIN cpq.groups g ON g.site = ${p.site} AND g.variable_name = n.variable_name
   ON CONFLICT (site, variable_name) DO UPDATE
     SET label = excluded.label, type = excluded.type, last_synced_at = now(),
         valid_from = CASE WHEN g.variable_name IN (SELECT variable_name FROM run_group_changes) THEN excluded.valid_from ELSE g.valid_from END`,
  ),
  step(
    'log group changes',
    RUN_PARAMS,
    (p) => `INSERT INTO cpq.group_changes (site, run_id, change, group_variable_name, detected_at, diff)
   SELECT ${p.site}, ${p.runId}, CASE WHEN is_new THEN 'insert' ELSE 'update' END, variable_name, ${p.effectiveAt},
          CASE WHEN label IS DISTINCT FROM old_label THEN jsonb_build_object('label', jsonb_build_object('old', old_label, 'new', label)) ELSE '{}' END
          || CASE WHEN type IS DISTINCT FROM old_type THEN jsonb_build_object('type', jsonb_build_object('old', old_type, 'new', type)) ELSE '{}' END
   -- Numbered in code-point order: by the database's collation, another order in a database of another locale (review GX).
   FROM run_group_changes ORDER BY variable_name COLLATE "C"`,
  ),
];
