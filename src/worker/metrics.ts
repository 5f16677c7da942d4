import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How a run this worker started ended. */
export type RunOutcomeStatus = 'succeeded' | 'failed' | 'interrupted';
/** Why a tick did not start a run. */
export type SkipReason = 'lock_held' | 'overlap';

export interface RunObservation {
  status: RunOutcomeStatus;
  durationSeconds: number;
  users?: { inserted: number; updated: number; unchanged: number };
  /** Retries by cause as the run recorded them: HTTP status ("429", "503", …) or "network". */
  httpRetries?: Record<string, number>;
}

export interface WorkerMetricsOptions {
  /** End of the last successful run in the database (any worker); read at scrape time. */
  lastSuccess?: () => Promise<Date | null>;
  /** Node.js process metrics (memory, CPU, event loop); default true. */
  processMetrics?: boolean;
  /** How many alerts the outbox holds per status; read at scrape time. */
  alertCounts?: () => Promise<Record<'pending' | 'delivered' | 'failed', number>>;
}

const RUN_STATUSES: RunOutcomeStatus[] = ['succeeded', 'failed', 'interrupted'];
const SKIP_REASONS: SkipReason[] = ['lock_held', 'overlap'];
const USER_CHANGES = ['inserted', 'updated', 'unchanged'] as const;

/**
 * The worker's Prometheus metrics, in a registry of its own (not prom-client's global one), so
 * that several workers in one process — tests — never share counters. Labels carry statuses and
 * reasons only, never URLs, logins or credentials.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly runs: Counter<'status'>;
  private readonly skipped: Counter<'reason'>;
  private readonly users: Counter<'change'>;
  private readonly duration: Histogram<'status'>;
  private readonly retries: Counter<'status'>;
  private readonly inProgress: Gauge;

  constructor(options: WorkerMetricsOptions = {}) {
    const registers = [this.registry];
    this.runs = new Counter({ name: 'cpq_sync_runs_total', help: 'Sync runs this worker started, by how they ended', labelNames: ['status'], registers });
    this.skipped = new Counter({
      name: 'cpq_sync_runs_skipped_total',
      help: 'Scheduled ticks that started no run: lock_held (another worker was syncing), overlap (this worker still was)',
      labelNames: ['reason'],
      registers,
    });
    this.users = new Counter({
      name: 'cpq_sync_users_synced_total',
      help: 'Users merged by successful runs of this worker, by what happened to their row',
      labelNames: ['change'],
      registers,
    });
    this.duration = new Histogram({
      name: 'cpq_sync_run_duration_seconds',
      help: 'Duration of the runs of this worker, by how they ended',
      labelNames: ['status'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
      registers,
    });
    this.retries = new Counter({
      name: 'cpq_sync_http_retries_total',
      help: 'CPQ requests retried by the runs of this worker, by cause (HTTP status or "network")',
      labelNames: ['status'],
      registers,
    });
    this.inProgress = new Gauge({ name: 'cpq_sync_run_in_progress', help: '1 while this worker is running a sync', registers });
    const lastSuccess = options.lastSuccess;
    new Gauge({
      name: 'cpq_sync_last_success_timestamp_seconds',
      help: 'End of the last successful run recorded in the database, by any worker (0: none yet)',
      registers,
      // Read from the database at scrape time, so a restarted worker reports it too; when the
      // database cannot be read, the value of the previous scrape stays.
      async collect() {
        if (!lastSuccess) return;
        const at = await lastSuccess().catch(() => undefined);
        if (at !== undefined) this.set(at ? at.getTime() / 1000 : 0);
      },
    });
    // Every series exists from the start, so that rate() and alerts see zeros rather than gaps.
    for (const status of RUN_STATUSES) this.runs.inc({ status }, 0);
    for (const reason of SKIP_REASONS) this.skipped.inc({ reason }, 0);
    for (const change of USER_CHANGES) this.users.inc({ change }, 0);
    const alertCounts = options.alertCounts;
    new Gauge({
      name: 'cpq_sync_alerts',
      help: 'Alerts on privileged access in the outbox, by status: pending (to be sent or retried), delivered, failed (refused by the webhook)',
      labelNames: ['status'],
      registers,
      // From the database at scrape time, like the last success; unreadable, the previous values stay.
      async collect() {
        if (!alertCounts) return;
        const counts = await alertCounts().catch(() => undefined);
        if (counts) for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      },
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** A run is being attempted (it may still find the lock held). */
  runStarted(): void {
    this.inProgress.set(1);
  }

  recordRun(run: RunObservation): void {
    this.inProgress.set(0);
    this.runs.inc({ status: run.status });
    this.duration.observe({ status: run.status }, run.durationSeconds);
    if (run.users) for (const change of USER_CHANGES) this.users.inc({ change }, run.users[change]);
    for (const [status, count] of Object.entries(run.httpRetries ?? {})) if (count > 0) this.retries.inc({ status }, count);
  }

  recordSkip(reason: SkipReason): void {
    // lock_held ends an attempt that runStarted() announced; overlap leaves the running one alone.
    if (reason === 'lock_held') this.inProgress.set(0);
    this.skipped.inc({ reason });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
