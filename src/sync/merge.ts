import type pg from 'pg';
import { USER_VALUE_COLUMN_TYPES } from '../normalize/user-fields.js';

export interface MergeCounts {
  seen: number;
  inserted: number;
  updated: number;
  unchanged: number;
}

// Column lists are constants from the field mapping, never data.
const DATA_COLUMNS = ['company_name', 'is_integration_user', ...USER_VALUE_COLUMN_TYPES.map((c) => c.column), 'raw', 'content_hash'];
const list = (prefix: string) => DATA_COLUMNS.map((c) => `${prefix}${c}`).join(', ');

/**
 * Set-based merge of the staged rows into the current tables, one statement per step, all in the
 * run's transaction. A user whose content digest did not change keeps its row as it was, except
 * last_synced_at. $1 is the run id.
 */
const MERGE_STEPS: { name: string; sql: string }[] = [
  {
    name: 'pick the last copy of each user',
    sql: `
CREATE TEMP TABLE run_users ON COMMIT DROP AS
SELECT DISTINCT ON (s.company_login, s.login)
  s.*,
  u.id AS user_id,
  CASE
    WHEN u.id IS NULL THEN 'insert'
    WHEN u.content_hash = s.content_hash AND u.deleted_at IS NULL THEN 'unchanged'
    ELSE 'update'
  END AS action
FROM stage_users s
LEFT JOIN cpq.users u ON u.company_login = s.company_login AND u.login = s.login
ORDER BY s.company_login, s.login, s.seq DESC`,
  },
  { name: 'index run users', sql: `CREATE INDEX ON run_users (seq); ANALYZE run_users` },
  {
    name: 'upsert groups',
    sql: `
INSERT INTO cpq.groups (variable_name, label, type)
SELECT DISTINCT ON (g.variable_name) g.variable_name, g.label, g.type
FROM stage_user_groups g JOIN run_users r ON r.seq = g.seq
ORDER BY g.variable_name, g.seq DESC
ON CONFLICT (variable_name) DO UPDATE
  SET label = excluded.label, type = excluded.type, last_synced_at = now()`,
  },
  {
    name: 'insert new users',
    sql: `
WITH inserted AS (
  INSERT INTO cpq.users (company_login, login, ${list('')}, first_seen_run_id, last_changed_run_id)
  SELECT company_login, login, ${list('')}, $1, $1 FROM run_users WHERE action = 'insert'
  RETURNING id, company_login, login
)
UPDATE run_users r SET user_id = i.id
FROM inserted i WHERE r.company_login = i.company_login AND r.login = i.login`,
  },
  {
    name: 'update changed users',
    sql: `
UPDATE cpq.users u
SET (${list('')}) = (${list('r.')}),
    last_synced_at = now(), last_changed_at = now(), last_changed_run_id = $1, deleted_at = NULL
FROM run_users r
WHERE r.action = 'update' AND u.id = r.user_id`,
  },
  {
    name: 'touch unchanged users',
    sql: `UPDATE cpq.users u SET last_synced_at = now() FROM run_users r WHERE r.action = 'unchanged' AND u.id = r.user_id`,
  },
  {
    name: 'remove ended group memberships',
    sql: `
DELETE FROM cpq.user_groups ug
USING run_users r
WHERE ug.user_id = r.user_id AND r.action <> 'unchanged' AND r.has_groups
  AND NOT EXISTS (SELECT 1 FROM stage_user_groups g WHERE g.seq = r.seq AND g.variable_name = ug.group_variable_name)`,
  },
  {
    name: 'add group memberships',
    sql: `
INSERT INTO cpq.user_groups (user_id, group_variable_name)
SELECT r.user_id, g.variable_name
FROM run_users r JOIN stage_user_groups g ON g.seq = r.seq
WHERE r.action <> 'unchanged' AND r.has_groups
ON CONFLICT DO NOTHING`,
  },
  {
    name: 'remove ended access permissions',
    sql: `
DELETE FROM cpq.user_access_permissions p
USING run_users r
WHERE p.user_id = r.user_id AND r.action <> 'unchanged' AND r.has_permissions
  AND NOT EXISTS (
    SELECT 1 FROM stage_user_permissions s
    WHERE s.seq = r.seq AND s.type = p.type AND s.variable_name = p.variable_name)`,
  },
  {
    name: 'upsert access permissions',
    sql: `
INSERT INTO cpq.user_access_permissions (user_id, type, variable_name, name, has_access)
SELECT r.user_id, s.type, s.variable_name, s.name, s.has_access
FROM run_users r JOIN stage_user_permissions s ON s.seq = r.seq
WHERE r.action <> 'unchanged' AND r.has_permissions
ON CONFLICT (user_id, type, variable_name) DO UPDATE
  SET name = excluded.name, has_access = excluded.has_access
  WHERE (cpq.user_access_permissions.name, cpq.user_access_permissions.has_access)
    IS DISTINCT FROM (excluded.name, excluded.has_access)`,
  },
];

export async function mergeStaged(client: pg.PoolClient, runId: string): Promise<MergeCounts> {
  for (const step of MERGE_STEPS) {
    // Steps without parameters may hold several statements, which only the simple protocol runs.
    if (step.sql.includes('$1')) await client.query(step.sql, [runId]);
    else await client.query(step.sql);
  }
  const { rows } = await client.query<{ action: string; n: string }>(`SELECT action, count(*) AS n FROM run_users GROUP BY action`);
  const count = (action: string) => Number(rows.find((r) => r.action === action)?.n ?? 0);
  const counts = { inserted: count('insert'), updated: count('update'), unchanged: count('unchanged') };
  return { seen: counts.inserted + counts.updated + counts.unchanged, ...counts };
}
