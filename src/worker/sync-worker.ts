import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pLimit, { type LimitFunction } from 'p-limit';
import { ConfigError, selectSites, type SiteConfig } from '../config.js';
import { claimScheduledTick } from '../db/sql/claim-scheduled-tick.js';
import { migrateLogged, migrateUntilAborted } from '../db/migrate.js';
import { deliverPendingAlerts } from '../alerts/delivery.js';
import { readLatestCompanyCounts } from '../db/sql/read-proofs.js';
import { countAlerts } from '../db/sql/count-alerts.js';
import { EXIT_CODES, asSyncError, rethrowAsSyncError, errorCode, errorMessage, oneLine } from '../errors.js';
import type { SyncDeps } from '../sync/run-types.js';
import { runSync } from '../sync/run.js';
import { CronSchedule } from './cron-schedule.js';
import { HealthServer } from './health-server.js';
import { WorkerMetrics, type RunObservation } from './metrics.js';
import { HealthConnection, checkReadiness, migratingReadiness } from './readiness.js';
import { readRunOutcomes } from '../db/sql/read-run-outcomes.js';

/**
 * What a worker asked to stop does, as the shutdown's log line says it, with `runs` runs under
 * way: an idle worker was said to roll back a current run it did not have (review JB).
 */
export function workerStopping(runs: number): string {
  if (runs === 0) return 'no new runs; no run is in progress, so the worker stops';
  if (runs === 1) return 'no new runs; the current run rolls back and is recorded as interrupted';
  return `no new runs; the ${runs} current runs roll back and are recorded as interrupted`;
}

/**
 * The long-running worker: syncs every configured site on its schedule (each site's cron and
 * timezone), at most SYNC_SITE_CONCURRENCY sites at once in this process, so a slow site never
 * holds back the others. Any number of workers may share one database: each due tick of a site
 * runs on at most one of them (the first to claim it in cpq.scheduled_ticks once it has a free
 * slot; a claim is not handed on if that worker dies before the run), and a site never runs twice
 * at once (runSync's per-site advisory lock). A worker that dies mid-run releases the lock with
 * its connection; the next tick, on any worker, marks that run abandoned and syncs the site.
 * Serves health and metrics on HTTP_PORT when set.
 */
export class SyncWorker {
  readonly metrics: WorkerMetrics;
  private readonly stopping = new AbortController();
  private readonly sites: SiteConfig[];
  private readonly schedules: CronSchedule[];
  private readonly slots: LimitFunction;
  /** This process, as cpq.scheduled_ticks names the worker that claimed a tick. */
  private readonly workerId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private health: HealthServer | undefined;
  /** /readyz and /metrics read the database over this connection, never the sync's pool. */
  private readonly healthDb: HealthConnection;
  /** The sites whose last attempt here failed before a run was recorded (/readyz counts it as a try). */
  private readonly failedUnrecorded = new Set<string>();
  /** The sites this worker is running or has queued for a free slot, and the promise of each. */
  private readonly current = new Map<string, Promise<void>>();
  /** The sites whose run is under way here: not those queued for a slot, nor a tick being claimed. */
  private readonly running = new Set<string>();
  /** The port health and metrics listen on, once started; undefined when HTTP_PORT is unset. */
  httpPort: number | undefined;
  /** This release's migrations are applied: until then /readyz says not ready, and reads nothing. */
  private migrated = false;
  /** Sends the due alerts between runs (every ALERT_RETRY_EVERY), and the pass under way. */
  private alertTimer: NodeJS.Timeout | undefined;
  private alertPass: Promise<unknown> | undefined;
  /** Asked for a pass while one was going: another follows it. */
  private alertPassAgain = false;

  constructor(private readonly deps: SyncDeps) {
    this.sites = selectSites(deps.config);
    this.slots = pLimit(deps.config.worker.siteConcurrency);
    // Validates each site's cron and timezone: a bad value fails here, before anything starts.
    this.schedules = this.sites.map(
      (site) =>
        new CronSchedule({
          cron: site.cron,
          timezone: site.timezone,
          name: `cpq-sync ${site.name}`,
          log: deps.log.child({ site: site.name }),
          onTick: (dueAt) => this.tick(site, dueAt),
          onOverlap: () => this.metrics.recordSkip(site.name, 'overlap'),
          onMissed: () => this.metrics.recordSkip(site.name, 'missed'),
        }),
    );
    this.healthDb = HealthConnection.forPool(deps.pool);
    this.metrics = new WorkerMetrics({
      alertCounts: () => countAlerts(this.healthDb),
      companyCounts: () =>
        readLatestCompanyCounts(
          this.healthDb,
          this.sites.map((s) => s.name),
        ),
      sites: this.sites.map((s) => s.name),
      // Bounded by the connection's timeouts: a scrape does not hang on a database that does not answer.
      lastSuccess: async (site) => (await readRunOutcomes(this.healthDb, site)).lastSuccess,
    });
  }

  /**
   * Opens HTTP_PORT, applies migrations (so /readyz and `status` find the tables), starts the
   * schedule. The port first: a migration may wait minutes for its locks (a report's open
   * transaction, an older release's runs), and a liveness probe that got no answer meanwhile
   * restarted the worker, and its migration with it, again and again. /readyz says not ready until
   * the migrations are applied. `shutdown` (SIGTERM) cancels them (migrateUntilAborted): false
   * then, the worker not started, its port closed.
   */
  async start(shutdown?: AbortSignal): Promise<boolean> {
    const { config, log } = this.deps;
    const startedAt = performance.now();
    if (config.worker.httpPort !== undefined) await this.listen(config.worker.httpPort, config.worker.httpHost, startedAt);
    try {
      await migrateUntilAborted(this.deps.pool, { ...migrateLogged(log), signal: shutdown }).catch(rethrowAsSyncError);
    } catch (err) {
      // The command fails; a server left listening would keep its process alive.
      await this.health?.stop();
      this.health = undefined;
      await this.healthDb.close();
      // Asked to stop: no failure (cancelled, the pending migrations roll back whole; the next start applies them).
      if (shutdown?.aborted) {
        log.info('worker stopped while it migrated the database; its next start applies what was not applied');
        return false;
      }
      throw err;
    }
    this.migrated = true;
    if (config.alerts.webhook) {
      this.alertTimer = setInterval(() => this.sendDueAlerts(), config.alerts.retryEveryMs);
      this.alertTimer.unref();
    }
    for (const schedule of this.schedules) schedule.start();
    log.info(
      {
        sites: this.sites.map(({ name, cron, timezone }) => ({ name, cron, timezone })),
        siteConcurrency: config.worker.siteConcurrency,
        database: this.deps.where,
      },
      'worker started',
    );
    for (const schedule of this.schedules) schedule.logNextRun();
    return true;
  }

  /** Health and metrics on HTTP_PORT (HTTP_HOST); a port it cannot take is a configuration error. */
  private async listen(port: number, host: string | undefined, startedAt: number): Promise<void> {
    const { config, log } = this.deps;
    this.health = new HealthServer({
      port,
      host,
      readiness: () =>
        this.migrated
          ? checkReadiness(this.healthDb, {
              sites: this.sites.map((s) => s.name),
              staleAfterMs: config.worker.staleAfterMs,
              upForMs: performance.now() - startedAt,
              failedUnrecorded: (site) => this.failedUnrecorded.has(site),
            })
          : Promise.resolve(migratingReadiness()),
      metrics: this.metrics,
      log,
    });
    this.httpPort = await this.health.start().catch((err: unknown) => {
      const where = host === undefined ? `port ${port}` : `${host} port ${port}`;
      const name = host === undefined ? 'HTTP_PORT' : 'HTTP_HOST/HTTP_PORT';
      const code = errorCode(err);
      const hint = code === 'EADDRINUSE' ? `: another process listens there; choose another ${name === 'HTTP_PORT' ? 'HTTP_PORT' : 'port'}` : '';
      throw new ConfigError(`${name}: cannot listen on ${where} (${code ?? errorMessage(err)})${hint}`);
    });
  }

  /**
   * A scheduled tick of `site`: once a slot is free, the run, if no other worker claimed the tick
   * first. Never throws.
   */
  private tick(site: SiteConfig, dueAt: Date): Promise<void> {
    return this.enqueue(site, async () => {
      const claimed = await claimScheduledTick(this.deps.pool, site.name, dueAt, this.workerId).catch((err: unknown) => {
        // Run unclaimed, it might run on another worker too: skipped; the next tick tries again
        // (and /readyz turns not ready if the database stays away past SYNC_STALE_AFTER).
        this.deps.log.error({ site: site.name, error: errorMessage(err) }, 'tick skipped: could not claim it in the database');
        this.metrics.recordSkip(site.name, 'claim_failed');
        this.failedUnrecorded.add(site.name);
        return undefined;
      });
      if (claimed === undefined) return;
      if (!claimed) {
        this.metrics.recordSkip(site.name, 'claimed_elsewhere');
        this.deps.log.info({ site: site.name, dueAt: dueAt.toISOString() }, 'tick skipped: another worker took it');
        return;
      }
      await this.attempt(site);
    });
  }

  /**
   * One run of every site (or of `siteName`) now, as ticks do them but without claiming a tick.
   * Never throws: a failed run is recorded (cpq.sync_runs, log, metrics) and the worker waits for
   * its next tick.
   */
  async runOnce(siteName?: string): Promise<void> {
    const sites = siteName === undefined ? this.sites : this.sites.filter((s) => s.name === siteName);
    await Promise.all(sites.map((site) => this.enqueue(site, () => this.attempt(site))));
  }

  /** Queues `work` for `site` behind the slots, unless the site is queued or running here already. */
  private async enqueue(site: SiteConfig, work: () => Promise<void>): Promise<void> {
    if (this.stopping.signal.aborted) return; // shutting down: no new work
    if (this.current.has(site.name)) {
      this.deps.log.info({ site: site.name }, 'run skipped: the previous run of this site on this worker is still going');
      this.metrics.recordSkip(site.name, 'overlap');
      return;
    }
    const running = this.slots(async () => {
      if (this.stopping.signal.aborted) return;
      await work();
    }).catch((err: unknown) => {
      this.deps.log.error({ site: site.name, error: errorMessage(err) }, 'worker error while running a sync');
    });
    this.current.set(site.name, running);
    try {
      await running;
    } finally {
      this.current.delete(site.name);
    }
    // stop() may have aborted during the run; TS keeps the narrowing from the check at the top.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (!this.stopping.signal.aborted) this.schedules[this.sites.indexOf(site)]?.logNextRun();
  }

  private async attempt(site: SiteConfig): Promise<void> {
    const { log } = this.deps;
    const startedAt = Date.now();
    const elapsed = () => (Date.now() - startedAt) / 1000;
    this.metrics.runStarted(site.name);
    this.running.add(site.name);
    try {
      // Its alerts go out in the background pass: sent here, a slow webhook kept the site's slot,
      // and the sites queued behind it, busy (review EC).
      const result = await runSync(this.deps, { site: site.name, signal: this.stopping.signal, progress: this.metrics.readsOf(site.name) });
      this.sendDueAlerts();
      this.failedUnrecorded.delete(site.name);
      this.metrics.recordRun({
        site: site.name,
        status: 'succeeded',
        durationSeconds: result.seconds,
        users: { inserted: result.inserted, updated: result.updated, unchanged: result.unchanged, deleted: result.deleted, restored: result.restored },
        streams: result.streams,
        httpRetries: result.http.retries,
      });
      log.info(
        { site: site.name, runId: result.runId, inserted: result.inserted, updated: result.updated, unchanged: result.unchanged },
        'scheduled run succeeded',
      );
    } catch (err) {
      const error = asSyncError(err);
      if (error.kind === 'lock') {
        this.metrics.recordSkip(site.name, 'lock_held');
        log.info({ site: site.name }, 'run skipped: another worker holds the sync lock of this site and is syncing it');
        return;
      }
      // A failure before the run had a row (migrations, the connection) has no run id and no HTTP counts.
      const status: RunObservation['status'] = error.kind === 'interrupted' ? 'interrupted' : 'failed';
      // A recorded failure counts from its record (any worker, across restarts); a shutdown says nothing.
      if (status === 'failed') {
        if (error.runId === undefined) this.failedUnrecorded.add(site.name);
        else this.failedUnrecorded.delete(site.name);
      }
      this.metrics.recordRun({
        site: site.name,
        status,
        durationSeconds: error.seconds ?? elapsed(),
        ...(error.http ? { httpRetries: error.http.retries } : {}),
      });
      if (status === 'interrupted') {
        log.info({ site: site.name, runId: error.runId }, 'run interrupted by shutdown: rolled back and recorded as interrupted');
      } else {
        log.error(
          { site: site.name, runId: error.runId, kind: error.kind, exitCode: EXIT_CODES[error.kind], error: oneLine(error.message) },
          'scheduled run failed; the worker keeps its schedule',
        );
      }
    } finally {
      this.running.delete(site.name);
    }
  }

  /** How many runs are under way here: what a shutdown now rolls back (workerStopping). */
  get runsInProgress(): number {
    return this.running.size;
  }

  /**
   * The pending alerts that are due, sent in the background: every ALERT_RETRY_EVERY, and after
   * each run that committed. One pass at a time; asked while one is going, another follows it,
   * so that a run's alerts never wait for the next interval.
   */
  private sendDueAlerts(): void {
    if (this.stopping.signal.aborted) return;
    if (this.alertPass) {
      this.alertPassAgain = true;
      return;
    }
    const { pool, config, log } = this.deps;
    this.alertPass = deliverPendingAlerts({ on: pool, config: config.alerts, log, signal: this.stopping.signal }).finally(() => {
      this.alertPass = undefined;
      if (this.alertPassAgain) {
        this.alertPassAgain = false;
        this.sendDueAlerts();
      }
    });
  }

  /** No new runs; the current ones are aborted (roll back, recorded `interrupted`) and awaited; HTTP closes last. */
  async stop(): Promise<void> {
    for (const schedule of this.schedules) schedule.stop();
    this.stopping.abort(new Error('worker stopping'));
    await Promise.all(this.current.values());
    clearInterval(this.alertTimer);
    await this.alertPass;
    await this.health?.stop();
    await this.healthDb.close();
    this.deps.log.info('worker stopped');
  }
}
