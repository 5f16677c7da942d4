import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../config.js';
import { instantArgument } from '../date-time.js';
import { rethrowAsSyncError } from '../errors.js';
import type { ChangesExport, ExportFormat } from '../history/export.js';
import type { Logger } from '../logger.js';
import { command, withReadDatabase } from './command.js';

/** The commands that read what was synced: the runs (status), the change log (changes) and snapshots (snapshot). They never migrate. */
export function registerReadCommands(program: Command): void {
  program
    .command('status')
    .description(
      'per site, the last runs (of a run in progress, how far it has come) and the cursor per stream; exit code 1 when the last run of a site failed or was abandoned (it ended without recording how), or when a site is stale: no success within SYNC_STALE_AFTER (for alerts)',
    )
    .option('--json', 'JSON for scripts instead of tables')
    .addOption(new Option('--limit <n>', 'how many runs to list per site').default('10'))
    .option('--site <name...>', 'only these sites, configured or that have run (default: the configured sites, else every site that has run)')
    .action((opts: { json?: boolean; limit: string; site?: string[] }) =>
      command(
        async (config, log) => {
          const { formatStatus, readStatus, statusExitCode, stringifyStatus } = await import('../worker/status.js');
          const limit = Number(opts.limit);
          if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > 1000)
            throw new ConfigError(`--limit must be a whole number from 1 to 1000, got "${opts.limit}"`);
          // 'synced': a database without the cpq schema is not "no run yet" (a worker creates it at
          // start), and one of the release before is still read (see withReadDatabase).
          // --site may name a configured site that has not run yet: shown as plain status shows it.
          await withReadDatabase(config, log, { schema: 'synced', sites: opts.site, configuredSites: true }, async (database) => {
            // Without --site: the configured sites (a removed site's old failure no longer counts), else every site that ran.
            const sites = opts.site ?? config.sites.map((s) => s.name);
            const report = await readStatus(database.pool, {
              limit,
              sites,
              staleAfterMs: config.worker.staleAfterMs,
              configured: config.sites.map((s) => s.name),
            }).catch(rethrowAsSyncError);
            process.stdout.write(opts.json ? stringifyStatus(report) : formatStatus(report));
            process.exitCode = statusExitCode(report);
          });
        },
        { logToStderr: true },
      ),
    );
  program
    .command('changes')
    .description('stream the change log (for the warehouse) in commit order; the next watermark goes to stderr as "watermark: <n>"')
    .option('--after <watermark>', 'changes of runs that committed after this watermark (0 = everything): exactly once, poll after poll')
    .option(
      '--since <run-id|time>',
      'changes of runs after this run (a higher id, or committed after it), or that committed at or after this ISO date-time (approximate)',
    )
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).default('jsonl'))
    .option('--site <name...>', 'changes of these sites only (default: every site)')
    .addOption(outOption('write to this file (with <file>.manifest.json: rows, watermark, SHA-256) instead of standard output'))
    .action((opts: { after?: string; since?: string; format: ExportFormat; site?: string[]; out?: string }) =>
      command(
        async (config, log) => {
          const { exportChanges, parseAfter, parseSince } = await import('../history/export.js');
          // Not progress/index.js: what run's summary needs (its query, its table) stays unloaded.
          const { exportProgress } = await import('../progress/export-display.js');
          const { writeOutput } = await import('../output.js');
          if ((opts.after === undefined) === (opts.since === undefined))
            throw new ConfigError('changes needs exactly one of --after <watermark> and --since <run-id|time>');
          const from = opts.after !== undefined ? parseAfter(opts.after) : parseSince(opts.since!);
          // A configured site that has not run yet is no typo: it has no changes yet, and a consumer may
          // begin polling it before its first run (the watermark is the database's).
          await withReadDatabase(config, log, { schema: 'migrated', sites: opts.site, configuredSites: true }, async (database) => {
            // To a file from a terminal: a line redrawn in place (rows, rate, time left), then a summary.
            const terminal = exportProgress(config, opts.out, process.stderr);
            let written: ChangesExport;
            try {
              written = await writeOutput(
                opts.out,
                (out) => exportChanges(database.pool, from, opts.format, out, opts.site ?? [], terminal?.display),
                (r) => ({
                  kind: 'changes',
                  format: opts.format,
                  rows: r.changes,
                  from: opts.after !== undefined ? { after: opts.after } : { since: opts.since },
                  watermark: r.watermark,
                }),
              );
              await terminal?.display.finish();
            } finally {
              terminal?.display.stop();
            }
            const { changes, watermark } = written;
            log.debug({ changes, watermark }, 'change log written');
            // Last, and only once every row is written: a consumer stores it with the rows it loaded.
            process.stderr.write(`watermark: ${watermark}\n`);
          });
        },
        { logToStderr: true },
      ),
    );
  program
    .command('snapshot')
    .description(
      'write a compliance snapshot: every user present at a time (not those deleted by then) with groups and permissions (--admin-rights: every admin right, since when)',
    )
    .option('--as-of <time>', 'ISO date-time (default: now)')
    .addOption(new Option('--format <format>', 'output format').choices(['csv', 'jsonl']).default('csv'))
    .addOption(outOption('write to this file (with <file>.manifest.json: rows, run, SHA-256) instead of standard output'))
    .option('--with-raw', "add a raw column: each user's record as CPQ sent it, custom fields included")
    .addOption(
      new Option(
        '--admin-rights',
        'instead of users: every admin right held then (each admin flag, each Administrator-type group), one row per user and right, with since when',
      ).conflicts('withRaw'),
    )
    .option('--site <name...>', 'users of these sites only (default: every site)')
    .action((opts: { asOf?: string; format: ExportFormat; out?: string; withRaw?: boolean; adminRights?: boolean; site?: string[] }) =>
      command(
        async (config, log) => {
          const { exportSnapshot, sitesWithLiveRuns } = await import('../history/export.js');
          // Not progress/index.js: what run's summary needs (its query, its table) stays unloaded.
          const { exportProgress } = await import('../progress/export-display.js');
          const { writeOutput } = await import('../output.js');
          const { readDatabaseNow } = await import('../db/sql/read-database-now.js');
          const given = opts.asOf === undefined ? undefined : instantArgument(opts.asOf);
          if (opts.asOf !== undefined && given === undefined) {
            throw new ConfigError(`--as-of must be an ISO date-time such as 2025-03-03T00:00:00Z, to the millisecond at most, got "${opts.asOf}"`);
          }
          // A configured site that has not run yet is no typo: exportSnapshot refuses it as any site
          // without a successful run by --as-of, saying so (exit code 2).
          await withReadDatabase(config, log, { schema: 'migrated', sites: opts.site, configuredSites: true }, async (database) => {
            // Now by the database's clock, which dates the runs: by this machine's, one behind
            // would snapshot an older state, or none.
            const now = await readDatabaseNow(database.pool).catch(rethrowAsSyncError);
            if (given !== undefined && given > now) {
              throw new ConfigError(
                `--as-of ${given.toISOString()} is after the database's now (${now.toISOString()}): a snapshot of a time not yet past would change as runs commit; leave --as-of out for now`,
              );
            }
            const asOf = given ?? now;
            // A live run's changes may take effect before asOf once committed: named below (sitesWithLiveRuns).
            const locked = await sitesWithLiveRuns(database.pool, asOf, opts.site ?? []).catch(rethrowAsSyncError);
            const warnInProgress = (inProgress: { site: string; id: string; started_at: Date }[], on: Logger) => {
              for (const run of inProgress.filter((r) => locked.has(r.site))) {
                on.warn(
                  { site: run.site, runId: run.id, startedAt: run.started_at.toISOString() },
                  `run ${run.id} of site ${run.site}, started at ${run.started_at.toISOString()}, is in progress: once committed, its changes take effect from its first write, which may be before this snapshot's time (not known until it commits); this snapshot shows the state without them`,
                );
              }
            };
            const adminRights = opts.adminRights === true;
            // To a file from a terminal: a line redrawn in place (rows, rate), then a summary.
            const terminal = exportProgress(config, opts.out, process.stderr);
            let written: Awaited<ReturnType<typeof exportSnapshot>>;
            try {
              written = await writeOutput(
                opts.out,
                (out) =>
                  exportSnapshot(database.pool, asOf, opts.format, out, {
                    withRaw: opts.withRaw === true,
                    adminRights,
                    sites: opts.site ?? [],
                    // Logged while the line shows: printed above it.
                    onRunsInProgress: (inProgress) => warnInProgress(inProgress, terminal?.log ?? log),
                    ...(terminal ? { progress: terminal.display } : {}),
                  }),
                (r) => ({
                  kind: 'snapshot',
                  format: opts.format,
                  rows: r.rows,
                  ...(adminRights ? { of: 'admin rights' } : {}),
                  asOf: asOf.toISOString(),
                  runs: r.runs,
                  ...(r.later.length > 0 ? { sitesLeftOut: r.later.map((l) => l.site) } : {}),
                }),
              );
              await terminal?.display.finish();
            } finally {
              terminal?.display.stop();
            }
            const { runs, rows, later } = written;
            // Left out, not "none of its users": said where the reader of the file looks (its manifest) and here.
            for (const { site, first } of later) {
              log.warn(
                { site, firstRunEffectiveAt: first?.toISOString() ?? null },
                `site ${site} had no successful run by ${asOf.toISOString()} (${first === null ? 'none yet' : `its first took effect at ${first.toISOString()}`}): this snapshot holds nothing of it`,
              );
            }
            log.info({ asOf: asOf.toISOString(), runs, [adminRights ? 'adminRights' : 'users']: rows, out: opts.out ?? 'stdout' }, 'snapshot written');
          });
        },
        { logToStderr: opts.out === undefined },
      ),
    );
}

/**
 * --out FILE. Empty names no file, and `-` (standard output to many tools) would make a file
 * named "-": both refused as a mistyped command line (exit code 2); standard output is --out left out.
 */
function outOption(description: string): Option {
  return new Option('--out <file>', description).argParser((file: string) => {
    if (file === '' || file === '-') throw new InvalidArgumentError(`"${file}" names no file; leave out --out to write to standard output`);
    return file;
  });
}
