import type pg from 'pg';
import { ConfigError, loadConfig, withLikelyTypos, type AppConfig } from '../config.js';
import type { Database } from '../db/connect.js';
import { withDotenvWarnings } from '../dotenv-file.js';
import { withHint } from '../error-hints.js';
import { EXIT_CODES, SyncError, rethrowAsSyncError, oneLine } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { signalAsCommandEnds } from '../worker/shutdown.js';

/** `work`'s value, or undefined once a signal comes as the command ends (signalAsCommandEnds). */
function unlessSignalled<T>(work: Promise<T>): Promise<T | undefined> {
  if (signalAsCommandEnds.aborted) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const stop = () => resolve(undefined);
    signalAsCommandEnds.addEventListener('abort', stop, { once: true });
    work.then(resolve, reject).finally(() => signalAsCommandEnds.removeEventListener('abort', stop));
  });
}

function exitCodeOf(err: unknown): number {
  if (err instanceof ConfigError) return EXIT_CODES.config;
  if (err instanceof SyncError) return EXIT_CODES[err.kind];
  return EXIT_CODES.internal;
}

/** Runs a command with configuration and logger; failures end the process with the documented exit code and one line on stderr. */
export async function command(
  work: (config: AppConfig, log: Logger) => Promise<void>,
  options: { logToStderr?: boolean; env?: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv } = {},
): Promise<void> {
  let log: Logger | undefined;
  let config: AppConfig | undefined;
  try {
    config = withDotenvWarnings(loadConfig(options.env ? options.env(process.env) : process.env));
    // Commands whose product is standard output keep their logs out of it.
    log = createLogger({ level: config.logLevel, format: config.logFormat, ...(options.logToStderr ? { destination: process.stderr } : {}) });
    for (const line of [...config.unknownVariables, ...config.warnings]) log.warn(line);
    await work(config, log);
  } catch (err) {
    // The hint (the fix for the failures people meet first) is for the operator: the run record keeps the bare message.
    // Not waited for past a signal: its probe of CPQ may take the request timeout, and the signal asked to stop.
    const hint = await unlessSignalled(import('../check/failure-hint.js').then(({ failureHint }) => failureHint(err, config, log))).catch(() => undefined);
    // A configuration error may come of a misspelt variable: named with it, in the same line.
    const text = err instanceof Error ? err.message : String(err);
    const message = oneLine(withHint(err instanceof ConfigError ? withLikelyTypos(text, process.env) : text, hint));
    process.stderr.write(`cpq-sync: ${message}\n`);
    if (!(err instanceof ConfigError) && !(err instanceof SyncError)) log?.debug({ stack: err instanceof Error ? err.stack : String(err) }, 'internal error');
    process.exitCode = exitCodeOf(err);
  }
  // A signal as the command ended: what is still pending (a hint's request left unanswered) would
  // hold the process until SHUTDOWN_TIMEOUT ended it by force, exit code 1. Its line is written.
  if (signalAsCommandEnds.aborted) process.exit(process.exitCode ?? 0);
}

/**
 * --site names no run of this database knows, nor (`configured`) a configured site: a typo is an
 * error (exit code 2), not an empty report.
 */
export async function requireKnownSites(pool: pg.Pool, names: readonly string[] | undefined, configured: readonly string[] = []): Promise<void> {
  if (!names?.length) return;
  const { readSiteNames } = await import('../db/sql/read-site-names.js');
  const ran = await readSiteNames(pool).catch(rethrowAsSyncError);
  const known = [...ran, ...configured.filter((n) => !ran.includes(n))].sort();
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) {
    const what = configured.length > 0 ? 'is configured or has run against this database' : 'has run against this database';
    throw new ConfigError(`--site: no site named ${unknown.map((n) => `"${n}"`).join(', ')} ${what} (sites: ${known.join(', ') || 'none yet'})`);
  }
}

/**
 * Opens the database a read-only command reads (status, changes, snapshot, verify, alerts list),
 * checks its schema, then `sites` (--site) by requireKnownSites (with `configuredSites`, a site of
 * the configuration that has not run yet is known too), runs `work` and closes the
 * database however `work` ends. The database must exist (never made, never migrated: `cpq_reader`
 * can run these commands); its modules load here, not at start-up. `schema`:
 * - 'migrated' (what reads this release's tables and columns: the exports, verify, alerts list):
 *   every migration of this release applied, else one line saying to run `cpq-sync migrate`
 *   (requireMigrated); a newer schema is read as it is.
 * - 'synced' (status): any database a run has synced into, whether or not this release's
 *   migrations are applied (requireSyncedInto): a newer release's status reads a database of the
 *   release before, whose workers are not upgraded yet. Only a database without what runs make is
 *   refused: `status || alert` pointed at another database must alert, not report no runs.
 * Either check's failure of the database (its session lost as it reads the schema, or as it reads
 * the role's rights to say why the schema is not there) is a database failure, exit code 6: both
 * checks class their own reads so (readAppliedMigrationsOrFail, missingSchemaError).
 */
export async function withReadDatabase<T>(
  config: AppConfig,
  log: Logger,
  { schema, sites, configuredSites = false }: { schema: 'synced' | 'migrated'; sites?: readonly string[] | undefined; configuredSites?: boolean },
  work: (database: Database) => Promise<T>,
): Promise<T> {
  const { openDatabase } = await import('../db/connect.js');
  const { requireMigrated, requireSyncedInto } = await import('../db/migrate.js');
  const database = await openDatabase(config, log, { existing: true });
  try {
    if (schema === 'synced') await requireSyncedInto(database.pool, 'read');
    else await requireMigrated(database.pool);
    await requireKnownSites(database.pool, sites, configuredSites ? config.sites.map((s) => s.name) : []);
    return await work(database);
  } finally {
    await database.close();
  }
}
