import type pg from 'pg';
import { readRecentRuns } from '../db/sql/read-recent-runs.js';
import { readSiteNames } from '../db/sql/read-site-names.js';
import { syncRunsHaveProgress } from '../db/sql/sync-runs-have-progress.js';
import { readStreamStates } from '../db/sql/read-stream-states.js';
import { JsonText, stringifyWithJsonText } from '../history/exact-text.js';
import { durationSetting } from '../config-env.js';
import { jsonForTerminal, printable } from '../errors.js';
import { headOf } from '../exact-json.js';
import { textTable } from '../text-table.js';
import type { RunProgressReport } from '../db/schema.js';
import { formatCount } from '../progress/display.js';
import { DEAD_RUN_CAUSE, readRunHealth, type RunHealth } from './run-health.js';

export interface RunSummary {
  id: string;
  startedAt: string;
  finishedAt: string | null;
  /** Up to now for a run still going; null for an abandoned one, or a dead one (when it ended is not known). */
  durationSeconds: number | null;
  status: string;
  /**
   * True for a run recorded `running` whose site's sync lock no session holds: it ended without
   * recording how (DEAD_RUN_CAUSE), and the next run of the site records it abandoned.
   */
  presumedDead?: true;
  mode: string;
  /** These counts are written when a run ends: null for a run recorded running (going on, or dead), which has none yet. */
  pages: number | null;
  usersSeen: number | null;
  inserted: number | null;
  updated: number | null;
  unchanged: number | null;
  deleted: number | null;
  restored: number | null;
  httpRequests: number | null;
  /** Retried requests by HTTP status or `network`, as stored (the jsonb's text: written out verbatim, never parsed). */
  httpRetries: JsonText;
  /** Per feed: mode, since, pages, received, totalResults, shortRead, keyRanges, deletion; as stored. */
  streams: JsonText;
  /** As stored. */
  warnings: JsonText;
  /** How many warnings the run recorded. */
  warningCount: number;
  error: string | null;
  /**
   * How far the run has come (cpq.sync_runs.progress), with when it was written (by the database's
   * clock): a running run writes it every few seconds and at each change of phase, so a dead one
   * shows the last it wrote; an ended run keeps it as it stood at its end. Null when none was written.
   */
  progress: RunProgressSummary | null;
}

export interface RunProgressSummary extends RunProgressReport {
  writtenAt: string;
}

/** A stream's cursor as `status` reports it (times as stored text; src/db/sql/read-cursors.ts reads the same row for a run). */
export interface CursorReport {
  /** `companies/<login>` or `integrationUsers`. */
  stream: string;
  /** The largest dateModified read; the next incremental run reads from here minus SYNC_LOOKBACK. */
  cursor: string | null;
  lastFullSyncAt: string | null;
  lastRunId: string | null;
  updatedAt: string;
}

/** One site's part of the report. */
export interface SiteStatus {
  site: string;
  /** Newest first. */
  runs: RunSummary[];
  cursors: CursorReport[];
  /** The newest run that ended on its own (not running, not interrupted), a dead one as abandoned: what the exit code is about. */
  lastRun: { id: string; status: string; finishedAt: string | null; error: string | null } | null;
  lastSuccessAt: string | null;
  /** How long the last successful run took (to the millisecond); null when none has succeeded. */
  lastSuccessDurationSeconds: number | null;
  lastRunFailed: boolean;
  /**
   * Why the site is stale, as /readyz says it: no run has succeeded for longer than
   * SYNC_STALE_AFTER, or a run has been running that long; null when it is not.
   */
  stale: string | null;
  /**
   * A configured site that no run and no worker's tick has named (cpq.sites gains a site at its
   * first claimed tick or run): a worker reads the sites file only when it starts, so one started
   * before the site was added never runs it, and its /readyz does not know the site. No exit code:
   * nothing read here tells a site just added, whose first tick is not due yet, from one the
   * workers were not restarted for (review JT: each rule tried raised false alarms).
   */
  neverRun: boolean;
}

export interface StatusReport {
  /** Every site that has run against the database (or those asked for), by name. */
  sites: SiteStatus[];
  /**
   * The sites this database has run that the report leaves out (not configured any more, say): a
   * dead run of a site moved to a sites file under another name would go unseen otherwise.
   */
  otherSites: string[];
  /** Exit code 1 when true: the last run of some site failed. */
  lastRunFailed: boolean;
  /** Exit code 1 when true too: some site is stale (its worker stopped, say). */
  stale: boolean;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The warnings a run recorded (a JSON array of strings, as finishRun writes it); none for anything else. */
function warningsOf(text: string): string[] {
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.map((w) => (typeof w === 'string' ? w : JSON.stringify(w))) : [];
  } catch {
    return [];
  }
}
/** A duration as status reports it: to the millisecond. */
const seconds = (s: number | null) => (s === null ? null : Math.round(s * 1000) / 1000);

/** Every value of the report leaves as the database holds it: times with their microseconds, jsonb as its text. */
export function stringifyStatus(report: StatusReport): string {
  // Company names and errors quoting CPQ may hold C1 controls (U+009B is CSI to some terminals) or bidirectional overrides.
  return `${jsonForTerminal(stringifyWithJsonText(report, 2))}\n`;
}

/**
 * Reads each site's last runs and cursors (`sites`: those to report, every site that has run when
 * empty); read-only, it applies no migrations. `staleAfterMs` (SYNC_STALE_AFTER): a site whose
 * last success is older, or whose run has been running longer, is stale. A worker that stopped
 * leaves its last run succeeded: without this, `status` said all was well for ever (review EC).
 * `configured`: the configured sites; one of them that has never run is reported so (neverRun),
 * since nothing else ever named a site added to the sites file of workers not restarted.
 */
export async function readStatus(
  pool: pg.Pool,
  {
    sites = [],
    limit = 10,
    staleAfterMs,
    configured = [],
  }: { sites?: readonly string[]; limit?: number; staleAfterMs?: number; configured?: readonly string[] } = {},
): Promise<StatusReport> {
  const ran = await readSiteNames(pool);
  const names = sites.length > 0 ? sites : ran;
  // Asked once: it never migrates, and may read a database not migrated to 0031 yet.
  const progress = await syncRunsHaveProgress(pool);
  const report: SiteStatus[] = [];
  for (const site of names) {
    const status = await readSiteStatus(pool, site, { limit, staleAfterMs, progress });
    status.neverRun = configured.includes(site) && !ran.includes(site);
    report.push(status);
  }
  const otherSites = ran.filter((site) => !names.includes(site));
  return {
    sites: report,
    otherSites,
    lastRunFailed: report.some((s) => s.lastRunFailed),
    stale: report.some((s) => s.stale !== null),
  };
}

/** Why a site is stale (see SiteStatus.stale), judged by the database's clock as /readyz judges it. */
function staleness(health: RunHealth, staleAfterMs: number | undefined): string | null {
  const now = health.now;
  if (staleAfterMs === undefined || now === undefined) return null;
  const older = (since: Date | null): since is Date => since !== null && now.getTime() - since.getTime() > staleAfterMs;
  const limit = `SYNC_STALE_AFTER=${durationSetting(staleAfterMs)}`;
  if (older(health.runningSince)) return `a run has been running since ${when(health.runningSince.toISOString())}, longer than ${limit}`;
  if (older(health.lastSuccessAt))
    return `no run has succeeded since ${when(health.lastSuccessAt.toISOString())}, longer ago than ${limit}: is the worker running?`;
  return null;
}

async function readSiteStatus(
  pool: pg.Pool,
  site: string,
  { limit, staleAfterMs, progress }: { limit: number; staleAfterMs: number | undefined; progress: boolean },
): Promise<SiteStatus> {
  // First: a run that starts after it is no dead run, whatever the runs read next say of it.
  const health = await readRunHealth(pool, site);
  const dead = health.deadRunId === null ? null : BigInt(health.deadRunId);
  const runs: RunSummary[] = (await readRecentRuns(pool, site, limit, progress)).map((r) => {
    // A run's counts are written when it ends: a run recorded running has none yet (not 0 users seen).
    const ended = <T>(value: T) => (r.status === 'running' ? null : value);
    return {
      id: r.id,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      durationSeconds: seconds(r.seconds),
      status: r.status,
      mode: r.mode,
      pages: ended(r.pages),
      usersSeen: ended(r.users_seen),
      inserted: ended(r.users_inserted),
      updated: ended(r.users_updated),
      unchanged: ended(r.users_unchanged),
      deleted: ended(r.users_deleted),
      restored: ended(r.users_restored),
      httpRequests: ended(r.http_requests),
      httpRetries: new JsonText(r.http_retries),
      streams: new JsonText(r.streams),
      warnings: new JsonText(r.warnings),
      warningCount: warningsOf(r.warnings).length,
      error: r.error,
      // Whole numbers a run counted, far below 2^53: parsed exactly.
      progress: r.progress === null || r.progress_at === null ? null : { ...(JSON.parse(r.progress) as RunProgressReport), writtenAt: r.progress_at },
    };
  });
  for (const run of runs) {
    if (run.status === 'running' && dead !== null && BigInt(run.id) <= dead) Object.assign(run, { presumedDead: true, durationSeconds: null });
  }
  const cursors = (await readStreamStates(pool, site)).map((s) => ({
    stream: s.stream,
    cursor: s.cursor,
    lastFullSyncAt: s.last_full_sync_at,
    lastRunId: s.last_run_id,
    updatedAt: s.updated_at,
  }));
  return {
    site,
    runs,
    cursors,
    lastRun: health.lastRun && {
      id: health.lastRun.id,
      status: health.lastRun.status,
      finishedAt: iso(health.lastRun.finishedAt),
      error: health.lastRun.error,
    },
    lastSuccessAt: iso(health.lastSuccessAt),
    lastSuccessDurationSeconds: seconds(health.lastSuccessSeconds),
    lastRunFailed: health.lastRunFailed,
    stale: staleness(health, staleAfterMs),
    neverRun: false,
  };
}

/** 1 when the last run (of some site) that ended on its own failed, or a site is stale, so that `cpq-sync status` can back an alert. */
export function statusExitCode(report: StatusReport): number {
  return report.lastRunFailed || report.stale ? 1 : 0;
}

/** "1h 02m", "3m 07s", "12.3s". */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}h ${pad(m)}m` : `${m}m ${pad(sec)}s`;
}

/** "2024-05-01 02:00:03" in UTC: sortable, and the same on every machine. */
const when = (text: string | null) =>
  text === null
    ? ''
    : text
        .replace('T', ' ')
        .replace(/\.\d+Z$/, '')
        .replace(/Z$/, '');

const table = (header: string[], rows: string[][], rightAligned: Set<number>) => textTable(header, rows, rightAligned).map((l) => `  ${l}`);

/** `text` in at most `max` characters, the last an ellipsis; never half an emoji (headOf). */
function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${headOf(text, max - 1)}…`;
}

/**
 * The report for a terminal: per site a table of runs, a table of cursors, and the verdict; the
 * site named above its block when the database holds several.
 */
export function formatStatus(report: StatusReport): string {
  const out: string[] = [];
  // Nothing has run: the blocks of a site without runs.
  if (report.sites.length === 0)
    out.push(
      ...formatSite({
        site: '',
        runs: [],
        cursors: [],
        lastRun: null,
        lastSuccessAt: null,
        lastSuccessDurationSeconds: null,
        lastRunFailed: false,
        stale: null,
        neverRun: false,
      }),
    );
  report.sites.forEach((site, i) => {
    if (i > 0) out.push('');
    if (report.sites.length > 1) out.push(`Site ${site.site}`, '');
    out.push(...formatSite(site));
  });
  if (report.otherSites.length > 0) {
    const [first] = report.otherSites;
    out.push(
      '',
      `Also in this database, not shown: ${report.otherSites.join(', ')} (\`status --site ${first}\` shows one; their runs do not count in the exit code)`,
    );
  }
  return `${out.join('\n')}\n`;
}

/**
 * "12,000 of 100,000 users of the streams begun, 12 pages, 1 of 4 streams": the total when CPQ
 * reported one; "the company list" until it is read. The total is that of the streams begun only: a run of
 * CPQ_COMPANIES=* showed "1,203,001 of 1,250,000 users" with 1,200 of 450,001 streams read, which
 * reads as a run nearly done; said so until every stream is done.
 */
function progressText(p: RunProgressReport): string {
  // The streams are known once the company list is read (CPQ_COMPANIES=*), before any begins.
  if (p.streams === null) return 'the company list, no user yet';
  const begun = p.streamsDone === p.streams ? '' : ' of the streams begun';
  const users = p.totalResults === null ? `${formatCount(p.received)} users` : `${formatCount(p.received)} of ${formatCount(p.totalResults)} users${begun}`;
  return `${users}, ${formatCount(p.pages)} page${p.pages === 1 ? '' : 's'}, ${formatCount(p.streamsDone)} of ${formatCount(p.streams)} streams`;
}

/** What to do about a site the workers do not know (README: a worker reads its configuration once, when it starts). */
const RESTART_WORKERS = 'A worker reads the sites file (its configuration) only when it starts: restart every worker';

function formatSite(report: SiteStatus): string[] {
  const out: string[] = [];
  out.push('Last runs (newest first, times in UTC)');
  if (report.runs.length === 0) {
    out.push('  none yet');
  } else {
    const header = ['RUN', 'STARTED', 'TOOK', 'MODE', 'STATUS', 'SEEN', 'NEW', 'CHANGED', 'SAME', 'DELETED', 'RESTORED', 'RETRIES', 'ERROR'];
    const rows = report.runs.map((r) => {
      // Counts are written when a run ends: one going on shows …, a dead one ?.
      const count = (n: number | null) => (r.status === 'running' ? (r.presumedDead ? '?' : '…') : String(n));
      // A run that ended without committing (failed, interrupted, abandoned) changed no user: its
      // record holds 0 for them, which read as "saw none" beside a progress line saying what it read.
      const users = (n: number | null) => (r.status === 'running' || r.status === 'succeeded' ? count(n) : '-');
      return [
        r.id,
        when(r.startedAt),
        r.durationSeconds === null ? '?' : r.status === 'running' ? `${formatDuration(r.durationSeconds)}…` : formatDuration(r.durationSeconds),
        r.mode,
        r.presumedDead ? 'dead' : r.status,
        users(r.usersSeen),
        users(r.inserted),
        users(r.updated),
        users(r.unchanged),
        users(r.deleted),
        users(r.restored),
        // A count for people to read: summed as numbers.
        count(Object.values(JSON.parse(r.httpRetries.text) as Record<string, number>).reduce((n, c) => n + c, 0)),
        truncate(r.error ?? '', 100),
      ];
    });
    out.push(...table(header, rows, new Set([0, 2, 5, 6, 7, 8, 9, 10, 11])));
    // A run's warnings (a guard that held back deletions, a short read, a CPQ clock off) were in --json only.
    for (const run of report.runs) {
      const [first] = warningsOf(run.warnings.text);
      if (first === undefined) continue;
      const more = run.warningCount > 1 ? ` (and ${run.warningCount - 1} more: status --json lists them)` : '';
      out.push(`  run ${run.id} warned: ${truncate(printable(first), 200)}${more}`);
    }
    // The counts are written when a run ends; meanwhile, how far it has come. A run that failed or
    // was interrupted: the phase it stopped in (past reading: every stream was read), and what it had read.
    for (const run of report.runs) {
      if (run.progress === null) continue;
      const p = run.progress;
      const phase = printable(p.phase);
      if (run.status === 'running') {
        const doing = run.presumedDead ? `was ${phase} when it last wrote` : `is ${phase}`;
        out.push(`  run ${run.id} ${doing}: ${progressText(p)} (as of ${when(p.writtenAt)})`);
      } else if (run.status === 'failed' || run.status === 'interrupted') {
        out.push(`  run ${run.id} ${run.status === 'failed' ? 'failed' : 'was interrupted'} while ${phase}: ${progressText(p)}`);
      }
    }
    const dead = report.runs.filter((r) => r.presumedDead).map((r) => r.id);
    if (dead.length > 0) {
      out.push(
        `  dead: recorded running, but no session holds the site's sync lock (run ${dead.join(', ')}): ${DEAD_RUN_CAUSE}; the next run of the site records it abandoned.`,
      );
    }
  }
  out.push('', 'Cursors (per stream)');
  if (report.cursors.length === 0) {
    out.push('  none yet');
  } else {
    const header = ['STREAM', 'CURSOR (dateModified)', 'LAST FULL READ', 'LAST RUN'];
    const rows = report.cursors.map((c) => [c.stream, when(c.cursor) || '(none: the next read is full)', when(c.lastFullSyncAt), c.lastRunId ?? '']);
    out.push(...table(header, rows, new Set([3])));
  }
  out.push('');
  const last = report.lastRun;
  const took = report.lastSuccessDurationSeconds === null ? '' : `, took ${formatDuration(report.lastSuccessDurationSeconds)}`;
  // Interrupted runs (a signal) end, but say nothing of the site: "no run has finished" beside a
  // table of them read as false (review HT).
  const interrupted = report.runs.filter((r) => r.status === 'interrupted').length;
  if (report.neverRun)
    out.push(
      `No run yet: no worker has taken a tick of this site, nor has \`run\` synced it. ${RESTART_WORKERS} after adding a site; its first run then comes when its schedule is next due (\`cpq-sync run --site ${report.site}\` syncs it now).`,
    );
  else if (!last)
    out.push(
      interrupted > 0
        ? `No run has ended on its own yet (${interrupted === 1 ? 'one run was' : `${interrupted} runs were`} interrupted by a signal, which says nothing of the site).`
        : 'No run has finished yet.',
    );
  else if (report.lastRunFailed) {
    out.push(
      `LAST RUN ${last.status.toUpperCase()}: run ${last.id}${last.finishedAt ? ` at ${when(last.finishedAt)}` : ''}: ${printable(last.error ?? 'no error recorded')}`,
      `Last success: ${report.lastSuccessAt ? `${when(report.lastSuccessAt)}${took}` : 'never'}`,
    );
  } else out.push(`Last run succeeded: run ${last.id} at ${when(last.finishedAt)}${took}`);
  if (report.stale !== null) out.push(`STALE: ${report.stale}`);
  return out;
}
