import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProgressSink } from '../sync/stream-progress.js';
import { METRICS_COMPANIES_PER_SITE, type LatestCompanyCounts } from '../db/sql/read-proofs.js';
import { printable } from '../errors.js';

/** How a run this worker started ended. */
export type RunOutcomeStatus = 'succeeded' | 'failed' | 'interrupted';
/**
 * Why a tick did not start a run: another process held the site's lock, or this one was still
 * running the site, or another process had claimed the tick, or this one could not run it before
 * the next was due, or the database failed this one's claim.
 */
export type SkipReason = 'lock_held' | 'overlap' | 'claimed_elsewhere' | 'missed' | 'claim_failed';

export interface RunObservation {
  site: string;
  status: RunOutcomeStatus;
  durationSeconds: number;
  users?: { inserted: number; updated: number; unchanged: number; deleted?: number; restored?: number };
  /** The run's streams as its record reports them: short reads, and what the deletion guard decided. */
  streams?: readonly { shortRead: boolean; deletion?: string }[];
  /** Retries by cause as the run recorded them: HTTP status ("429", "503", …) or "network". */
  httpRetries?: Record<string, number>;
}

export interface WorkerMetricsOptions {
  /** The sites the worker syncs: every series of each exists from the start. */
  sites: readonly string[];
  /** End of the site's last successful run in the database (any worker); read at scrape time. */
  lastSuccess?: (site: string) => Promise<Date | null>;
  /** Node.js process metrics (memory, CPU, event loop); default true. */
  processMetrics?: boolean;
  /** How many alerts the outbox holds per status; read at scrape time. */
  alertCounts?: () => Promise<Record<'pending' | 'delivered' | 'failed' | 'suppressed', number>>;
  /** Per site and company of its last run: CPQ's count at its last full read and the database's active users after that run; read at scrape time. */
  companyCounts?: () => Promise<LatestCompanyCounts>;
}

const RUN_STATUSES: RunOutcomeStatus[] = ['succeeded', 'failed', 'interrupted'];
const SKIP_REASONS: SkipReason[] = ['lock_held', 'overlap', 'claimed_elsewhere', 'missed', 'claim_failed'];
const USER_CHANGES = ['inserted', 'updated', 'unchanged', 'deleted', 'restored'] as const;

/**
 * The worker's Prometheus metrics, in a registry of its own (not prom-client's global one), so
 * that several workers in one process — tests — never share counters. Labels carry site names
 * (the operator's), statuses and reasons only, never URLs, logins or credentials.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly runs: Counter<'site' | 'status'>;
  private readonly skipped: Counter<'site' | 'reason'>;
  private readonly users: Counter<'site' | 'change'>;
  private readonly duration: Histogram<'site' | 'status'>;
  private readonly retries: Counter<'site' | 'status'>;
  private readonly inProgress: Gauge<'site'>;
  private readonly usersRead: Gauge<'site'>;
  private readonly shortReads: Counter<'site'>;
  private readonly deletionRefusals: Counter<'site'>;
  private readonly companyUsers: Gauge<'site' | 'company' | 'source'>;
  private readonly companiesOmitted: Gauge<'site'>;
  private readonly companyCounts: WorkerMetricsOptions['companyCounts'];
  private readonly sites: readonly string[];

  constructor(options: WorkerMetricsOptions) {
    const registers = [this.registry];
    this.runs = new Counter({
      name: 'cpq_sync_runs_total',
      help: 'Sync runs this worker started, by site and how they ended',
      labelNames: ['site', 'status'],
      registers,
    });
    this.skipped = new Counter({
      name: 'cpq_sync_runs_skipped_total',
      help: "Scheduled ticks that started no run, by site: lock_held (another worker was syncing it), overlap (this worker still was), claimed_elsewhere (another worker took the tick), missed (the process could not run it before the next was due), claim_failed (the database failed this worker's claim of the tick)",
      labelNames: ['site', 'reason'],
      registers,
    });
    this.users = new Counter({
      name: 'cpq_sync_users_synced_total',
      help: 'Users merged by successful runs of this worker, by site and what happened to their row',
      labelNames: ['site', 'change'],
      registers,
    });
    this.duration = new Histogram({
      name: 'cpq_sync_run_duration_seconds',
      help: 'Duration of the runs of this worker, by site and how they ended',
      labelNames: ['site', 'status'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
      registers,
    });
    this.retries = new Counter({
      name: 'cpq_sync_http_retries_total',
      help: 'CPQ requests retried by the runs of this worker, by site and cause (HTTP status or "network")',
      labelNames: ['site', 'status'],
      registers,
    });
    this.inProgress = new Gauge({
      name: 'cpq_sync_run_in_progress',
      help: '1 while this worker is running a sync of the site',
      labelNames: ['site'],
      registers,
    });
    this.usersRead = new Gauge({
      name: 'cpq_sync_run_users_read',
      help: "Users received so far by this worker's run of the site in progress, of every stream (0 when none runs)",
      labelNames: ['site'],
      registers,
    });
    this.shortReads = new Counter({
      name: 'cpq_sync_short_reads_total',
      help: 'Streams of successful runs that read fewer users than CPQ reported (totalResults): their cursor stays, nothing is deleted',
      labelNames: ['site'],
      registers,
    });
    this.deletionRefusals = new Counter({
      name: 'cpq_sync_deletion_guard_refusals_total',
      help: 'Full company reads whose deletions the guard refused (more than SYNC_MAX_DELETE_FRACTION missing): nothing deleted',
      labelNames: ['site'],
      registers,
    });
    const { lastSuccess, sites } = options;
    new Gauge({
      name: 'cpq_sync_last_success_timestamp_seconds',
      help: "End of the site's last successful run recorded in the database, by any worker (0: none yet)",
      labelNames: ['site'],
      registers,
      // Read from the database at scrape time, so a restarted worker reports it too; when the
      // database cannot be read, the value of the previous scrape stays.
      async collect() {
        if (!lastSuccess) return;
        for (const site of sites) {
          const at = await lastSuccess(site).catch(() => undefined);
          if (at !== undefined) this.set({ site }, at ? at.getTime() / 1000 : 0);
        }
      },
    });
    // Every series exists from the start, so that rate() and alerts see zeros rather than gaps.
    for (const site of sites) {
      for (const status of RUN_STATUSES) this.runs.inc({ site, status }, 0);
      for (const reason of SKIP_REASONS) this.skipped.inc({ site, reason }, 0);
      for (const change of USER_CHANGES) this.users.inc({ site, change }, 0);
      this.inProgress.set({ site }, 0);
      this.usersRead.set({ site }, 0);
      this.shortReads.inc({ site }, 0);
      this.deletionRefusals.inc({ site }, 0);
    }
    const alertCounts = options.alertCounts;
    new Gauge({
      name: 'cpq_sync_alerts',
      help: "Alerts on privileged access in the outbox, by status: pending (to be sent or retried), delivered, failed (refused by the webhook), suppressed (past a run's ALERT_MAX_PER_RUN, never sent)",
      labelNames: ['status'],
      registers,
      // From the database at scrape time, like the last success; unreadable, the previous values stay.
      async collect() {
        if (!alertCounts) return;
        const counts = await alertCounts().catch(() => undefined);
        if (counts) for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      },
    });
    this.companyUsers = new Gauge({
      name: 'cpq_sync_company_users',
      help: "Users per company of each site's last run that read companies: source=cpq, CPQ's totalResults at the company's last full read; source=database, users the database held active after that run (cpq-sync verify compares them live)",
      labelNames: ['site', 'company', 'source'],
      registers,
    });
    this.companiesOmitted = new Gauge({
      name: 'cpq_sync_company_users_omitted',
      help: `Companies of the site's last run that read companies left out of cpq_sync_company_users: past the first ${METRICS_COMPANIES_PER_SITE} by name`,
      labelNames: ['site'],
      registers,
    });
    this.companyCounts = options.companyCounts;
    this.sites = sites;
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** A run of `site` is being attempted (it may still find the lock held). */
  runStarted(site: string): void {
    this.inProgress.set({ site }, 1);
    this.usersRead.set({ site }, 0);
  }

  /** What the run of `site` tells of its streams' reads (RunOptions.progress): cpq_sync_run_users_read, the run's own sum. */
  readsOf(site: string): ProgressSink {
    return {
      update: () => undefined,
      totals: (totals) => this.usersRead.set({ site }, totals.received),
    };
  }

  recordRun(run: RunObservation): void {
    const { site } = run;
    this.inProgress.set({ site }, 0);
    this.usersRead.set({ site }, 0);
    this.runs.inc({ site, status: run.status });
    this.duration.observe({ site, status: run.status }, run.durationSeconds);
    if (run.users) for (const change of USER_CHANGES) this.users.inc({ site, change }, run.users[change] ?? 0);
    for (const stream of run.streams ?? []) {
      if (stream.shortRead) this.shortReads.inc({ site });
      // deletion-guard.ts writes `aborted: <missing> of <known> would be deleted` when it refuses.
      if (stream.deletion?.startsWith('aborted') === true) this.deletionRefusals.inc({ site });
    }
    for (const [status, count] of Object.entries(run.httpRetries ?? {})) if (count > 0) this.retries.inc({ site, status }, count);
  }

  recordSkip(site: string, reason: SkipReason): void {
    // lock_held ends an attempt that runStarted() announced; the other reasons leave the running one alone.
    if (reason === 'lock_held') {
      this.inProgress.set({ site }, 0);
      this.usersRead.set({ site }, 0);
    }
    this.skipped.inc({ site, reason });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    await this.readCompanyCounts();
    return this.registry.metrics();
  }

  /**
   * cpq_sync_company_users and cpq_sync_company_users_omitted, from the database at scrape time,
   * like the last success; unreadable, the previous values stay. Read here rather than in the
   * gauges' collect: prom-client collects its metrics side by side, and both are set from one read.
   */
  private async readCompanyCounts(): Promise<void> {
    if (!this.companyCounts) return;
    const read = await this.companyCounts().catch(() => undefined);
    if (!read) return;
    // Each scrape sets what the last runs read: a company no longer read leaves no series behind.
    this.companyUsers.reset();
    this.companiesOmitted.reset();
    const shown = new Map<string, number>();
    for (const c of read.counts) {
      // A company's login name is CPQ's, any text: its control characters as \xNN, or a
      // scrape read in a terminal (curl) would run them (prom-client escapes only \, " and \n).
      // Its own backslashes doubled first: a company named `a\x01` as text would else share the
      // series of one holding the control character, and one count hide the other.
      const company = printable(c.company.replaceAll('\\', '\\\\'));
      if (c.cpq !== null) this.companyUsers.set({ site: c.site, company, source: 'cpq' }, c.cpq);
      this.companyUsers.set({ site: c.site, company, source: 'database' }, c.database);
      shown.set(c.site, (shown.get(c.site) ?? 0) + 1);
    }
    for (const site of this.sites) this.companiesOmitted.set({ site }, 0);
    for (const { site, companies } of read.companiesRead) this.companiesOmitted.set({ site }, companies - (shown.get(site) ?? 0));
  }
}
