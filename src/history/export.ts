import type { Writable } from 'node:stream';
import type pg from 'pg';
import Cursor from 'pg-cursor';
import { SyncError } from '../errors.js';

export type ExportFormat = 'jsonl' | 'csv';

const BATCH = 2000;

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = value instanceof Date ? value.toISOString() : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function jsonValue(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : value;
}

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** Streams a query's rows to `out` as CSV (header first) or JSON lines, a batch at a time. */
async function streamRows(client: pg.PoolClient, text: string, params: unknown[], columns: string[], format: ExportFormat, out: Writable): Promise<number> {
  const cursor = client.query(new Cursor<Record<string, unknown>>(text, params));
  let count = 0;
  try {
    if (format === 'csv') await write(out, `${columns.join(',')}\n`);
    for (;;) {
      const rows = await cursor.read(BATCH);
      if (rows.length === 0) break;
      count += rows.length;
      const lines = rows.map((row) =>
        format === 'csv'
          ? columns.map((c) => csvCell(row[c])).join(',')
          : JSON.stringify(Object.fromEntries(columns.map((c) => [c, jsonValue(row[c])]))),
      );
      await write(out, `${lines.join('\n')}\n`);
    }
  } finally {
    await cursor.close();
  }
  return count;
}

export type Since = { runId: string } | { time: Date };

/** `--since` as given: a run id (digits) or an ISO date-time. */
export function parseSince(text: string): Since {
  if (/^\d+$/.test(text.trim())) return { runId: text.trim() };
  const time = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text.trim()) || Number.isNaN(time.getTime())) {
    throw new SyncError('config', `--since must be a run id or an ISO date-time such as 2025-03-03T00:00:00Z, got "${text}"`);
  }
  return { time };
}

export const CHANGE_COLUMNS = ['change_id', 'run_id', 'change', 'company_login', 'login', 'party_number', 'date_modified', 'detected_at', 'diff'];

/**
 * The change log for the warehouse: every change after the given run (exclusive), or detected
 * at or after the given time, oldest first.
 */
export async function exportChanges(pool: pg.Pool, since: Since, format: ExportFormat, out: Writable): Promise<number> {
  const client = await pool.connect();
  try {
    const [where, param] = 'runId' in since ? ['c.run_id > $1', since.runId] : ['c.detected_at >= $1', since.time];
    return await streamRows(
      client,
      `SELECT c.id AS change_id, c.run_id, c.change, c.company_login, c.login, c.party_number, c.date_modified, c.detected_at, c.diff
       FROM cpq.user_changes c WHERE ${where} ORDER BY c.id`,
      [param],
      CHANGE_COLUMNS,
      format,
      out,
    );
  } finally {
    client.release();
  }
}

export interface SnapshotRun {
  runId: string;
  finishedAt: Date;
}

/**
 * The last successful run whose versions start at or before `asOf` (its effective_at): the state
 * a snapshot at that time reflects.
 */
export async function snapshotRun(pool: pg.Pool, asOf: Date): Promise<SnapshotRun> {
  const { rows } = await pool.query<{ id: string; finished_at: Date }>(
    `SELECT id, finished_at FROM cpq.sync_runs WHERE status = 'succeeded' AND effective_at <= $1 ORDER BY effective_at DESC, id DESC LIMIT 1`,
    [asOf],
  );
  if (!rows[0]) throw new SyncError('data', `no successful sync run took effect at or before ${asOf.toISOString()}: there is no state to report`);
  return { runId: rows[0].id, finishedAt: rows[0].finished_at };
}

export const SNAPSHOT_COLUMNS = [
  'snapshot_as_of',
  'snapshot_run_id',
  'snapshot_run_finished_at',
  'company_login',
  'login',
  'party_number',
  'first_name',
  'last_name',
  'email',
  'status',
  'status_display',
  'type',
  'type_display',
  'is_integration_user',
  'oauth_client_id',
  'is_user_admin_perm_enabled',
  'is_access_admin_perm_enabled',
  'is_application_admin_perm_enabled',
  'last_login',
  'date_modified',
  'groups',
  'access_permissions',
];

/**
 * A compliance snapshot: every user present at `asOf` with groups and access permissions as the
 * database held them then. Every row names the run it reflects.
 */
export async function exportSnapshot(pool: pg.Pool, asOf: Date, format: ExportFormat, out: Writable): Promise<{ run: SnapshotRun; users: number }> {
  const run = await snapshotRun(pool, asOf);
  const client = await pool.connect();
  try {
    const users = await streamRows(
      client,
      `WITH g AS (
         SELECT g.user_id,
                jsonb_agg(jsonb_build_object('variableName', g.group_variable_name, 'label', gr.label, 'type', gr.type)
                          ORDER BY g.group_variable_name) AS groups
         FROM cpq.user_groups_as_of($1) g LEFT JOIN cpq.groups gr ON gr.variable_name = g.group_variable_name
         GROUP BY g.user_id
       ), p AS (
         SELECT p.user_id,
                jsonb_agg(jsonb_build_object('type', p.type, 'variableName', p.variable_name, 'name', p.name, 'hasAccess', p.has_access)
                          ORDER BY p.type, p.variable_name) AS access_permissions
         FROM cpq.user_access_permissions_as_of($1) p
         GROUP BY p.user_id
       )
       SELECT $1::timestamptz AS snapshot_as_of, $2::bigint::text AS snapshot_run_id, $3::timestamptz AS snapshot_run_finished_at,
              u.company_login, u.login, u.party_number, u.first_name, u.last_name, u.email, u.status, u.status_display,
              u.type, u.type_display, u.is_integration_user, u.oauth_client_id, u.is_user_admin_perm_enabled,
              u.is_access_admin_perm_enabled, u.is_application_admin_perm_enabled, u.last_login, u.date_modified,
              coalesce(g.groups, '[]') AS groups, coalesce(p.access_permissions, '[]') AS access_permissions
       FROM cpq.users_as_of($1) u
       LEFT JOIN g ON g.user_id = u.id
       LEFT JOIN p ON p.user_id = u.id
       WHERE u.deleted_at IS NULL
       ORDER BY u.company_login, u.login`,
      [asOf, run.runId, run.finishedAt],
      SNAPSHOT_COLUMNS,
      format,
      out,
    );
    return { run, users };
  } finally {
    client.release();
  }
}
