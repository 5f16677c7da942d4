import { userInfo } from 'node:os';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, DEFAULT_SITE, selectSites } from '../config.js';
import { SyncError, rethrowAsSyncError, printable, throwIfInterrupted } from '../errors.js';
import type { ShutdownSignals } from '../worker/shutdown.js';
import { command, withReadDatabase } from './command.js';

/**
 * An option given once: commander keeps the last of several, and `forget`, which cannot be undone,
 * erased the user (or the site) named last, saying nothing of the first (review HK).
 */
function once(value: string, previous: string | undefined): string {
  if (previous !== undefined) throw new InvalidArgumentError(`given twice (${JSON.stringify(previous)} before it); name one`);
  return value;
}

/** Who runs the command, for cpq.erasures when --by is not given: the OS user, or its uid in a container that has no name for it. */
function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? 'unknown'}`;
  }
}

/** The compliance commands: alerts on privileged access (alerts), proofs (verify) and lawful forgetting (forget). */
export function registerComplianceCommands(program: Command): void {
  const alerts = program.command('alerts').description('alerts on privileged access: send a test alert, list the undelivered ones, send them now');

  alerts
    .command('test')
    .description('send a sample alert to ALERT_WEBHOOK_URL now, signed as real ones are; writes nothing to the database')
    .addOption(new Option('--site <name>', 'the site the sample names (default: the first configured site)'))
    .action((opts: { site?: string }) =>
      command(async (config) => {
        const { sendTestAlert } = await import('../alerts/commands.js');
        // With a sites file, a sample naming a site that is none of them would test nothing a receiver routes on:
        // --site names a configured one (selectSites refuses another, naming them), or the first is named.
        const site = opts.site !== undefined && config.sites.length > 0 ? selectSites(config, [opts.site])[0]!.name : opts.site;
        const { key, result } = await sendTestAlert(config.alerts, site ?? config.sites[0]?.name ?? DEFAULT_SITE);
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
    .addOption(new Option('--status <status...>', 'which alerts').choices(['pending', 'failed', 'delivered', 'suppressed']).default(['pending', 'failed']))
    .addOption(new Option('--limit <n>', 'how many alerts to list').default('100'))
    .action((opts: { json?: boolean; status: ('pending' | 'failed' | 'delivered' | 'suppressed')[]; limit: string }) =>
      command(
        async (config, log) => {
          const { formatAlerts, readAlerts, stringifyAlerts } = await import('../alerts/commands.js');
          const limit = Number(opts.limit);
          if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > 100_000)
            throw new ConfigError(`--limit must be a whole number from 1 to 100000, got "${opts.limit}"`);
          // As the other read-only commands: an older schema is named, not read as it is (review HK).
          await withReadDatabase(config, log, { schema: 'migrated' }, async (database) => {
            const rows = await readAlerts(database.pool, opts.status, limit);
            process.stdout.write(opts.json ? stringifyAlerts(rows) : formatAlerts(rows));
          });
        },
        { logToStderr: true },
      ),
    );

  alerts
    .command('retry')
    .description(
      'send now every alert not delivered: the failed ones (refused by the webhook) and the pending ones waiting for a later attempt (not the suppressed)',
    )
    .action(() =>
      command(async (config, log) => {
        const { deliverPendingAlerts } = await import('../alerts/delivery.js');
        const { requireWebhook } = await import('../alerts/commands.js');
        const { openDatabase } = await import('../db/connect.js');
        const { migrateLogged, migrateSynced } = await import('../db/migrate.js');
        const { requeueUndeliveredAlerts } = await import('../db/sql/requeue-undelivered-alerts.js');
        const { cancellableOn } = await import('../db/cancel-on-abort.js');
        const { ShutdownSignals } = await import('../worker/shutdown.js');
        // Without a webhook the failed alerts were made pending, none was sent, and the command exited 0 (review EC).
        // Before the database: a setting missing is exit code 2 whether or not the database answers.
        requireWebhook(config.alerts);
        // SIGINT/SIGTERM: the pass gives back the alerts it holds, due at once, as a run's does. Killed
        // outright, it left them claimed until their lease ran out (a batch's timeouts and a minute).
        const shutdown = new ShutdownSignals({
          log,
          timeoutMs: config.worker.shutdownTimeoutMs,
          stopping: 'the alerts not yet sent are given back, due at once',
        });
        const database = await openDatabase(config, log, { existing: true }).catch((err: unknown) => {
          shutdown.dispose();
          throw err;
        });
        shutdown.takeOverSignals();
        try {
          // Its migrations and the requeue cancelled by the signal, as a run's statements are: one
          // waiting for a lock (a report holding the outbox) held SIGTERM until SHUTDOWN_TIMEOUT ended
          // the process by force, exit code 1.
          const stoppedBefore = (err: unknown): never => {
            throwIfInterrupted(shutdown.signal, 'alerts retry interrupted before it made the alerts due: no alert was changed');
            throw err;
          };
          await migrateSynced(database.pool, { ...migrateLogged(log), signal: shutdown.signal }).catch(stoppedBefore);
          // Postgres refusing (a read-only login) is a database error, exit code 6, as for every command.
          // The pending alerts waiting for a later attempt too: made only the failed ones due, retry after a
          // webhook's 5xx was fixed sent nothing and exited 0, the alert due up to an hour later (review JB).
          const due = await requeueUndeliveredAlerts(cancellableOn(database.pool, shutdown.signal)).catch(rethrowAsSyncError).catch(stoppedBefore);
          const report = await deliverPendingAlerts({ on: database.pool, config: config.alerts, log, signal: shutdown.signal }).catch(rethrowAsSyncError);
          const madeDue = due.failed + due.waiting;
          log.info(
            { madeDue, requeued: due.failed, waiting: due.waiting, ...report },
            `alerts retry: ${madeDue} made due (${due.failed} failed, ${due.waiting} pending waiting for a later attempt), ${report.delivered} delivered`,
          );
          if (shutdown.signal.aborted) {
            throw new SyncError(
              'interrupted',
              'alerts retry interrupted: the alerts not yet sent are pending and due at once; the next run, worker pass or alerts retry sends them',
            );
          }
          // The pass logs a database error and returns (a run or the worker goes on): for this command it is
          // the failure, exit code 6, not a pass that delivered what it tried.
          if (report.stoppedBy !== undefined) throw new SyncError('database', `alert delivery stopped by a database error: ${report.stoppedBy}`);
          // As `alerts test`: exit code 1 when the pass did not deliver every alert it tried, so
          // `cpq-sync alerts retry || page-someone` tells a receiver still refusing from one that took them.
          if (report.failed + report.retrying > 0) {
            // A pass ends at the first alert the webhook cannot take now: the alerts after it are not counted, only said to wait.
            const why = [
              ...(report.failed > 0 ? [`${report.failed} refused by the webhook (failed)`] : []),
              ...(report.retrying > 0 ? ['the webhook could not take them now (they stay pending, sent by the next run or worker pass)'] : []),
            ];
            process.stderr.write(`cpq-sync: not every alert was delivered: ${why.join('; ')}; \`cpq-sync alerts list\` shows them\n`);
            process.exitCode = 1;
          }
        } finally {
          await database.close();
          shutdown.dispose();
        }
      }),
    );
  program
    .command('verify')
    .description(
      "prove completeness: each company's user count in CPQ now against the users the database holds (exit code 1 on any difference); --chain: the run seals; --file: an export file",
    )
    .option('--chain', 'recompute every run seal and name, per site, every run whose stored content or seal no longer matches (exit code 1)')
    .option('--file <file>', 'check an export file against its <file>.manifest.json (exit code 1 when it differs, 2 when it cannot be checked)')
    .option('--site <name...>', 'only these sites (default: every configured site)')
    .action((opts: { chain?: boolean; file?: string; site?: string[] }) =>
      command(
        async (config, log) => {
          if (opts.file !== undefined) {
            // A file is checked against its manifest alone: an option that would do nothing is refused rather than ignored.
            if (opts.chain || opts.site) throw new ConfigError('--file checks an export file against its manifest alone: --chain and --site do not apply');
            const { verifyFile } = await import('../output.js');
            const check = await verifyFile(opts.file);
            // Nothing to compare is no mismatch (exit code 1): an error, exit code 2, as for a bad command line.
            if (check.unchecked !== undefined) throw new SyncError('config', `cannot check ${opts.file}: ${check.unchecked}`);
            const about = ` (${check.manifest.rows} rows, SHA-256 ${check.manifest.sha256})`;
            // The manifest is what this command checks, so untrusted: its text is printable, never escape sequences.
            process.stdout.write(
              `${printable(check.problems.length === 0 ? `${opts.file}: matches its manifest${about}` : `${opts.file}: DIFFERS: ${check.problems.join('; ')}`)}\n`,
            );
            process.exitCode = check.problems.length === 0 ? 0 : 1;
            return;
          }
          const { countsExitCode, formatChain, formatCounts, verifyChain, verifySite } = await import('../sync/verify.js');
          let shutdown: ShutdownSignals | undefined;
          try {
            // Checked against the sites that ran only with --chain: without it --site names configured
            // sites to ask CPQ about, and selectSites refuses another, naming the configured ones. A
            // configured site that has not run has no seal: --chain refuses it rather than pass nothing.
            const sites = opts.chain ? opts.site : undefined;
            await withReadDatabase(config, log, { schema: 'migrated', sites }, async (database) => {
              if (opts.chain) {
                // SIGINT/SIGTERM cancels the hashes being computed, on every session, and ends their
                // transactions (exit code 130): killed outright, each session's statement ran on to its end.
                // Listening until the database is closed: a second signal then exits at once, the
                // embedded server stopped by the exit hook (with the signals taken over, nothing else would).
                const { ShutdownSignals } = await import('../worker/shutdown.js');
                const signals = (shutdown = new ShutdownSignals({
                  log,
                  timeoutMs: config.worker.shutdownTimeoutMs,
                  stopping: 'the seals being recomputed are cancelled, and nothing is reported',
                }));
                signals.takeOverSignals();
                const report = await verifyChain(database.pool, opts.site, signals.signal).catch((err: unknown) => {
                  throwIfInterrupted(signals.signal, 'verify --chain interrupted: no seal was reported');
                  return rethrowAsSyncError(err);
                });
                process.stdout.write(formatChain(report));
                process.exitCode = report.breaks.length === 0 ? 0 : 1;
                return;
              }
              let exitCode = 0;
              for (const site of selectSites(config, opts.site ?? [])) {
                const checks = await verifySite(site, database.pool, log).catch(rethrowAsSyncError);
                process.stdout.write(formatCounts(site.name, checks));
                exitCode = Math.max(exitCode, countsExitCode(checks));
              }
              process.exitCode = exitCode;
            });
          } finally {
            // Only once withReadDatabase has closed the database: see where the signals are taken over.
            shutdown?.dispose();
          }
        },
        { logToStderr: true },
      ),
    );

  program
    .command('forget')
    .description(
      "erase a deleted user's personal fields everywhere (current row, history, raw records, change log, alert outbox) and record who, when and why in cpq.erasures; refuses a user CPQ still has",
    )
    .addOption(new Option('--company <login>', "the user's company login (_host for the host company)").argParser(once).makeOptionMandatory())
    .addOption(new Option('--login <login>', "the user's login").argParser(once).makeOptionMandatory())
    .addOption(new Option('--reason <text>', 'why (a request or ticket reference), recorded').argParser(once).makeOptionMandatory())
    .addOption(new Option('--by <who>', 'who asks, recorded (default: the operating-system user)').argParser(once))
    .addOption(new Option('--site <name>', 'the site (default: the one configured)').argParser(once))
    .action((opts: { company: string; login: string; reason: string; by?: string; site?: string }) =>
      command(async (config, log) => {
        const site = opts.site ?? (config.sites.length <= 1 ? (config.sites[0]?.name ?? DEFAULT_SITE) : undefined);
        if (site === undefined)
          throw new ConfigError(`forget: several sites are configured; name one with --site (${config.sites.map((s) => s.name).join(', ')})`);
        const { openDatabase } = await import('../db/connect.js');
        const { migrateLogged, migrateSynced } = await import('../db/migrate.js');
        const { forgetUser } = await import('../sync/forget.js');
        const database = await openDatabase(config, log, { existing: true });
        try {
          await migrateSynced(database.pool, migrateLogged(log)).catch(rethrowAsSyncError);
          const requestedBy = opts.by ?? osUser();
          const erasure = await forgetUser(database.pool, { site, company: opts.company, login: opts.login, reason: opts.reason, requestedBy }, log);
          if (erasure.earlier) {
            const { erasedAt, requestedBy: by } = erasure.earlier;
            process.stderr.write(
              `cpq-sync: ${printable(`${opts.company}/${opts.login}`)} in site ${site} was forgotten already (erasure ${erasure.erasureId}, ${erasedAt}, asked by ${printable(by)}): nothing left to erase, nothing recorded\n`,
            );
            return;
          }
          log.info({ site, company: opts.company, login: opts.login, ...erasure }, 'user forgotten');
          const rows = Object.entries(erasure.rowsRedacted)
            .map(([table, n]) => `${n} ${table}`)
            .join(', ');
          process.stdout.write(`forgot ${printable(`${opts.company}/${opts.login}`)} in site ${site} (erasure ${erasure.erasureId}): redacted ${rows}\n`);
        } finally {
          await database.close();
        }
      }),
    );
}
