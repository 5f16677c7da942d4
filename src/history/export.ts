import type { Writable } from 'node:stream';
import type pg from 'pg';
import Cursor from 'pg-cursor';
import { SyncError } from '../errors.js';
import { compactJsonText, isoUtcSql } from './exact-text.js';

export type ExportFormat = 'jsonl' | 'csv';

const BATCH = 2000;

/**
 * An exported column. Every column is selected as text, so no value passes through a JavaScript
 * number or Date on its way out. `json` columns hold JSON text (jsonb, numbers, booleans) and are
 * written to JSON lines as they are; the others are written as JSON strings.
 */
interface Column {
  name: string;
  json: boolean;
}
const text = (name: string): Column => ({ name, json: false });
const json = (name: string): Column => ({ name, json: true });

function csvCell(value: string | null, column: Column): string {
  if (value === null) return '';
  const cell = column.json ? compactJsonText(value) : value;
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

async function write(out: Writable, chunk: string): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** Streams a query's rows (one text value per column, in order) to `out` as CSV (header first) or JSON lines, a batch at a time. */
async function streamRows(client: pg.PoolClient, sql: string, params: unknown[], columns: Column[], format: ExportFormat, out: Writable): Promise<number> {
  const keys = columns.map((c) => `${JSON.stringify(c.name)}:`);
  const line =
    format === 'csv'
      ? (row: (string | null)[]) => columns.map((c, i) => csvCell(row[i]!, c)).join(',')
      : (row: (string | null)[]) =>
          `{${columns
            .map((c, i) => {
              const value = row[i] as string | null;
              return keys[i]! + (value === null ? 'null' : c.json ? compactJsonText(value) : JSON.stringify(value));
            })
            .join(',')}}`;
  if (format === 'csv') await write(out, `${columns.map((c) => c.name).join(',')}\n`);
  const cursor = client.query(new Cursor<(string | null)[]>(sql, params, { rowMode: 'array' }));
  let count = 0;
  try {
    for (;;) {
      const rows = await cursor.read(BATCH);
      if (rows.length === 0) break;
      count += rows.length;
      await write(out, `${rows.map(line).join('\n')}\n`);
    }
  } finally {
    await cursor.close();
  }
  return count;
}

/**
 * Runs `work` in one REPEATABLE READ READ ONLY transaction: every query it makes sees the same
 * committed state, however many runs commit meanwhile.
 */
async function inOneSnapshot<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | boolean | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr instanceof Error ? rollbackErr : Boolean(rollbackErr)));
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Where a change-log export starts. */
export type ChangesFrom =
  /** Changes of runs that committed after the one that took this watermark (commit_seq). */
  | { after: string }
  /** Changes of runs with a higher id: commit order while runs do not overlap. */
  | { runId: string }
  /** Changes of runs that committed at or after this time: a run committing as the poll reads may be missed. */
  | { time: Date };

/** `--since` as given: a run id (digits) or an ISO date-time. */
export function parseSince(value: string): ChangesFrom {
  if (/^\d+$/.test(value.trim())) return { runId: value.trim() };
  const time = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value.trim()) || Number.isNaN(time.getTime())) {
    throw new SyncError('config', `--since must be a run id or an ISO date-time such as 2025-03-03T00:00:00Z, got "${value}"`);
  }
  return { time };
}

/** `--after` as given: a watermark printed by an earlier export (0 for everything). */
export function parseAfter(value: string): ChangesFrom {
  if (!/^\d{1,18}$/.test(value.trim()))
    throw new SyncError('config', `--after must be a watermark (the digits an earlier export printed, 0 for everything), got "${value}"`);
  return { after: value.trim() };
}

export const CHANGE_COLUMNS: Column[] = [
  text('change_id'),
  text('run_id'),
  text('change'),
  text('company_login'),
  text('login'),
  text('party_number'),
  text('date_modified'),
  text('detected_at'),
  json('diff'),
  // The watermark of the change's run: the greatest value loaded is where the next poll starts.
  text('commit_seq'),
];

export interface ChangesExport {
  changes: number;
  /** The watermark to pass to the next `--after`: the commit_seq of the last run this export saw. */
  watermark: string;
}

/**
 * The change log for the warehouse, in commit order: every change of the runs after the given
 * watermark, run id or time. Rows and watermark come from one snapshot, so a poll from the
 * watermark neither misses nor repeats a run, however runs commit around it.
 */
export async function exportChanges(pool: pg.Pool, from: ChangesFrom, format: ExportFormat, out: Writable): Promise<ChangesExport> {
  return inOneSnapshot(pool, async (client) => {
    const lastWatermark = async () => (await client.query<{ w: string }>(`SELECT coalesce(max(commit_seq), 0)::text AS w FROM cpq.sync_runs`)).rows[0]!.w;
    if ('after' in from) {
      const newest = await lastWatermark();
      if (BigInt(from.after) > BigInt(newest)) {
        throw new SyncError('config', `--after ${from.after} is past the newest watermark of this database (${newest}): is this the database that printed it?`);
      }
    }
    const [where, param] =
      'after' in from ? ['r.commit_seq > $1', from.after] : 'runId' in from ? ['r.id > $1', from.runId] : ['r.committed_at >= $1', from.time];
    const changes = await streamRows(
      client,
      // Sorted first, diffs after: an insert's diff is computed from history (cpq.user_changes), and
      // computed below the sort it would be sorted along, spilling gigabytes for a first load.
      `SELECT c.id::text, c.run_id::text, c.change, c.company_login, c.login, c.party_number,
              ${isoUtcSql('c.date_modified')}, ${isoUtcSql('c.detected_at')},
              (SELECT v.diff FROM cpq.user_changes v WHERE v.id = c.id)::text, c.commit_seq::text
       FROM (SELECT l.id, l.run_id, l.change, l.company_login, l.login, l.party_number, l.date_modified, l.detected_at, r.commit_seq
             FROM cpq.sync_runs r JOIN cpq.user_change_log l ON l.run_id = r.id
             WHERE r.commit_seq IS NOT NULL AND ${where}
             ORDER BY r.commit_seq, l.id) c
       ORDER BY c.commit_seq, c.id`,
      [param],
      CHANGE_COLUMNS,
      format,
      out,
    );
    return { changes, watermark: await lastWatermark() };
  });
}

export interface SnapshotRun {
  runId: string;
  finishedAt: Date;
}

/**
 * The last successful run whose versions start at or before `asOf` (its effective_at): the state
 * a snapshot at that time reflects.
 */
export async function snapshotRun(client: pg.Pool | pg.PoolClient, asOf: Date): Promise<SnapshotRun> {
  const { rows } = await client.query<{ id: string; finished_at: Date }>(
    `SELECT id, finished_at FROM cpq.sync_runs WHERE status = 'succeeded' AND effective_at <= $1 ORDER BY effective_at DESC, id DESC LIMIT 1`,
    [asOf],
  );
  if (!rows[0]) throw new SyncError('data', `no successful sync run took effect at or before ${asOf.toISOString()}: there is no state to report`);
  return { runId: rows[0].id, finishedAt: rows[0].finished_at };
}

export const SNAPSHOT_COLUMNS: Column[] = [
  text('snapshot_as_of'),
  text('snapshot_run_id'),
  text('snapshot_run_finished_at'),
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
  text('last_login'),
  text('date_modified'),
  json('groups'),
  json('access_permissions'),
  json('party_id'),
];

export interface SnapshotOptions {
  /** Adds `raw`: each user's record as CPQ sent it, custom fields included. */
  withRaw?: boolean;
}

/**
 * A compliance snapshot: every user present at `asOf` with groups and access permissions as the
 * database held them then. Every row names the run it reflects; the run is chosen and the rows
 * are read in one snapshot, so they are that run's state even when another run commits meanwhile.
 */
export async function exportSnapshot(
  pool: pg.Pool,
  asOf: Date,
  format: ExportFormat,
  out: Writable,
  options: SnapshotOptions = {},
): Promise<{ run: SnapshotRun; users: number }> {
  return inOneSnapshot(pool, async (client) => {
    const run = await snapshotRun(client, asOf);
    const users = await streamRows(
      client,
      `WITH g AS (
         SELECT g.user_id,
                jsonb_agg(jsonb_build_object('variableName', g.group_variable_name, 'label', gr.label, 'type', gr.type)
                          ORDER BY g.group_variable_name) AS groups
         FROM cpq.user_groups_as_of($1) g LEFT JOIN cpq.groups_as_of($1) gr ON gr.variable_name = g.group_variable_name
         GROUP BY g.user_id
       ), p AS (
         SELECT p.user_id,
                jsonb_agg(jsonb_build_object('type', p.type, 'variableName', p.variable_name, 'name', p.name, 'hasAccess', p.has_access)
                          ORDER BY p.type, p.variable_name) AS access_permissions
         FROM cpq.user_access_permissions_as_of($1) p
         GROUP BY p.user_id
       )
       SELECT ${isoUtcSql('$1::timestamptz')}, run.id::text, ${isoUtcSql('run.finished_at')},
              u.company_login, u.login, u.party_number, u.first_name, u.last_name, u.email, u.status::text, u.status_display,
              u.type, u.type_display, u.is_integration_user::text, u.oauth_client_id, u.is_user_admin_perm_enabled::text,
              u.is_access_admin_perm_enabled::text, u.is_application_admin_perm_enabled::text,
              ${isoUtcSql('u.last_login')}, ${isoUtcSql('u.date_modified')},
              coalesce(g.groups, '[]')::text, coalesce(p.access_permissions, '[]')::text, u.party_id::text
              ${options.withRaw ? ', u.raw::text' : ''}
       FROM cpq.users_as_of($1) u
       CROSS JOIN (SELECT id, finished_at FROM cpq.sync_runs WHERE id = $2) run
       LEFT JOIN g ON g.user_id = u.id
       LEFT JOIN p ON p.user_id = u.id
       WHERE u.deleted_at IS NULL
       ORDER BY u.company_login, u.login`,
      [asOf, run.runId],
      options.withRaw ? [...SNAPSHOT_COLUMNS, json('raw')] : SNAPSHOT_COLUMNS,
      format,
      out,
    );
    return { run, users };
  });
}
