import { ConfigError, requireCpq } from '../config.js';
import { logAhead, migrate } from '../db/migrate.js';
import { deliverPendingAlerts } from '../alerts/delivery.js';
import { countAlerts } from '../db/sql/count-alerts.js';
import { readLastSuccess } from '../db/sql/read-last-success.js';
import { EXIT_CODES, SyncError, errorCode, errorMessage, oneLine } from '../errors.js';
import { runSync, type SyncDeps } from '../sync/run.js';
import { CronSchedule } from './cron-schedule.js';
import { HealthServer } from './health-server.js';
import { WorkerMetrics, type RunObservation } from './metrics.js';
import { HealthConnection, checkReadiness } from './readiness.js';

/**
 * The long-running worker: syncs on SYNC_CRON, one run at a time in this process (node-cron's
 * noOverlap) and across processes (runSync's advisory lock: a worker that finds it held logs
 * the skip and waits for its next tick). Serves health and metrics on HTTP_PORT when set.
 */
export class SyncWorker {
  readonly metrics: WorkerMetrics;
  private readonly stopping = new AbortController();
  private readonly schedule: CronSchedule;
  private health: HealthServer | undefined;
  /** /readyz and /metrics read the database over this connection, never the sync's pool. */
  private readonly healthDb: HealthConnection;
  private current: Promise<void> | undefined;
  /** The port health and metrics listen on, once started; undefined when HTTP_PORT is unset. */
  httpPort: number | undefined;
  /** Retries pending alerts between runs (every ALERT_RETRY_EVERY), and the pass under way. */
  private alertRetry: NodeJS.Timeout | undefined;
  private alertPass: Promise<unknown> | undefined;

  constructor(private readonly deps: SyncDeps) {
    requireCpq(deps.config);
    const { cron, timezone } = deps.config.worker;
    // Validates SYNC_CRON and SYNC_TIMEZONE: a bad value fails here, before anything starts.
    this.schedule = new CronSchedule({
      cron,
      timezone,
      log: deps.log,
      onTick: () => this.runOnce(),
      onOverlap: () => this.metrics.recordSkip('overlap'),
    });
    this.healthDb = HealthConnection.forPool(deps.pool);
    this.metrics = new WorkerMetrics({
      alertCounts: () => countAlerts(this.healthDb),
      lastSuccess: () => {
        // Bounded by the connection's timeouts: a scrape does not hang on a database that does not answer.
        return readLastSuccess(this.healthDb);
      },
    });
  }

  /** Applies migrations (so /readyz and `status` find the tables), opens HTTP_PORT, starts the schedule. */
  async start(): Promise<void> {
    const { config, log } = this.deps;
    await migrate(this.deps.db, { onAhead: logAhead(log) }).catch((err: unknown) => {
      throw err instanceof SyncError ? err : new SyncError('database', `database error: ${errorMessage(err)}`);
    });
    if (config.alerts.webhook) {
      this.alertRetry = setInterval(() => this.retryAlerts(), config.alerts.retryEveryMs);
      this.alertRetry.unref();
    }
    if (config.worker.httpPort !== undefined) {
      this.health = new HealthServer({
        port: config.worker.httpPort,
        host: config.worker.httpHost,
        readiness: () => checkReadiness(this.healthDb, { staleAfterMs: config.worker.staleAfterMs }),
        metrics: this.metrics,
        log,
      });
      const { httpPort: port, httpHost: host } = config.worker;
      this.httpPort = await this.health.start().catch((err: unknown) => {
        const where = host === undefined ? `port ${port}` : `${host} port ${port}`;
        const name = host === undefined ? 'HTTP_PORT' : 'HTTP_HOST/HTTP_PORT';
        throw new ConfigError(`${name}: cannot listen on ${where} (${errorCode(err) ?? errorMessage(err)})`);
      });
    }
    this.schedule.start();
    log.info({ cron: config.worker.cron, timezone: config.worker.timezone }, 'worker started');
    this.schedule.logNextRun();
  }

  /**
   * One run now, as a tick does it. Never throws: a failed run is recorded (cpq.sync_runs, log,
   * metrics) and the worker waits for its next tick.
   */
  async runOnce(): Promise<void> {
    if (this.stopping.signal.aborted) return; // shutting down: no new work
    if (this.current) {
      this.deps.log.info('run skipped: the previous run of this worker is still going');
      this.metrics.recordSkip('overlap');
      return;
    }
    this.current = this.attempt().catch((err: unknown) => {
      this.deps.log.error({ error: errorMessage(err) }, 'worker error while running a sync');
    });
    try {
      await this.current;
    } finally {
      this.current = undefined;
    }
    // stop() may have aborted during the run; TS keeps the narrowing from the check at the top.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (!this.stopping.signal.aborted) this.schedule.logNextRun();
  }

  private async attempt(): Promise<void> {
    const { log } = this.deps;
    const startedAt = Date.now();
    const elapsed = () => (Date.now() - startedAt) / 1000;
    this.metrics.runStarted();
    try {
      const result = await runSync(this.deps, { signal: this.stopping.signal });
      this.metrics.recordRun({
        status: 'succeeded',
        durationSeconds: result.seconds,
        users: { inserted: result.inserted, updated: result.updated, unchanged: result.unchanged },
        httpRetries: result.http.retries,
      });
      log.info({ runId: result.runId, inserted: result.inserted, updated: result.updated, unchanged: result.unchanged }, 'scheduled run succeeded');
    } catch (err) {
      const error = err instanceof SyncError ? err : new SyncError('internal', errorMessage(err));
      if (error.kind === 'lock') {
        this.metrics.recordSkip('lock_held');
        log.info('run skipped: another worker holds the sync lock on this database and is syncing it');
        return;
      }
      // A failure before the run had a row (migrations, the connection) has no run id and no HTTP counts.
      const status: RunObservation['status'] = error.kind === 'interrupted' ? 'interrupted' : 'failed';
      this.metrics.recordRun({ status, durationSeconds: error.seconds ?? elapsed(), ...(error.http ? { httpRetries: error.http.retries } : {}) });
      if (status === 'interrupted') {
        log.info({ runId: error.runId }, 'run interrupted by shutdown: rolled back and recorded as interrupted');
      } else {
        log.error(
          { runId: error.runId, kind: error.kind, exitCode: EXIT_CODES[error.kind], error: oneLine(error.message) },
          'scheduled run failed; the worker keeps its schedule',
        );
      }
    }
  }

  /** The pending alerts that are due, sent between runs (each run sends them too, after its commit); one pass at a time. */
  private retryAlerts(): void {
    if (this.alertPass || this.stopping.signal.aborted) return;
    const { pool, config, log } = this.deps;
    this.alertPass = deliverPendingAlerts({ on: pool, config: config.alerts, log, signal: this.stopping.signal }).finally(() => {
      this.alertPass = undefined;
    });
  }

  /** No new runs; the current one is aborted (rolls back, recorded `interrupted`) and awaited; HTTP closes last. */
  async stop(): Promise<void> {
    this.schedule.stop();
    this.stopping.abort(new Error('worker stopping'));
    await this.current;
    clearInterval(this.alertRetry);
    await this.alertPass;
    await this.health?.stop();
    await this.healthDb.close();
    this.deps.log.info('worker stopped');
  }
}
