import { type Command, Option } from 'commander';
import { ConfigError, selectSites, withCpq } from '../config.js';
import { EXIT_CODES, SyncError, errorMessage, jsonForTerminal, oneLine, rethrowAsSyncError, throwIfInterrupted } from '../errors.js';
import { command } from './command.js';

/** The commands that sync: one run now (run), the worker (schedule), migrations (migrate), and the setup check (check). */
export function registerSyncCommands(program: Command): void {
  program
    .command('run')
    .description('run one sync now: full the first time (per stream) and every SYNC_FULL_EVERY, incremental otherwise')
    .option('--full', 'read every user, ignoring the stored cursors')
    .option('--allow-mass-delete', 'with --full: mark missing users deleted even above SYNC_MAX_DELETE_FRACTION and SYNC_MASS_DELETE_MIN')
    .addOption(new Option('--format <format>', 'how to read company users (overrides CPQ_EXPORT_FORMAT)').choices(['json', 'zip']))
    .option('--site <name...>', 'sync only these sites (default: every configured site)')
    .option('--cpq-moved', "the site's CPQ is the same one at a new address: read its base URL although its rows were read from another (one site)")
    .action((opts: { full?: boolean; allowMassDelete?: boolean; format?: 'json' | 'zip'; site?: string[]; cpqMoved?: boolean }) =>
      command(async (loaded, log) => {
        const { openDatabase } = await import('../db/connect.js');
        const { printSummary, terminalProgress } = await import('../progress/index.js');
        const { runSites } = await import('../sync/run-sites.js');
        const { ShutdownSignals } = await import('../worker/shutdown.js');
        // The configuration keeps every site it names (HISTORY_RETENTION tells them from sites it no longer names); the chosen ones run.
        const config = opts.format ? withCpq(loaded, { exportFormat: opts.format }) : loaded;
        const sites = selectSites(config, opts.site ?? []);
        // Only a full read deletes: without --full a run may read incrementally, and the flag would do nothing, silently.
        if (opts.allowMassDelete && !opts.full) {
          const site = opts.site?.length ? `--site ${opts.site.join(' ')} ` : '';
          throw new ConfigError(
            `--allow-mass-delete lets a full read delete past the deletion guard, and without --full this run may read incrementally and delete nothing: add --full (cpq-sync run ${site}--full --allow-mass-delete)`,
          );
        }
        // Said of one site: with several, a site pointed at another CPQ by mistake would be taken too.
        if (opts.cpqMoved && sites.length > 1) throw new ConfigError('--cpq-moved is said of one site: name it (--site NAME)');
        // SIGINT/SIGTERM: the runs roll back, are recorded `interrupted`, exit code 130.
        const shutdown = new ShutdownSignals({ log, timeoutMs: config.worker.shutdownTimeoutMs });
        // In a terminal: one line per stream redrawn in place, then a table per company; otherwise the JSON lines.
        const terminal = terminalProgress(config, process.stdout);
        try {
          const database = await openDatabase(config, log, { concurrentRuns: Math.min(sites.length, config.worker.siteConcurrency) });
          shutdown.takeOverSignals();
          try {
            throwIfInterrupted(shutdown.signal, 'interrupted before the run started; nothing was recorded');
            const options = {
              full: opts.full === true,
              allowMassDelete: opts.allowMassDelete === true,
              cpqMoved: opts.cpqMoved === true,
              signal: shutdown.signal,
              ...(terminal ? { progress: terminal.display } : {}),
            };
            const outcomes = await runSites({ ...database, config, log: terminal?.log ?? log }, sites, options, config.worker.siteConcurrency);
            for (const { result } of outcomes) {
              if (!result) continue;
              if (terminal) await printSummary(database.pool, result, terminal.display, process.stdout);
              log.info(
                {
                  site: result.site,
                  runId: result.runId,
                  mode: result.mode,
                  inserted: result.inserted,
                  updated: result.updated,
                  unchanged: result.unchanged,
                  deleted: result.deleted,
                  restored: result.restored,
                  warnings: result.warnings.length,
                },
                'done',
              );
            }
            const failed = outcomes.filter((o) => o.error !== undefined);
            // One site: its error as it is. Several: one line naming each failed site; the exit code is
            // that of the first site, in sites order, that failed for a reason other than a held lock (7 when none did).
            if (failed.length === 1 && sites.length === 1) throw failed[0]!.error;
            if (failed.length > 0) {
              const lines = failed.map((o) => `site ${o.site}: ${oneLine(o.error.message)}`);
              // A site skipped because another run holds its lock did not fail: said as what it was.
              const outcome = failed.every((o) => o.error.kind === 'lock') ? 'skipped' : 'failed';
              // A skip ranks below every real failure: a cron wrapper that takes 7 for a harmless overlap
              // hid a refused login (4) or an outage (3) of a later site while a worker held an earlier one's lock.
              const first = failed.find((o) => o.error.kind !== 'lock') ?? failed[0]!;
              throw new SyncError(first.error.kind, `${failed.length} of ${sites.length} sites ${outcome}: ${lines.join('; ')}`);
            }
          } finally {
            terminal?.display.stop();
            await database.close();
          }
        } finally {
          shutdown.dispose();
        }
      }),
    );
  program
    .command('schedule')
    .description(
      'keep running: each site synced on its schedule (SYNC_CRON in SYNC_TIMEZONE, or its own cron in CPQ_SITES_FILE) until SIGTERM/SIGINT; health and metrics on HTTP_PORT',
    )
    .action(() =>
      command(async (config, log) => {
        const { openDatabase } = await import('../db/connect.js');
        const { ShutdownSignals } = await import('../worker/shutdown.js');
        const { SyncWorker, workerStopping } = await import('../worker/sync-worker.js');
        // Before the database is opened: no site at all is a configuration error (exit code 2), as a
        // bad schedule is (loadConfig checks every site's).
        selectSites(config);
        // Said as the signal comes: until the worker exists (the database opening), no run is in progress either.
        let worker: InstanceType<typeof SyncWorker> | undefined;
        const stopping = () => workerStopping(worker?.runsInProgress ?? 0);
        const shutdown = new ShutdownSignals({ log, timeoutMs: config.worker.shutdownTimeoutMs, stopping });
        try {
          const database = await openDatabase(config, log, { concurrentRuns: config.worker.siteConcurrency });
          shutdown.takeOverSignals();
          try {
            if (shutdown.signal.aborted) return;
            worker = new SyncWorker({ ...database, config, log });
            // Stopped while it migrated: nothing started, nothing to stop.
            if (!(await worker.start(shutdown.signal))) return;
            // The action (and so the process) lives until a signal; then the current run rolls back.
            await shutdown.requested;
            await worker.stop();
          } finally {
            await database.close();
          }
        } finally {
          shutdown.dispose();
        }
      }),
    );
  program
    .command('migrate')
    .description('apply database migrations (every run also does this first)')
    .action(() =>
      command(async (config, log) => {
        const { openDatabase } = await import('../db/connect.js');
        const { migrateLogged, migrate } = await import('../db/migrate.js');
        const database = await openDatabase(config, log);
        try {
          // A database error is exit code 6, as for a run (it was 1, an internal error).
          const applied = await migrate(database.db, migrateLogged(log)).catch(rethrowAsSyncError);
          log.info({ applied, database: database.where }, applied.length ? 'migrations applied' : 'database is up to date');
        } finally {
          await database.close();
        }
      }),
    );
  program
    .command('check')
    .description(
      'check the setup without syncing: configuration; per site host and TLS, credentials, path prefix, companies, users, integration users, zip export; the database, its schema and the sync lock. Writes nothing',
    )
    .option('--json', 'JSON for scripts instead of lines')
    .option('--site <name...>', 'check only these sites (default: every configured site)')
    .action(async (opts: { json?: boolean; site?: string[] }) => {
      try {
        const { checkExitCode, formatCheck, runCheck } = await import('../check/index.js');
        const report = await runCheck(process.env, opts.site ?? []);
        process.stdout.write(opts.json ? `${jsonForTerminal(JSON.stringify(report))}\n` : formatCheck(report));
        process.exitCode = checkExitCode(report);
      } catch (err) {
        process.stderr.write(`cpq-sync: ${oneLine(errorMessage(err))}\n`);
        process.exitCode = EXIT_CODES.internal;
      }
    });
}
