import type pg from 'pg';
import { sql } from 'kysely';
import { ALERT_FLOOD_RULE, type AlertRuleSettings } from '../../config.js';
import { ADMIN_FLAG_COLUMNS } from '../../normalize/user-fields.js';
import { isoUtcText } from '../as-text.js';
import { queryBuilder, runCompiled } from '../compiled-query.js';

/**
 * A glob (`*` any run of characters, `?` one character, all else literal) as an ILIKE pattern.
 * insertAlertsQuery matches it under the C collation, which folds the case of ASCII letters only:
 * ILIKE under the database's locale folded by its rules, and in a Turkish one 'I' is the capital
 * of 'ı', so `*admin*` missed SUPERADMIN there.
 */
export function globToIlike(glob: string): string {
  return glob
    .replace(/[\\%_]/g, (c) => `\\${c}`)
    .replace(/\*/g, '%')
    .replace(/\?/g, '_');
}

/**
 * Writes the alerts of run `runId` to cpq.alert_outbox, in one statement, from the change-log
 * rows the run wrote (their diffs; for an insert, which logs no diff, the row the run left) and
 * the rules `settings` enables; returns how many rows it wrote and how many of them are
 * suppressed. Run on the run's client, inside its transaction, after the merge: the alerts
 * commit or roll back with the changes they report.
 *
 * At most `maxPerRun` (ALERT_MAX_PER_RUN) are sent: CPQ's data decides how many a run raises (a
 * site flipping every admin flag and adding thousands of watched groups to each user made tens
 * of thousands), and delivery sends them one at a time, oldest first, so a flood held every later
 * alert back for hours (review IA). A run over the cap writes one summary alert first (rule
 * alert_flood: the run, how many alerts, how many per rule, where the changes are), then the
 * first `maxPerRun` alerts in delivery order as pending, and the rest as suppressed: kept, never
 * sent. A run within the cap writes its alerts alone, as before.
 *
 * A company the run loaded for the first time (the run's site held no user of it before the
 * run) raises nothing: every existing admin would be "new". `hostAliases`: the host's own
 * login names other than the one its users are read under, which an earlier release filed
 * integration users under (see the integration_user rule).
 */
export async function insertAlerts(
  client: pg.PoolClient,
  runId: string,
  settings: AlertRuleSettings,
  maxPerRun: number,
  hostAliases: readonly string[] = [],
): Promise<{ written: number; suppressed: number }> {
  if (settings.rules.length === 0) return { written: 0, suppressed: 0 };
  const rows = await runCompiled(client, insertAlertsQuery(runId, settings, maxPerRun, hostAliases));
  return { written: Number(rows[0]?.n ?? 0), suppressed: Number(rows[0]?.suppressed ?? 0) };
}

/** The statement insertAlerts runs (exported for its query plan). */
function insertAlertsQuery(runId: string, settings: AlertRuleSettings, maxPerRun: number, hostAliases: readonly string[] = []) {
  const rules = [...settings.rules];
  const groups = settings.groups.map(globToIlike);
  const flagNames = sql.raw(`ARRAY[${ADMIN_FLAG_COLUMNS.map((c) => `'${c}'`).join(', ')}]::text[]`);
  const flagValues = sql.raw(`ARRAY[${ADMIN_FLAG_COLUMNS.map((c) => `u.${c}`).join(', ')}]::boolean[]`);
  // The sql tag, not the builder: one INSERT ... SELECT over a UNION of jsonb set-returning
  // functions, one branch per rule, reads as SQL and would be raw fragments in the builder.
  return sql<{ n: string; suppressed: string }>`WITH run AS (
       SELECT r.id, r.site, r.started_at FROM cpq.sync_runs r WHERE r.id = ${runId}::bigint
     ),
     changed AS (
       SELECT c.id AS change_id, c.change, c.user_id, c.company_login, c.login, c.diff, c.detected_at
       FROM cpq.user_change_log c WHERE c.run_id = ${runId}::bigint AND c.change IN ('insert', 'update', 'restore')
     ),
     -- Companies of the run's site that had a user before the run. Materialized, a few rows:
     -- inlined, the planner may test it again for every change.
     known AS MATERIALIZED (
       SELECT d.company_login FROM (SELECT DISTINCT company_login FROM changed) d, run
       WHERE EXISTS (SELECT 1 FROM cpq.users k
                     WHERE k.site = run.site AND k.company_login = d.company_login AND k.first_seen_run_id <> run.id)
     ),
     live AS MATERIALIZED (SELECT c.* FROM changed c JOIN known k ON k.company_login = c.company_login),
     found AS (
       -- An admin flag gained or lost (null counts as false).
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'admin_flag' AS rule, f.col AS subject,
              c.diff -> f.col -> 'old' AS old_value, c.diff -> f.col -> 'new' AS new_value,
              -- What tells two alerts of a change and rule apart (the subject, but for permissions).
              NULL::jsonb AS subject_key
       FROM live c CROSS JOIN unnest(${flagNames}) AS f(col)
       WHERE 'admin_flag' = ANY(${rules}::text[]) AND c.change <> 'insert' AND c.diff ? f.col
         AND coalesce(c.diff -> f.col ->> 'old' = 'true', false) <> coalesce(c.diff -> f.col ->> 'new' = 'true', false)
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'admin_flag', f.col, NULL, 'true'::jsonb, NULL
       FROM live c JOIN cpq.users u ON u.id = c.user_id CROSS JOIN LATERAL unnest(${flagNames}, ${flagValues}) AS f(col, enabled)
       WHERE 'admin_flag' = ANY(${rules}::text[]) AND c.change = 'insert' AND f.enabled
       -- Membership gained in a watched group.
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'group_membership', g.name, 'false'::jsonb, 'true'::jsonb, NULL
       FROM live c CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(c.diff -> 'groups' -> 'added', '[]'::jsonb)) AS g(name)
       WHERE 'group_membership' = ANY(${rules}::text[]) AND c.change <> 'insert' AND g.name COLLATE "C" ILIKE ANY(${groups}::text[])
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'group_membership', ug.group_variable_name, NULL, 'true'::jsonb, NULL
       FROM live c JOIN cpq.user_groups ug ON ug.user_id = c.user_id
       WHERE 'group_membership' = ANY(${rules}::text[]) AND c.change = 'insert' AND ug.group_variable_name COLLATE "C" ILIKE ANY(${groups}::text[])
       -- An access permission granted: added with access, or changed to having it.
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'access_permission',
              concat(a ->> 'type', ':', a ->> 'variableName'), NULL, jsonb_build_object('name', a -> 'name', 'hasAccess', a -> 'hasAccess'),
              jsonb_build_array(a -> 'type', a -> 'variableName')
       FROM live c CROSS JOIN LATERAL jsonb_array_elements(coalesce(c.diff -> 'accessPermissions' -> 'added', '[]'::jsonb)) AS a
       WHERE 'access_permission' = ANY(${rules}::text[]) AND c.change <> 'insert' AND a ->> 'hasAccess' = 'true'
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'access_permission',
              concat(x ->> 'type', ':', x ->> 'variableName'), x -> 'old', x -> 'new', jsonb_build_array(x -> 'type', x -> 'variableName')
       FROM live c CROSS JOIN LATERAL jsonb_array_elements(coalesce(c.diff -> 'accessPermissions' -> 'changed', '[]'::jsonb)) AS x
       WHERE 'access_permission' = ANY(${rules}::text[]) AND c.change <> 'insert'
         AND x -> 'new' ->> 'hasAccess' = 'true' AND (x -> 'old' ->> 'hasAccess') IS DISTINCT FROM 'true'
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'access_permission',
              concat(p.type, ':', p.variable_name), NULL, jsonb_build_object('name', p.name, 'hasAccess', p.has_access),
              jsonb_build_array(p.type, p.variable_name)
       FROM live c JOIN cpq.user_access_permissions p ON p.user_id = c.user_id
       WHERE 'access_permission' = ANY(${rules}::text[]) AND c.change = 'insert' AND p.has_access
       -- An integration user created: a new user that is one, or a user that became one.
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'integration_user', 'is_integration_user',
              c.diff -> 'is_integration_user' -> 'old', 'true'::jsonb, NULL
       FROM live c
       WHERE 'integration_user' = ANY(${rules}::text[]) AND c.change <> 'insert' AND c.diff -> 'is_integration_user' ->> 'new' = 'true'
         -- Not a _host row given the integration fields of the row an earlier release filed the
         -- same user under, beside it, under a host alias: an integration user all along. That
         -- row is still there (an incremental run, or a full one the guard kept from deleting),
         -- or this run ended it.
         AND NOT (c.company_login = '_host' AND EXISTS (
           SELECT 1 FROM cpq.users a
           WHERE a.site = (SELECT r.site FROM run r) AND a.company_login = ANY(${[...hostAliases]}::text[])
             AND a.login = c.login AND a.is_integration_user
             AND (a.deleted_at IS NULL OR EXISTS (
               SELECT 1 FROM cpq.user_change_log d WHERE d.run_id = ${runId}::bigint AND d.user_id = a.id AND d.change = 'delete'))))
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'integration_user', 'is_integration_user', NULL, 'true'::jsonb, NULL
       FROM live c JOIN cpq.users u ON u.id = c.user_id
       WHERE 'integration_user' = ANY(${rules}::text[]) AND c.change = 'insert' AND u.is_integration_user
       -- A user restored: deleted before, returned by CPQ again.
       UNION ALL
       SELECT c.change_id, c.user_id, c.company_login, c.login, c.detected_at, 'user_restored', 'deleted_at', c.diff -> 'deleted_at' -> 'old', NULL, NULL
       FROM live c
       WHERE 'user_restored' = ANY(${rules}::text[]) AND c.change = 'restore'
     ),
     -- Numbered in delivery order, in code-point order, as in a database of any collation (review GX).
     numbered AS MATERIALIZED (
       SELECT f.*, row_number() OVER (ORDER BY f.change_id, f.rule, f.subject COLLATE "C", f.subject_key::text COLLATE "C") AS n FROM found f
     ),
     -- The summary of a run over the cap; no row within it. About the run, not a user: no user,
     -- company or login, and no CPQ value but the counts.
     flood AS (
       SELECT t.total, (SELECT jsonb_object_agg(b.rule, b.n)
                        FROM (SELECT rule, count(*) AS n FROM numbered GROUP BY rule) b) AS by_rule,
              (SELECT min(detected_at) FROM numbered) AS detected_at
       FROM (SELECT count(*) AS total FROM numbered) t
       WHERE t.total > ${maxPerRun}::bigint
     ),
     alerts AS (
       SELECT 0::bigint AS n, NULL::bigint AS user_id, NULL::text AS company_login, NULL::text AS login, ${ALERT_FLOOD_RULE}::text AS rule,
              'ALERT_MAX_PER_RUN'::text AS subject, NULL::jsonb AS old_value,
              jsonb_build_object('alerts', fl.total, 'sent', ${maxPerRun}::bigint, 'suppressed', fl.total - ${maxPerRun}::bigint,
                                 'byRule', fl.by_rule,
                                 -- For changes --since: the time the run began (to the millisecond, down) selects the
                                 -- run, which commits after it, and the later ones; its id would select the later ones alone.
                                 'changesSince', ${isoUtcText(sql`date_trunc('milliseconds', run.started_at)`)}) AS new_value,
              fl.detected_at, 'pending'::text AS status,
              -- Three elements, where a user's alert has six: no user's alert has its key.
              encode(sha256(convert_to(jsonb_build_array(run.site, run.id::text, ${ALERT_FLOOD_RULE}::text)::text, 'UTF8')), 'hex') AS idempotency_key
       FROM flood fl, run
       UNION ALL
       SELECT f.n, f.user_id, f.company_login, f.login, f.rule, f.subject, f.old_value, f.new_value, f.detected_at,
              CASE WHEN f.n <= ${maxPerRun}::bigint THEN 'pending' ELSE 'suppressed' END,
              -- A JSON array, so that no login or group name can make two alerts' texts equal. A
              -- permission's subject, type:variableName, is the same text for type a:b and name c
              -- as for type a and name b:c: its key holds the two apart (review IJ). The subject's
              -- JSON string otherwise, as jsonb_build_array made of the text: the same keys as before.
              encode(sha256(convert_to(jsonb_build_array(run.site, run.id::text, f.company_login, f.login, f.rule,
                                                         coalesce(f.subject_key, to_jsonb(f.subject)))::text, 'UTF8')), 'hex')
       FROM numbered f, run
     ),
     inserted AS (
       INSERT INTO cpq.alert_outbox (site, run_id, user_id, company_login, login, rule, subject, old_value, new_value, detected_at, status, idempotency_key)
       SELECT run.site, run.id, a.user_id, a.company_login, a.login, a.rule, a.subject, a.old_value, a.new_value, a.detected_at, a.status, a.idempotency_key
       FROM alerts a, run
       -- Numbered (the delivery order): the summary first, then the alerts in the order above.
       ORDER BY a.n
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING status
     )
     SELECT count(*) AS n, count(*) FILTER (WHERE status = 'suppressed') AS suppressed FROM inserted`.compile(queryBuilder);
}
