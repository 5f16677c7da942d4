import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { recordAlerts } from '../alerts/record-alerts.js';
import { ConfigError, selectSites, siteCpqUrl, type CpqConfig, type SiteConfig } from '../config.js';
import { createAuthenticator } from '../cpq/auth.js';
import { CpqHttpClient, pathSegmentProblem } from '../cpq/http-client.js';
import type { HttpStats } from '../cpq/http-stats.js';
import { INTEGRATION_STREAM, companyGone, listCompanies, type CompanyList, type StreamId } from '../cpq/streams.js';
import { migrateLogged, migrateUntilAborted } from '../db/migrate.js';
import { abandonDeadRuns } from '../db/sql/abandon-dead-runs.js';
import { cancelOnAbort, cancellableOn, cancellableSession } from '../db/cancel-on-abort.js';
import { analyzeUserTables, userStatisticsAreStale } from '../db/sql/analyze-user-tables.js';
import { describeWriteBlockersOf } from '../db/sql/read-cpq-lock-holders.js';
import { saveFeedFields } from '../db/sql/save-feed-fields.js';
import { createRun, recordFailedStart } from '../db/sql/create-run.js';
import { findFirstLoadCompanies } from '../db/sql/find-first-load-companies.js';
import { finishFailedRun, finishRun } from '../db/sql/finish-run.js';
import { writeRunProgress } from '../db/sql/write-run-progress.js';
import { countPresentUsers } from '../db/sql/count-present-users.js';
import { readUnlistedCompanies } from '../db/sql/read-unlisted-companies.js';
import { readIntegrationUserCompanies } from '../db/sql/read-integration-user-companies.js';
import { countHostAliasRows } from '../db/sql/count-host-alias-rows.js';
import { readCursors, type StreamCursor } from '../db/sql/read-cursors.js';
import { countUsersRead } from '../db/sql/count-users-read.js';
import { readRunClock } from '../db/sql/read-run-clock.js';
import { readDatabaseNow } from '../db/sql/read-database-now.js';
import { preferLz4Compression } from '../db/sql/prefer-lz4-compression.js';
import { readSiteCpqUrl, recordSiteCpqUrl } from '../db/sql/site-cpq-url.js';
import { SyncLockHeldByOutsider, withSyncLock } from '../db/sql/with-sync-lock.js';
import { prepareHoldingSession, releaseHoldingSession } from '../db/sql/holding-session.js';
import {
  SyncError,
  errorMessage,
  isSignalsDoing,
  isStatementTimeout,
  oneLine,
  printable,
  rethrowAsSyncError,
  throwIfInterrupted,
  toDatabaseOrInternal,
} from '../errors.js';
import { LinkedSignal } from '../linked-signal.js';
import type { Logger } from '../logger.js';
import { RecordError } from '../normalize/user-record.js';
import { BUILD } from '../build.js';
import { allUntilFirstFailure } from './all-until-first-failure.js';
import { readCompany } from './company-read.js';
import {
  deletableCompanies,
  integrationDeletableCompanies,
  massDeleteCommand,
  pastDeletionLimits,
  refusesDeletion,
  type DeletionGuard,
  type DeletionLimits,
} from './deletion-guard.js';
import { DirectLoad } from './direct-load.js';
import {
  IntegrationCompanies,
  IntegrationUsers,
  integrationEnabled,
  integrationSince,
  readIntegrationUsers,
  stageIntegrationOnly,
} from './integration-users.js';
import { MergeBatches, mergeStaged, type MergeDeletions } from './merge.js';
import { readSameUsersHeld, requireSameCpq } from './site-cpq-url.js';
import { Stager } from './stager.js';
import { proveRun } from './run-proof.js';
import { redactedAny } from '../db/sql/redact-personal.js';
import { redactSiteOutsideRun } from './redact-site.js';
import { redactUnnamedSites } from './redact-unnamed-sites.js';
import { readsFrom, saveStreamCursors, summarizeStreams } from './stream-cursors.js';
import type { RunOptions, RunResult, SyncDeps } from './run-types.js';
import { StreamProgress } from './stream-progress.js';
import { RunProgress } from './run-progress.js';

/** How many of the companies a narrowed CPQ_COMPANIES no longer names a run's warning names. */
const UNLISTED_NAMED = 5;

/**
 * One sync run: every configured stream is read and staged inside one transaction, merged, and
 * committed together with the cursors and the run record, or rolled back whole.
 */
class SyncRun {
  private readonly site: SiteConfig;
  private readonly cpq: CpqConfig;
  private readonly warnings: string[] = [];
  private readonly progress: StreamProgress[] = [];
  private http!: CpqHttpClient;
  /**
   * The reads' signal: aborted by the first stream that fails (so the others stop at their next
   * request), by the connection lost, or by the run's own signal (interrupted), to which it is
   * linked until the run ends (see LinkedSignal: a worker's signal lives as long as the process).
   */
  private readonly stopReads: LinkedSignal;
  /** The first stream failure, and whether the run had been interrupted (SIGTERM) before it. */
  private firstStreamFailure: { error: unknown; afterInterrupt: boolean } | undefined;
  private connectionLost: Error | undefined;
  private stager: Stager | undefined;
  /** The site's stream cursors as the run found them, read once under its sync lock (no other run writes them meanwhile). */
  private cursors: Map<string, StreamCursor> = new Map();
  /** The run's logger (its lines name the site and run), once the run has its record. */
  private runLog: Logger | undefined;
  /** HISTORY_RETENTION's cutoff this run redacted up to, by the database's clock; undefined without a retention. */
  private retainedFrom: Date | undefined;
  /** How far the run has come, written to its record as it goes; from the start of its transaction's work. */
  private runProgress: RunProgress | undefined;

  constructor(
    private readonly deps: SyncDeps,
    private readonly options: RunOptions = {},
  ) {
    const sites = selectSites(deps.config, options.site === undefined ? [] : [options.site]);
    if (sites.length > 1) throw new ConfigError('CPQ_SITES_FILE names several sites: say which one to sync (--site NAME)');
    this.site = sites[0]!;
    this.cpq = this.site.cpq;
    this.stopReads = new LinkedSignal(options.signal);
  }

  private warn(message: string) {
    this.warnings.push(message);
    // Through the run's logger: a warning line names its site and run, as the info lines do.
    (this.runLog ?? this.deps.log).warn(message);
  }

  async execute(): Promise<RunResult> {
    try {
      return await this.migrateAndRun();
    } catch (err) {
      // Asked to stop before the run had its record (a statement waiting for a lock, cancelled):
      // there is no record to mark interrupted, and none is written as the process ends. What
      // the run failed with is said too, unless it is the signal's own doing (its reason, as a
      // refused statement throws it, or a cancelled statement's error): a failure of the run's own
      // that came as the signal did (a migration's, the connection's) was otherwise hidden behind
      // "interrupted", and the next start was the first to tell it.
      const { signal } = this.options;
      if (signal?.aborted && !(err instanceof SyncError && err.runId !== undefined)) {
        const failure = isSignalsDoing(err, signal) ? '' : ` (as it stopped: ${oneLine(errorMessage(err))})`;
        throw new SyncError('interrupted', `the run was interrupted (signal) before it started; nothing was recorded${failure}`, { site: this.site.name });
      }
      throw err;
    } finally {
      // Linked to the run's signal since the constructor: let go of it however the run ends (a
      // migration or connection failing first included).
      this.stopReads.done();
    }
  }

  private async migrateAndRun(): Promise<RunResult> {
    const { pool, log } = this.deps;
    // What the signal did is passed on as it is (execute tells it apart); any other failure as a SyncError.
    const rethrowUnlessSignals = (err: unknown): never => {
      if (isSignalsDoing(err, this.options.signal)) throw err;
      return rethrowAsSyncError(err);
    };
    await migrateUntilAborted(pool, { ...migrateLogged(log), signal: this.options.signal }).catch(rethrowUnlessSignals);
    const client = await pool.connect().catch(rethrowAsSyncError);
    // Postgres ending the session (a restart) is emitted on the client while we may be waiting on
    // CPQ; unheard, it would crash the process. The next query on the client fails and says so.
    // The reads stop too: with the session gone the lock is free and the transaction lost, and a
    // run that went on reading (a zip export: hours, gigabytes) overlapped the site's next run.
    const onConnectionError = (err: Error) => {
      this.connectionLost ??= err; // the first; later ones follow from it
      this.stopReads.abort(err);
    };
    client.on('error', onConnectionError);
    // Its statements before the transaction, cancelled by a signal as the transaction's are: one
    // waiting for a lock another session holds (cpq.sites, cpq.sync_runs) held a shutdown until
    // SHUTDOWN_TIMEOUT ended it by force.
    const session = cancellableSession(client, this.options.signal);
    try {
      // The session that will hold the site's lock lets go of it soon after this process dies, and
      // no limit of the role's or database's for interactive sessions ends it while it waits on CPQ.
      await prepareHoldingSession(session).catch(rethrowUnlessSignals);
      return await withSyncLock(
        client,
        this.site.name,
        async () => {
          for (const runId of await abandonDeadRuns(session, this.site.name)) {
            log.warn({ site: this.site.name, runId }, 'marked a dead run (left running, it ended without recording how) as abandoned');
          }
          return await this.locked(client);
        },
        { signal: this.options.signal, log },
      );
    } catch (err) {
      if (err instanceof SyncLockHeldByOutsider) throw await this.recordNotStarted(err);
      throw err;
    } finally {
      // Back to the pool with the limits this session took off; a client whose connection broke must not go back.
      await releaseHoldingSession(client, this.connectionLost);
      client.off('error', onConnectionError);
    }
  }

  /**
   * Records, as a failed run, a run that could not start: every run of the site stops while a
   * session that is no cpq-sync run holds its lock, and a skipped run leaves no record, so
   * `status`, /readyz and whatever watches failed runs would see nothing wrong.
   */
  private async recordNotStarted(err: SyncError): Promise<SyncError> {
    const { pool, log } = this.deps;
    const site = this.site.name;
    try {
      // Cancelled by a signal, as the run's statements are: one waiting for a lock on cpq.sync_state
      // or cpq.sync_runs held a shutdown until SHUTDOWN_TIMEOUT ended the process by force.
      const cancellable = cancellableOn(pool, this.options.signal);
      this.cursors = await readCursors(cancellable, site);
      const error = oneLine(err.message);
      const runId = await recordFailedStart(cancellable, site, this.readsAll ? 'full' : 'incremental', error);
      log.error({ site, runId, error }, 'sync run could not start');
      return err.with({ site, runId });
    } catch (recordErr) {
      log.error({ site, error: errorMessage(recordErr) }, 'could not record the run that could not start');
      return err.with({ site });
    }
  }

  private async locked(client: pg.PoolClient): Promise<RunResult> {
    const { log } = this.deps;
    const site = this.site.name;
    // On the pool (committed state: the record stays when the run rolls back), cancelled by a signal.
    const pool = cancellableOn(this.deps.pool, this.options.signal);
    // What the record says until the streams say how they read: a first run reads in full, even one that fails before any stream starts.
    this.cursors = await readCursors(pool, site);
    const runId = await createRun(pool, site, this.readsAll ? 'full' : 'incremental');
    const runLog = log.child({ site, runId });
    this.runLog = runLog;
    this.http = new CpqHttpClient(
      this.cpq,
      createAuthenticator(this.cpq.auth, this.cpq.requestTimeoutMs, this.cpq.ca, this.stopReads.signal),
      runLog,
      this.stopReads.signal,
    );
    const started = Date.now();
    const seconds = () => (Date.now() - started) / 1000;
    // How it reads, as far as known now: each stream's mode is decided as it is read (its cursor,
    // SYNC_FULL_EVERY), and only --full or a first run is full throughout. `full` was --full alone:
    // false for a first run, which reads everything (review JB).
    const mode = this.readsAll ? 'full' : 'per stream';
    // Which build wrote the run, for whoever reads its log: no column of the run record says it.
    runLog.info({ baseUrl: this.cpq.baseUrl, mode, database: this.deps.where, build: BUILD }, 'sync run started');

    // Awaited before the commit and the rollback, which no signal may cancel: a cancel on its way lands before them.
    let stopCancelling: () => Promise<void> = async () => undefined;
    /** The run's result once its COMMIT is sent: what it committed, if the answer to COMMIT is lost. */
    let committing: Omit<RunResult, 'seconds'> | undefined;
    try {
      // Named: a database whose default is REPEATABLE READ would give the commit a snapshot older than
      // the commit_order lock it waits for, and two runs the same commit_seq (migration 0017).
      await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      // A signal cancels the statement in progress (a lock wait, a long merge), which fails the run as
      // interrupted; one that came before (as the run created its record) fails it here (refused).
      stopCancelling = cancelOnAbort(client, this.options.signal);
      // The merge joins the users it read to tables of millions of rows. With the default cost of
      // a random page (4, for spinning disks) the planner scans those tables whole rather than
      // probe their keys for a few thousand changed users (at 100k users: 40-90 ms per step
      // instead of under 20). Index pages of a synced site are in memory or on SSD; 1.1 is the
      // usual setting for that.
      await client.query('SET LOCAL random_page_cost = 1.1');
      runLog.debug({ lz4: await preferLz4Compression(client) }, 'compression of what the run writes');
      const result = await this.inTransaction(client, runId, runLog);
      await stopCancelling();
      // The last statement may have waited (another site's run holding the commit order): a signal
      // that came meanwhile still rolls the run back, as it would have a moment earlier.
      throwIfInterrupted(this.options.signal, 'the run was interrupted (signal) before it finished');
      committing = result;
      await client.query('COMMIT');
      runLog.info({ ...result, site: undefined, runId: undefined, streams: undefined, http: undefined, seconds: seconds() }, 'sync run succeeded');
      // After the commit: ANALYZE holds a lock on the tables until its transaction ends, which
      // inside the run would make another site's run finishing meanwhile wait for this one.
      // Not once a signal came: the run is committed, and the process is ending (review EY).
      const written = result.inserted + result.updated + result.deleted + result.restored;
      if (!this.options.signal?.aborted) {
        await userStatisticsAreStale(client, this.site.name, written)
          .then((stale) => (stale ? analyzeUserTables(client) : undefined))
          .catch((err: unknown) => runLog.warn({ error: errorMessage(err) }, 'could not analyze the user tables'));
      }
      if (this.retainedFrom !== undefined) {
        // After the commit, so that no other site's lock is held for the length of this run's
        // transaction; a failure here leaves this run succeeded (the next run tries again).
        await redactUnnamedSites(
          client,
          this.deps.config.sites.map((s) => s.name),
          this.retainedFrom,
          runLog,
          this.options.signal,
        ).catch((err: unknown) => runLog.warn({ error: errorMessage(err) }, 'could not redact the sites the configuration does not name'));
      }
      return { ...result, seconds: seconds() };
    } catch (err) {
      await stopCancelling();
      this.runProgress?.stop();
      await this.stager?.abandon();
      await client.query('ROLLBACK').catch(() => undefined);
      // Read now, while they still hold: who stopped a run at 3 a.m. is gone from pg_locks by morning.
      const lockHolders = this.connectionLost === undefined ? await describeWriteBlockersOf(client, err) : undefined;
      // A stream's own failure stays the reason even when a signal arrives while the others stop.
      const interrupted = this.options.signal?.aborted === true && (this.firstStreamFailure?.afterInterrupt ?? true);
      let error = (
        interrupted
          ? new SyncError('interrupted', 'the run was interrupted (signal) before it finished')
          : // The connection's own error, not what the next query or the stopped reads said of it.
            this.connectionLost !== undefined
            ? toDatabaseOrInternal(this.connectionLost)
            : err instanceof SyncError
              ? err
              : err instanceof RecordError
                ? new SyncError('data', err.message)
                : toDatabaseOrInternal(err, lockHolders)
      ).with({ site, runId, http: this.httpStats(), seconds: seconds() });
      // Never a credential in the run record, the log or the error thrown (review DJ).
      const message = oneLine(this.http.withoutCredentials(error.message, `a ${error.kind} error`));
      if (message !== oneLine(error.message)) error = new SyncError(error.kind, message, error.details());
      const { mode, pages, streams } = summarizeStreams(this.progress, this.readsAll);
      const recorded = await this.recordFailure(runLog, (giveUp) =>
        finishFailedRun(
          this.deps.pool,
          runId,
          {
            status: error.kind === 'interrupted' ? 'interrupted' : 'failed',
            error: message,
            mode,
            pages,
            streams,
            warnings: [...this.warnings, 'the run was rolled back: the database is as the last good run left it'],
            http: this.httpStats(),
            progress: this.runProgress?.report ?? null,
          },
          giveUp,
        ),
      );
      if (!recorded) {
        // Its COMMIT went through before the connection failed (the record is no longer `running`:
        // the run's transaction made it `succeeded`). It succeeded, and says so: reported as
        // failed and rolled back, it was a run that had changed the data and sent its alerts (review HQ).
        if (committing !== undefined) {
          runLog.warn(
            { error: message },
            'the connection to Postgres was lost as the run committed, and its record (cpq.sync_runs) says it succeeded: it committed',
          );
          runLog.info({ ...committing, site: undefined, runId: undefined, streams: undefined, http: undefined, seconds: seconds() }, 'sync run succeeded');
          return { ...committing, seconds: seconds() };
        }
        runLog.error(
          { error: message, kind: error.kind },
          'sync run failed after its commit reached the database; its record (cpq.sync_runs) says what committed',
        );
        throw error;
      }
      // A shutdown is asked for, not a failure: no error line for an operator to chase (review EF).
      if (error.kind === 'interrupted') runLog.info({ error: message }, 'sync run interrupted; rolled back, nothing was changed');
      else runLog.error({ error: message, kind: error.kind }, 'sync run failed; nothing was changed');
      if (error.kind !== 'interrupted') await this.redactAfterFailure(client, runLog);
      throw error;
    }
  }

  /**
   * Records the failed run (`finish`: finishFailedRun, false when the record was not written: the run's
   * commit went through after all). Tried again when the connection was lost, for up to half a
   * minute: a server restarting refused the one try, and the run was later recorded "abandoned:
   * its process stopped", its cause lost; tries 1 s and 3 s after were still too soon for a
   * server down 8 s (a crash recovery, a failover), and the record stayed `running` (review DU).
   * Asked to stop (SIGTERM) meanwhile, it tries once more and stops: the process is due to exit,
   * and a shutdown kept waiting for the database was ended by force at SHUTDOWN_TIMEOUT (review
   * DZ); the record left `running` is marked abandoned by the site's next run. So is a try still
   * waiting half of SHUTDOWN_TIMEOUT after the signal (`giveUp`, cancelOnAbort): one waiting for the
   * record's row (another session holding it) waited up to SYNC_LOCK_TIMEOUT, and the process was
   * ended by force.
   * Tried again too when a statement_timeout cancelled a try (finishFailedRun raises a role's or
   * database's short limit for the record, but under it the statement that raises it can be cancelled too).
   * A record that cannot be written is logged, and counts as written.
   */
  private async recordFailure(log: Logger, finish: (giveUp: AbortSignal) => Promise<boolean>): Promise<boolean> {
    const signal = this.options.signal;
    const waits = this.connectionLost === undefined ? [] : [1000, 2000, 4000, 8000, 15_000];
    const timeoutWaits = [200, 1000, 3000];
    const graceMs = this.deps.config.worker.shutdownTimeoutMs / 2;
    // One for the whole write, its clock started by the signal: a try then gives up half of
    // SHUTDOWN_TIMEOUT after the signal, however many came before it.
    const giveUp = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const onStop = () => {
      timer = setTimeout(() => giveUp.abort(new Error('the record was not written within half of SHUTDOWN_TIMEOUT of the signal')), graceMs);
    };
    if (signal?.aborted) onStop();
    else signal?.addEventListener('abort', onStop, { once: true });
    try {
      for (;;) {
        try {
          return await finish(giveUp.signal);
        } catch (err) {
          const timedOut = isStatementTimeout(err);
          const wait = signal?.aborted ? undefined : (timedOut ? timeoutWaits : waits).shift();
          // Said for a lost connection too: the run may wait half a minute for a server coming back,
          // silent until then (and a test can tell it is waiting).
          if (wait !== undefined) log.warn({ error: errorMessage(err), waitMs: wait }, 'could not record the failed run yet; trying again');
          if (wait === undefined) {
            const stopping = signal?.aborted ? ': asked to stop, it is left running and the next run marks it abandoned' : '';
            log.error({ error: errorMessage(err) }, `could not record the failed run${stopping}`);
            return true;
          }
          await sleep(wait, undefined, signal ? { signal } : {}).catch(() => undefined);
        }
      }
    } finally {
      signal?.removeEventListener('abort', onStop);
      clearTimeout(timer);
    }
  }

  /**
   * Applies HISTORY_RETENTION to the site after its run failed and was recorded, in a transaction
   * of its own, under the lock the run still holds: a site whose runs keep failing (revoked
   * credentials, CPQ shut down) kept deleted users' personal fields past the retention until its
   * next success. The run itself changed nothing; a failure here is logged, and the next run tries again.
   * Cancelled by a signal (cancelOnAbort), as the redaction of unnamed sites is: one waiting for a
   * lock (a report's session holding the site's retention state) held a shutdown until
   * SHUTDOWN_TIMEOUT ended the process by force; rolled back, the next run redoes it.
   */
  private async redactAfterFailure(client: pg.PoolClient, log: Logger): Promise<void> {
    const retentionMs = this.deps.config.historyRetentionMs;
    const signal = this.options.signal;
    if (retentionMs === undefined || this.connectionLost !== undefined || signal?.aborted) return;
    const stopCancelling = cancelOnAbort(client, signal);
    try {
      // By the database's clock, which dates what it redacts.
      const retainedFrom = new Date((await readDatabaseNow(client)).getTime() - retentionMs);
      const redacted = await redactSiteOutsideRun(client, this.site.name, retainedFrom);
      if (redactedAny(redacted)) {
        log.info({ redacted }, 'personal fields past HISTORY_RETENTION redacted after the failed run');
      }
    } catch (err) {
      // Cancelled by the shutdown: rolled back, and no news (the next run redoes it).
      if (!signal?.aborted) log.warn({ error: errorMessage(err) }, 'could not redact, past HISTORY_RETENTION, after the failed run; the next run tries again');
    } finally {
      // A cancel sent is delivered before the site's unlock: landing on it, it left the lock held by the session.
      await stopCancelling();
    }
  }

  /**
   * Of the host's own login names, those an earlier release filed integration users under (beside
   * their `_host` rows): their rows are ended as deleted, with the host's missing users, by this
   * run's full read of `_host`, which holds every user of the host. Each is named in a warning.
   */
  private async endHostAliasRows(client: pg.PoolClient, hostAliases: readonly string[], guard: DeletionLimits): Promise<string[]> {
    const ended: string[] = [];
    for (const [name, { users: n, withoutHostTwin }] of await countHostAliasRows(client, this.site.name, hostAliases)) {
      const users = `${n} user${n === 1 ? '' : 's'}`;
      // An earlier release's rows there are integration users, each beside its _host row. Rows
      // with no such twin are no release's doing (a company list naming a partner organization
      // the host's, isHost): all of the alias's rows then go through the deletion guard.
      if (refusesDeletion(withoutHostTwin, n, guard)) {
        this.warn(
          `${users} filed under ${JSON.stringify(name)}, which the company list names as the host's own login, are kept: ${withoutHostTwin} of them have no row of the same login under _host, ` +
            pastDeletionLimits(guard, 'they are rows an earlier release filed there'),
        );
        continue;
      }
      this.warn(`${users} an earlier release filed under the host's own login name ${JSON.stringify(name)} ended as deleted: the host's users are under _host`);
      ended.push(name);
    }
    return ended;
  }

  /**
   * Of the companies the database holds present users of that `unread` says this run did not
   * read, those CPQ no longer has (their users answer 404): their users are marked deleted with
   * the run's others, within the deletion guard (all of a company's users are missing). One that
   * still answers is kept as it is. Each is named in a warning. A company holding integration
   * users is looked at only when `integrationComplete` (the integration feed was read in full):
   * otherwise its users may be there, unread (the feed off, or absent this once). `held`: those
   * gone or maybe gone whose users were kept all the same (the guard, an incomplete integration
   * read): no part of this run may delete their users, integration users included.
   */
  private async endRemovedCompanies(
    client: pg.PoolClient,
    unread: (company: string) => boolean,
    integrationComplete: boolean,
    guard: DeletionLimits,
  ): Promise<{ removed: string[]; held: string[] }> {
    const removed: string[] = [];
    const held: string[] = [];
    for (const [company, { users: n, integrationUsers }] of await countPresentUsers(client, this.site.name)) {
      if (!unread(company)) continue;
      const outcome = await this.removedCompany(company, n, integrationUsers, integrationComplete, guard);
      if (outcome === 'removed') removed.push(company);
      if (outcome === 'held') held.push(company);
    }
    return { removed, held };
  }

  /**
   * What becomes of an unread company's `n` users (see endRemovedCompanies): `removed` (marked
   * deleted), `held` (kept: the integration read was incomplete, or the guard refused), or
   * `left` (CPQ still answers for the company, or cannot be asked). Each case but the last is warned.
   */
  private async removedCompany(
    company: string,
    n: number,
    integrationUsers: number,
    integrationComplete: boolean,
    guard: DeletionLimits,
  ): Promise<'removed' | 'held' | 'left'> {
    if (integrationUsers > 0 && !integrationComplete) {
      this.warn(
        `company ${JSON.stringify(company)} is not in the company list; it holds integration users, and the integration feed was not read in full this run: its users are kept as they are, not read`,
      );
      return 'held';
    }
    // An integration user's company name CPQ could not be asked about (a / in it): nothing to ask.
    if (pathSegmentProblem(company) !== undefined) return 'left';
    const users = `${n} user${n === 1 ? ' is' : 's are'}`;
    if (!(await companyGone(this.http, this.cpq, company))) {
      // Its integration users are the integration feed's (integrationDeleteIn): read in full here.
      const kept =
        integrationUsers === 0 ? `its ${users} kept as they are, not read` : `its users are not read; its integration users follow the integration feed`;
      this.warn(`company ${JSON.stringify(company)} is not in the company list, but CPQ still answers for its users: ${kept}`);
      return 'left';
    }
    if (refusesDeletion(n, n, guard)) {
      this.warn(
        `company ${JSON.stringify(company)} is gone from CPQ (not in the company list; its users answer 404): its ${users} kept as present, ` +
          pastDeletionLimits(guard, 'the company is gone for good'),
      );
      return 'held';
    }
    this.warn(`company ${JSON.stringify(company)} is gone from CPQ (not in the company list; its users answer 404): its ${users} marked deleted`);
    return 'removed';
  }

  /**
   * Warns, once, of the companies the database holds present users of (integration users aside)
   * that `named` leaves out, an explicit CPQ_COMPANIES narrowed since they were read: no run reads
   * them, so their users would look current (in `snapshot`, as of the latest run) when no run has
   * confirmed them since (review IL).
   */
  private async warnUnlistedCompanies(client: pg.PoolClient, named: readonly string[]): Promise<void> {
    const unlisted = await readUnlistedCompanies(client, this.site.name, named, UNLISTED_NAMED);
    if (unlisted.count === 0) return;
    const names = unlisted.first.map((c) => printable(JSON.stringify(c))).join(', ') + (unlisted.count > unlisted.first.length ? ', …' : '');
    const them = unlisted.count === 1 ? 'it' : 'them';
    this.warn(
      `the database holds users of ${unlisted.count} compan${unlisted.count === 1 ? 'y' : 'ies'} CPQ_COMPANIES does not name (${names}): no run reads ${them}, ` +
        `so their users stay as last read (cpq.users.last_synced_at says when) and \`cpq-sync verify\` compares ${them} with CPQ; ` +
        `to read ${them} again, name ${them} in CPQ_COMPANIES (no command drops the users of a company CPQ still has; ` +
        `a full run with CPQ_COMPANIES=* marks deleted those of a company CPQ no longer has)`,
    );
  }

  /**
   * Which users the final merge may mark deleted (MergeDeletions): the company reads the guard
   * allowed, host-alias rows, removed companies (a run of every company), and integration users
   * of companies no company read covers (a complete integration read). Each refusal is warned.
   */
  private async planDeletions(
    client: pg.PoolClient,
    runId: string,
    guard: DeletionGuard,
    read: { readAll: boolean; companies: readonly string[]; hostAliases: readonly string[]; integrationUsers: IntegrationUsers },
  ): Promise<MergeDeletions> {
    const { readAll, companies, hostAliases, integrationUsers } = read;
    const deletable = await deletableCompanies(client, runId, guard);
    const deleteIn = guard.integrationUsersKept ? [] : [...deletable];
    const deleteNonIntegrationIn = guard.integrationUsersKept ? deletable : [];
    // Rows an earlier release filed under a host alias: no feed returns them any more, whatever was read.
    if (deletable.includes('_host')) deleteIn.push(...(await this.endHostAliasRows(client, hostAliases, guard)));
    let held: string[] = [];
    // Sets, not lists searched per company: the database's companies against a list of up to
    // hundreds of thousands (CPQ_COMPANIES=*) cost the square of their number.
    const readNames = new Set([...companies, ...hostAliases]);
    // Every company of the site was read: those the database still holds that the list no longer
    // names (a partner organization removed) are no run's to delete, unless found here.
    if (readAll && this.progress.some((p) => p.id.kind === 'company' && p.report.mode === 'full')) {
      const unread = (company: string) => !readNames.has(company) && !integrationUsers.inCompany(company);
      const removedCompanies = await this.endRemovedCompanies(client, unread, integrationUsers.complete, guard);
      deleteIn.push(...removedCompanies.removed);
      held = removedCompanies.held;
    }
    // Integration users of companies no company read covers: the integration feed alone returns
    // them. Not those whose users are deleted or held already.
    const settled = new Set([...deleteIn, ...held]);
    const integrationDeleteIn = integrationUsers.complete
      ? await integrationDeletableCompanies(
          client,
          runId,
          guard,
          (await readIntegrationUserCompanies(client, this.site.name)).filter((c) => !readNames.has(c) && !settled.has(c)),
        )
      : [];
    return { deleteIn, deleteNonIntegrationIn, integrationDeleteIn };
  }

  /** A copy of the HTTP client's counts as they stand. */
  private httpStats(): HttpStats {
    return { requests: this.http.stats.requests, retries: { ...this.http.stats.retries } };
  }

  /**
   * The integration feed of the site (a site whose integrationUsers endpoint is absent gives an
   * empty one, with a warning), and the host's other login names that are no company this run
   * reads (hostAliases). Refuses a configuration that would file the host's users and its
   * integration users under two names.
   */
  private async readIntegrationFeed(
    read: {
      listed: CompanyList | undefined;
      companies: readonly string[];
      readAll: boolean;
      sinceFor: (id: StreamId) => Date | undefined;
      track: (id: StreamId, since: Date | undefined) => StreamProgress;
    },
    log: Logger,
  ): Promise<{ integrationUsers: IntegrationUsers; hostAliases: string[] }> {
    const { companies, readAll, sinceFor, track } = read;
    let companyList = read.listed;
    // The list tells the host's own login name, which integration users name it by.
    if (companyList === undefined && this.cpq.hostCompany === undefined) {
      companyList = await listCompanies(this.http, this.cpq).catch((err: unknown) => {
        // Without it, integration users that name the host by its own login would be filed under
        // that name beside their _host rows, in a company no run reads in full: never deleted.
        // Said when CPQ answered the list badly, not when it refused the credentials (401) or did
        // not answer at all: every request would fail alike, and the setting would not help.
        if (err instanceof SyncError && (err.kind === 'data' || (err.status !== undefined && err.status !== 401))) {
          throw new SyncError(
            err.kind,
            `${err.message}; integration users need the company list to tell the host's own login name: set CPQ_HOST_COMPANY to it to read them without the list`,
            {
              ...(err.status === undefined ? {} : { status: err.status }),
            },
          );
        }
        throw err;
      });
    }
    const progress = track(INTEGRATION_STREAM, integrationSince(sinceFor, this.cpq, companies));
    const integrationCompanies = new IntegrationCompanies(this.cpq.hostCompany, companyList);
    const aliases = integrationCompanies.hostAliases();
    // A set: a list marking 100,000 companies as the host, each looked for in 100,000 names, cost 50 s
    // before any company was read, in the run's transaction (review HS).
    const named = new Set(companies);
    const hostAliases = aliases.filter((name) => !named.has(name));
    const integrationUsers = await readIntegrationUsers(
      this.http,
      this.cpq,
      integrationCompanies,
      progress,
      log,
      (warning) => {
        // A site without the endpoint has no such stream: no report, no cursor.
        this.progress.splice(this.progress.indexOf(progress), 1);
        this.warn(warning);
      },
      (warning) => this.warn(warning),
    );
    progress.ended();
    if (readAll && companyList !== undefined && !companyList.marksHost && integrationUsers.size > 0) {
      // The list's names are the company reads: the host's users would be read under its own
      // login, and its integration users (naming _host, or nothing) filed under _host.
      throw new SyncError(
        'config',
        "the company list marks no company as the host (isHost), so with CPQ_COMPANIES=* the host's users would be stored under its own login name and its integration users under _host: set CPQ_HOST_COMPANY to the host's own login name",
      );
    }
    const hostByOwnLogin = aliases.find((name) => named.has(name));
    if (hostByOwnLogin !== undefined && this.progress.includes(progress)) {
      // Where the site has the integration feed (an absent one took its stream off), the host's
      // users would be filed under that name and its integration users under _host: each
      // integration user two rows, one of them not an integration user.
      throw new SyncError(
        'config',
        `CPQ_COMPANIES names the host company by its own login name ${JSON.stringify(hostByOwnLogin)}: name it _host, under which its integration users are filed`,
      );
    }
    for (const name of integrationCompanies.unlisted) {
      this.warn(
        `integration users name the company ${JSON.stringify(name)}, which the company list does not have; they are stored under that name: if it is the host's own login name, set CPQ_HOST_COMPANY=${name}`,
      );
    }
    return { integrationUsers, hostAliases };
  }

  /** Whether the run reads every user: --full, or a site with no stream read yet (its first run). */
  private get readsAll(): boolean {
    return this.options.full === true || this.cursors.size === 0;
  }

  private async inTransaction(client: pg.PoolClient, runId: string, log: Logger): Promise<Omit<RunResult, 'seconds'>> {
    const { config } = this.deps;
    // Its statements outside the transaction, cancelled with the run as its own are (cancelOnAbort).
    const pool = cancellableOn(this.deps.pool, this.options.signal);
    const site = this.site.name;
    // Before the first request: a site's rows are those of one CPQ.
    const cpqUrl = siteCpqUrl(this.cpq.baseUrl, this.cpq.pathPrefix);
    const recordedCpqUrl = await readSiteCpqUrl(client, site);
    requireSameCpq(site, recordedCpqUrl, cpqUrl, this.options.cpqMoved === true);
    if (recordedCpqUrl !== null && recordedCpqUrl !== cpqUrl)
      this.warn(`site ${site} was synced from ${recordedCpqUrl}; from this run on, from ${cpqUrl} (--cpq-moved)`);
    // A site's first run: another site of this database may hold the same users (this one is it,
    // renamed), which this run stores again; said, not refused, as for two sites of one sites file.
    const sameUsers = recordedCpqUrl === null ? await readSameUsersHeld(client, site, this.cpq) : undefined;
    if (sameUsers) this.warn(`${sameUsers.problem}: ${sameUsers.fix}`);
    // The floor of the run's effective time (after the site's last run) and the database's time,
    // which SYNC_FULL_EVERY is judged by for every stream of the run.
    const clock = await readRunClock(client, site);
    const sinceFor = readsFrom(this.cursors, {
      full: this.options.full === true,
      fullEveryMs: config.fullEveryMs,
      lookbackMs: config.lookbackMs,
      databaseNow: clock.now,
    });
    // Written on the pool, outside the transaction, as it goes: `status` shows it while the run reads.
    const runProgress = new RunProgress(this.progress, (report) => writeRunProgress(pool, runId, report), log);
    this.runProgress = runProgress;
    // At once: with CPQ_COMPANIES=*, the company list (~450 pages for 450,000 companies) comes first.
    runProgress.enter('reading');
    const display = this.options.progress?.forSite?.(this.site.name) ?? this.options.progress;
    const track = (id: StreamId, since: Date | undefined) => {
      const progress = new StreamProgress(
        id,
        since,
        {
          update: (report, startedAt) => {
            display?.update(report, startedAt);
            display?.totals?.(runProgress.read);
            runProgress.changed();
          },
          ended: (report) => display?.ended?.(report),
        },
        runProgress.read,
      );
      this.progress.push(progress);
      return progress;
    };

    const stager = await Stager.create(client);
    this.stager = stager;
    const notBefore = clock.lastEffectiveAt === null ? -Infinity : clock.lastEffectiveAt.getTime() + 1;
    // When the versions this run writes start (their valid_from, sync_runs.effective_at): fixed
    // when its first merge, batch or final, or its first direct write begins, by the database's
    // clock read then, not worked out from the offset measured at the start: a clock stepped in
    // between (NTP, a VM resumed) dated the run an hour ahead, or before its own start, and
    // snapshots and as-of answers followed it (review DE). On the pool: the run's client may be
    // writing a COPY that waits for these rows.
    let fixed: Promise<Date> | undefined;
    const effectiveAt = () => (fixed ??= readDatabaseNow(pool).then((now) => new Date(Math.max(now.getTime(), notBefore))));
    const batches = new MergeBatches(client, stager, site, runId, effectiveAt, config.mergeBatchUsers, log);
    const readAll = this.cpq.companies.includes('*');
    const listed = readAll ? await listCompanies(this.http, this.cpq) : undefined;
    const companies = listed !== undefined ? listed.logins : this.cpq.companies;
    runProgress.readsCompanies(companies.length);
    const { integrationUsers, hostAliases } = integrationEnabled(this.cpq)
      ? await this.readIntegrationFeed({ listed, companies, readAll, sinceFor, track }, log)
      : { integrationUsers: new IntegrationUsers(), hostAliases: [] };
    // The host's other login names are no company left unread: their rows are the host's, which a
    // full read of _host ends, with a warning of its own (endHostAliasRows).
    if (!readAll) await this.warnUnlistedCompanies(client, [...companies, ...hostAliases]);
    // Read whole (an absent feed took its stream off: nothing to count).
    if (this.progress.some((p) => p.id.kind === 'integration')) runProgress.streamDone();
    const firstLoads = await findFirstLoadCompanies(client, site, companies);
    const direct = new DirectLoad(client, pool, stager, site, runId, effectiveAt, config.directFirstLoad ? firstLoads : new Set());
    const read = {
      site,
      http: this.http,
      cpq: this.cpq,
      pool,
      log,
      signal: this.stopReads.signal,
      integrationUsers,
      firstLoads,
      direct,
      stager,
      sinceFor,
      track,
      staged: () => batches.mergeIfDue(),
    };

    // The first stream to fail fails the run. The others stop at their next request and are
    // awaited, so that none goes on reading (or writing into the transaction being rolled back).
    await allUntilFirstFailure(
      companies,
      this.cpq.concurrency,
      async (company) => {
        await readCompany(read, company);
        runProgress.streamDone();
      },
      (err) => {
        this.firstStreamFailure = { error: err, afterInterrupt: this.options.signal?.aborted === true };
        this.stopReads.abort();
      },
    );
    runProgress.enter('merging');
    await stageIntegrationOnly(site, integrationUsers, stager, client);
    await stager.finish();
    await direct.finish();

    // Reads whose logins did not all come in order may hold a user twice: counted by user.
    // (Only those with a totalResults to fall short of: a zip export has one only when its .json bodies give it.)
    const counted = this.progress.filter((p) => p.id.kind === 'company' && p.report.totalResults !== null && !p.short && p.mayRepeat);
    const users = await countUsersRead(
      client,
      site,
      counted.map((p) => ({ stream: p.id.name, company: p.id.company!, direct: direct.loads(p.id.company!) })),
    );
    for (const p of counted) p.countedUsers(users.get(p.id.name) ?? 0);
    for (const p of this.progress) for (const warning of p.finish()) this.warn(warning);
    const guard = {
      site,
      progress: this.progress,
      firstLoads,
      maxDeleteFraction: config.maxDeleteFraction,
      massDeleteMin: config.massDeleteMin,
      allowMassDelete: this.options.allowMassDelete === true,
      rerun: massDeleteCommand(site, config.sites.length > 1),
      // A user only the integration feed returns is no company read's to delete, unless that feed
      // was read in full: short, or absent this once, it may have left the user out.
      integrationUsersKept: integrationEnabled(this.cpq) && !integrationUsers.complete,
      keysetReads: this.cpq.exportFormat !== 'zip',
      warn: (m: string) => this.warn(m),
    };
    const deletions = await this.planDeletions(client, runId, guard, { readAll, companies, hostAliases, integrationUsers });
    const counts = await mergeStaged(client, site, runId, await effectiveAt(), deletions, batches.inserted + direct.written, (m) => this.warn(m), log);
    await saveFeedFields(client, site, integrationUsers.feedFields());
    runProgress.enter('sealing');
    // Host aliases: a user an earlier release filed under one is no new integration user (insertAlerts).
    await recordAlerts(client, runId, config.alerts, this.site.alerts, log, hostAliases);
    // The database's clock now, not the start's offset: this machine's may have been stepped since.
    const now = await readDatabaseNow(client);
    await saveStreamCursors(client, { site, runId, lookbackMs: config.lookbackMs, siteDate: this.http.earliestSiteDate, now }, this.progress, (m) =>
      this.warn(m),
    );
    // Expired by the database's clock, which dates what it redacts.
    const retainedFrom = config.historyRetentionMs === undefined ? undefined : new Date(now.getTime() - config.historyRetentionMs);
    this.retainedFrom = retainedFrom;
    await proveRun(client, site, runId, this.progress, retainedFrom, log);
    // Last: the update holds the site's row until the commit, and another session adding the same
    // site (registerSite) waits for it.
    if (recordedCpqUrl !== cpqUrl) await recordSiteCpqUrl(client, site, cpqUrl);

    const { mode, pages, streams } = summarizeStreams(this.progress, this.readsAll);
    const http = this.httpStats();
    // Written before the update below, which holds the record until the commit and waits for
    // another site's run to commit first (migration 0017): a progress write meanwhile would find the
    // record locked, and skip it.
    await runProgress.last('committing');
    await finishRun(client, runId, {
      status: 'succeeded',
      mode,
      pages,
      counts,
      streams,
      warnings: this.warnings,
      http,
      effectiveAt: await effectiveAt(),
      progress: runProgress.report,
    });
    return { site, runId, status: 'succeeded', mode, pages, streams, warnings: this.warnings, http, ...counts };
  }
}

/**
 * One run of one site. The alerts it records stay pending: its caller sends them (`run` once after
 * every site, the worker in its background pass), so that a slow webhook holds up no site's next run.
 */
export async function runSync(deps: SyncDeps, options: RunOptions = {}): Promise<RunResult> {
  return new SyncRun(deps, options).execute();
}
