import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type Cursor from 'pg-cursor';
import type pg from 'pg';
import type { TextColumn } from '../db/as-text.js';
import { countChangesLoggedAfter } from '../db/sql/count-changes-logged-after.js';
import { evaluateWithoutJit } from '../db/sql/evaluate-without-jit.js';
import { findRunsInProgress } from '../db/sql/find-runs-in-progress.js';
import { findSitesNotSyncedBy, findSnapshotRuns } from '../db/sql/find-snapshot-run.js';
import { inReadOnlySnapshot } from '../db/sql/in-read-only-snapshot.js';
import { joinWithoutNestedLoops } from '../db/sql/join-without-nested-loops.js';
import { openAdminRights } from '../db/sql/open-admin-rights.js';
import { openChangeLog, type ChangesFrom } from '../db/sql/open-change-log.js';
import { openSnapshot } from '../db/sql/open-snapshot.js';
import { readLastWatermark } from '../db/sql/read-last-watermark.js';
import { syncLockIsFree } from '../db/sql/read-sync-lock-holder.js';
import { runExists } from '../db/sql/run-exists.js';
import { instantArgument } from '../date-time.js';
import { jsonForTerminal, printable, SyncError } from '../errors.js';
import { compactJsonText } from './exact-text.js';

export type ExportFormat = 'jsonl' | 'csv';

/**
 * Told of an export's rows as they are written (the terminal's display, src/progress): the total
 * when the export knows it without counting, then the rows written so far after each batch.
 */
export interface ExportProgress {
  expect(total: number): void;
  written(rows: number): void;
}

const BATCH = 2000;

/** What a spreadsheet runs as a formula when a cell begins with it (OWASP's CSV injection rule). */
const FORMULA_START = /^[=+\-@\t\r]/;
/** A number, which a spreadsheet reads as one: not a formula, written as it is. */
const PLAIN_NUMBER = /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/;

function csvCell(value: string | null, column: TextColumn, terminal: boolean): string {
  if (value === null) return '';
  const json = column.json ? compactJsonText(value) : value;
  // To a terminal, CPQ's text must not act on it (an escape sequence in a name retitles it, erases
  // lines, writes the clipboard): each control character is shown as \xNN, as status shows them.
  const text = terminal ? printable(json) : json;
  // A leading ' makes a spreadsheet show the cell as text instead of running it.
  const cell = FORMULA_START.test(text) && !PLAIN_NUMBER.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

/** Writes `chunk`, waiting for `out` to drain when it asks to; rejects when `out` failed (a full disk, a reader gone). */
async function write(out: Writable, chunk: string): Promise<void> {
  if (out.destroyed) throw out.errored ?? new Error('the output was closed');
  // once() rejects on 'error': a stream that fails instead of draining does not leave the export waiting.
  if (!out.write(chunk)) await once(out, 'drain');
}

/**
 * Streams a cursor's rows (one text value per column, in order; see TextColumn) to `out` as CSV
 * (header first) or JSON lines, a batch at a time, then closes it. Every value is text, so none
 * passes through a JavaScript number or Date on its way out: `json` columns are written to JSON
 * lines as they are, the others as JSON strings.
 */
async function streamRows(
  { columns, cursor }: { columns: readonly TextColumn[]; cursor: Cursor<(string | null)[]> },
  format: ExportFormat,
  out: Writable,
  progress?: ExportProgress,
): Promise<number> {
  const keys = columns.map((c) => `${JSON.stringify(c.name)}:`);
  const terminal = (out as { isTTY?: boolean }).isTTY === true;
  const line =
    format === 'csv'
      ? (row: (string | null)[]) => columns.map((c, i) => csvCell(row[i]!, c, terminal)).join(',')
      : (row: (string | null)[]) =>
          `{${columns
            .map((c, i) => {
              const value = row[i] as string | null;
              return keys[i]! + (value === null ? 'null' : c.json ? compactJsonText(value) : JSON.stringify(value));
            })
            .join(',')}}`;
  let count = 0;
  const reading = { failed: false };
  const readBatch = () => {
    const batch = cursor.read(BATCH).catch((err: unknown) => {
      reading.failed = true;
      throw err;
    });
    // Awaited in the loop, or in finally when the output failed first: never left unhandled.
    batch.catch(() => undefined);
    return batch;
  };
  let inFlight: Promise<(string | null)[][]> | undefined;
  try {
    if (format === 'csv') await write(out, `${columns.map((c) => c.name).join(',')}\n`);
    inFlight = readBatch();
    for (;;) {
      const rows = await inFlight;
      inFlight = undefined;
      if (rows.length === 0) break;
      // The next batch is asked for before this one is formatted and written: Postgres computes it
      // (an insert's diff is built from history as it is read) while this process writes, where
      // each waited for the other before (a first export of 32,000 changes: 18 s, of which 12 s
      // this process sat idle).
      inFlight = readBatch();
      count += rows.length;
      const text = rows.map(line).join('\n');
      // JSON escapes C0 controls but not DEL, C1 (U+009B is CSI to some terminals) or the
      // characters that reorder text: to a terminal, those are written as \u escapes too, which
      // leave the JSON the same value.
      await write(out, `${terminal && format === 'jsonl' ? jsonForTerminal(text) : text}\n`);
      // Once a batch, not a row: the display keeps the number and redraws on its own timer.
      progress?.written(count);
    }
  } finally {
    // A read still in flight (the output failed meanwhile) is let finish before the portal is closed,
    // so that the close is never sent in the middle of a read.
    if (inFlight) await inFlight.catch(() => undefined);
    // A failed read left no portal to close (Postgres ended it with the error, or the session is
    // gone), and close() waits for a reply a lost connection never sends: with nothing else
    // pending, Node ended the export with exit code 13 and not a word.
    if (!reading.failed) await cursor.close();
  }
  return count;
}

/** `--since` as given: a run id (digits) or an ISO date-time. */
export function parseSince(value: string): ChangesFrom {
  // At most 18 digits, as --after: a run id is a bigint, and more digits would fail in the database's hands.
  if (/^\d{1,18}$/.test(value.trim())) return { runId: value.trim() };
  const time = instantArgument(value);
  if (time === undefined) {
    throw new SyncError('config', `--since must be a run id or an ISO date-time such as 2025-03-03T00:00:00Z, to the millisecond at most, got "${value}"`);
  }
  return { time };
}

/** `--after` as given: a watermark printed by an earlier export (0 for everything). */
export function parseAfter(value: string): ChangesFrom {
  if (!/^\d{1,18}$/.test(value.trim()))
    throw new SyncError('config', `--after must be a watermark (the digits an earlier export printed, 0 for everything), got "${value}"`);
  return { after: value.trim() };
}

export interface ChangesExport {
  changes: number;
  /** The watermark to pass to the next `--after`: the commit_seq of the last run this export saw. */
  watermark: string;
}

/**
 * The change log for the warehouse, in commit order: every change of the runs (of `sites`, every
 * site when empty) after the given watermark, run id or time. Rows and watermark come from one
 * snapshot, so a poll from the watermark neither misses nor repeats a run, however runs commit
 * around it. The watermark is the database's, over every site: a consumer of some sites moves past
 * the runs of the others as it polls.
 */
export async function exportChanges(
  pool: pg.Pool,
  from: ChangesFrom,
  format: ExportFormat,
  out: Writable,
  sites: readonly string[] = [],
  progress?: ExportProgress,
): Promise<ChangesExport> {
  return inReadOnlySnapshot(pool, async ([{ client }]) => {
    if ('after' in from) {
      const newest = await readLastWatermark(client);
      if (BigInt(from.after) > BigInt(newest)) {
        throw new SyncError(
          'config',
          `--after ${from.after} is past the newest watermark of this database (${newest}): it was printed by another database, or this one was restored from an older backup (see "Restoring the database from a backup" in the README before polling again: its next runs would take those numbers again)`,
        );
      }
    }
    // A run id no run has is a typo or another database's, not "nothing changed since".
    if ('runId' in from && !(await runExists(client, from.runId))) {
      throw new SyncError('config', `--since ${from.runId}: this database has no run ${from.runId} (cpq.sync_runs): is this the database it was read from?`);
    }
    // The total from the runs' counters, a row per run: a count of the change log itself would read
    // what the export reads. Known for --after only; --since's runs are chosen in the export's query.
    if (progress && 'after' in from) progress.expect(await countChangesLoggedAfter(client, from.after, sites));
    await evaluateWithoutJit(client);
    const changes = await streamRows(openChangeLog(client, from, sites), format, out, progress);
    return { changes, watermark: await readLastWatermark(client) };
  });
}

export interface SnapshotRun {
  site: string;
  runId: string;
  finishedAt: Date;
}

/**
 * Per site, the last successful run whose versions start at or before `asOf` (its effective_at):
 * the state a snapshot at that time reflects. A site named in `sites` without such a run is
 * refused, not left out of the file in silence (an auditor who asked for it would read "none of
 * its users"); without `sites`, the sites without a successful run by then (synced only later,
 * or never) are returned in `later`, for the caller to say so.
 */
async function snapshotRuns(
  client: pg.Pool | pg.PoolClient,
  asOf: Date,
  sites: readonly string[] = [],
): Promise<{ runs: SnapshotRun[]; later: { site: string; first: Date | null }[] }> {
  const runs = await findSnapshotRuns(client, asOf, sites);
  const missing = sites.filter((site) => !runs.some((r) => r.site === site));
  if (runs.length === 0 || missing.length > 0) {
    const of = missing.length > 0 ? ` of site ${missing.join(', ')}` : '';
    // Asked of a time before the first run (or of a database no run has synced into): a question
    // that has no answer, exit code 2; not bad data from CPQ (5).
    // And a time that has one, so that the operator need not look it up (review DB): of named
    // sites, when all of them have a state; of every site, when the first has one. A millisecond
    // on: a Date drops the microseconds of effective_at, and the time must not fall before it.
    const firsts = (await findSitesNotSyncedBy(client, asOf, missing)).map((f) => f.first);
    const known = firsts.filter((f): f is Date => f !== null).map(Number);
    const from = missing.length > 0 ? (known.length === missing.length ? Math.max(...known) : undefined) : known.length > 0 ? Math.min(...known) : undefined;
    throw new SyncError(
      'config',
      `no successful sync run${of} took effect at or before ${asOf.toISOString()}: there is no state to report (${
        from === undefined ? 'no later time has one yet' : `an --as-of at or after ${new Date(from + 1).toISOString()} has one`
      })`,
    );
  }
  const later = sites.length > 0 ? [] : await findSitesNotSyncedBy(client, asOf, []);
  return { runs: runs.map((r) => ({ site: r.site, runId: r.id, finishedAt: r.finished_at })), later };
}

export interface SnapshotOptions {
  /** Adds `raw`: each user's record as CPQ sent it, custom fields included. */
  withRaw?: boolean;
  /** Instead of users, their admin rights, one row per user and right, with since when (cpq.admin_rights_as_of). */
  adminRights?: boolean;
  /** Only these sites (default: every site). */
  sites?: readonly string[];
  /**
   * Called, in the snapshot's transaction before any row is read, with the runs (of those sites)
   * recorded running that started at or before `asOf`: what the snapshot sees, not what was seen
   * a moment before it began (a run committing in between is in the snapshot, not running).
   */
  onRunsInProgress?: (runs: { site: string; id: string; started_at: Date }[]) => void | Promise<void>;
  /** Told of the rows as they are written. No total: only a count of the users present, as long as the export's read, would give one. */
  progress?: ExportProgress;
}

/**
 * The sites (of `sites`, or every site) with a run recorded running that started at or before
 * `asOf` and whose sync lock a session holds, so a live run: it may commit versions that start
 * before asOf (at its first write), and a snapshot of asOf taken now is then of the state without
 * them. One whose site's lock no session holds is dead: it will never commit. Asked before the
 * snapshot begins, its runs in its transaction (onRunsInProgress): a run committing before it is in
 * it (not named), one committing after is named (its lock was held), and one that started later
 * began after asOf (review CY, review CZ).
 */
export async function sitesWithLiveRuns(pool: pg.Pool, asOf: Date, sites: readonly string[]): Promise<Set<string>> {
  const live = new Set<string>();
  for (const run of await findRunsInProgress(pool, asOf, sites)) {
    if (!live.has(run.site) && !(await syncLockIsFree(pool, run.site))) live.add(run.site);
  }
  return live;
}

/**
 * A compliance snapshot: every user present at `asOf` with groups and access permissions as the
 * database held them then (or, with `adminRights`, every admin right held then and since when).
 * Every row names its site and the run of its site it reflects; the runs are chosen and the rows
 * are read in one snapshot, so they are those runs' state even when another run commits meanwhile.
 * `later`: the sites left out because no successful run of theirs took effect by `asOf` (asked of every site).
 */
export async function exportSnapshot(
  pool: pg.Pool,
  asOf: Date,
  format: ExportFormat,
  out: Writable,
  options: SnapshotOptions = {},
): Promise<{ runs: SnapshotRun[]; rows: number; later: { site: string; first: Date | null }[] }> {
  return inReadOnlySnapshot(pool, async ([{ client }]) => {
    // The first statement takes the transaction's snapshot: the runs in progress and the rows are of one moment.
    const inProgress = await findRunsInProgress(client, asOf, options.sites ?? []);
    const { runs, later } = await snapshotRuns(client, asOf, options.sites);
    await options.onRunsInProgress?.(inProgress);
    const runIds = runs.map((r) => r.runId);
    // Every user of the sites with all their groups and permissions, or their admin rights: joins
    // the planner misjudges (see joinWithoutNestedLoops) must not become a nested loop over every
    // user's aggregates. (cpq.admin_rights_as_of sets this for itself too, for reports of its own.)
    await joinWithoutNestedLoops(client);
    const rows = options.adminRights ? openAdminRights(client, { asOf, runIds }) : openSnapshot(client, { asOf, runIds, withRaw: options.withRaw ?? false });
    return { runs, rows: await streamRows(rows, format, out, options.progress), later };
  });
}
