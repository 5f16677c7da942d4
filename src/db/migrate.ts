import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CompiledQuery, Migrator, sql, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely';
import { LOCK_NOT_AVAILABLE, SyncError, errorCode, errorMessage, isSignalsDoing, oneLine, rethrowAsSyncError } from '../errors.js';
import type { Logger } from '../logger.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { createDb, type Db } from './database.js';
import { commandsThat, type SchemaAccess } from './command-access.js';
import type { Queryable } from './compiled-query.js';
import { cancellableOn, cancellablePool } from './cancel-on-abort.js';
import { encodingProblem, readDatabaseEncoding } from './sql/read-database-encoding.js';
import { readAppliedMigrations } from './sql/read-applied-migrations.js';
import { endHoldingSession, prepareHoldingSession } from './sql/holding-session.js';
import { readSchemaRights, readSchemaUsage, type SchemaRights, type SchemaUsage } from './sql/read-schema-rights.js';
import { readWriteAccess, writeAccessProblem } from './sql/read-only-database.js';
import { describeCpqLockHolders, readCpqLockHolders } from './sql/read-cpq-lock-holders.js';
import { outsiderHolder, readAdvisoryLockHolder } from './sql/read-sync-lock-holder.js';

/** migrations/ at the package root, whether running from src/ (tests) or dist/. */
export const MIGRATIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

/** The migration files among `files` (a folder's names), in the order they apply: `0001_name.sql`. */
export function migrationFiles(files: readonly string[]): string[] {
  return files.filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort();
}

/**
 * Migrations are plain SQL files (`NNNN_name.sql`), readable by the DBAs who review them.
 * Kysely's Migrator applies them in name order, in a transaction, under its own lock, and
 * records them in cpq.kysely_migration.
 */
class SqlFileMigrationProvider implements MigrationProvider {
  /**
   * The last migration whose SQL failed, and Postgres's error: when the failure lost the connection
   * (its session ended, the server restarted), Kysely's rollback and lock release on it fail in
   * turn, and what it returns is only "Postgres connection has been discarded".
   */
  private failure: { name: string; error: unknown } | undefined;

  constructor(private readonly dir: string) {}

  /** The failure recorded since the last call (see `failure`), forgotten. */
  takeFailure(): { name: string; error: unknown } | undefined {
    const failure = this.failure;
    this.failure = undefined;
    return failure;
  }

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = migrationFiles(await readdir(this.dir));
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const text = await readFile(join(this.dir, file), 'utf8');
      const name = file.replace(/\.sql$/, '');
      migrations[name] = {
        up: async (db) => {
          try {
            await sql.raw(text).execute(db);
          } catch (error) {
            this.failure = { name, error };
            throw error;
          }
        },
      };
    }
    return migrations;
  }
}

/** Kysely's migration lock (PostgresAdapter): one advisory key, which pg_locks shows split in two. */
const KYSELY_MIGRATION_LOCK = 3853314791062309107n;
const KYSELY_MIGRATION_LOCK_KEYS = { classid: Number(KYSELY_MIGRATION_LOCK >> 32n), objid: Number(KYSELY_MIGRATION_LOCK & 0xffffffffn) };

/**
 * Fails when Kysely's migration lock is held by a session that cannot write the cpq tables: any
 * role may take an advisory lock, and Kysely would wait an hour for it, then fail, run after run,
 * with no run record. A holder that can write is another worker migrating: waited for.
 */
async function refuseMigrationLockHeldByReader(db: Db): Promise<void> {
  const holder = await readAdvisoryLockHolder(queryableOf(db), {
    ...KYSELY_MIGRATION_LOCK_KEYS,
    objsubid: 1,
  });
  if (holder?.canWrite === false) {
    const { who, end } = outsiderHolder(holder, 'migration');
    throw new SyncError('database', `the migration lock is held by ${who}: this release cannot migrate until it lets go (${end})`);
  }
}

/** `db` as a Queryable, for the database operations of ./sql that take one. */
function queryableOf(db: Db): Queryable {
  return { query: async (text, values = []) => ({ rows: (await db.executeQuery(CompiledQuery.raw(text, values))).rows }) };
}

/**
 * The one line for a database that records migrations this release lacks and that sort before its
 * last (migrate's error, check's failure), or undefined. No newer release wrote them (this
 * release's migrations are numbered 0001 to its last without a gap, so a newer release's, numbered
 * after, sort after it), but a build whose migrations differ (one renamed or withdrawn before
 * release). A build between releases that lacked one of this release's (0031 when 0032 came
 * first) left nothing foreign: migrate applies what it lacks (allowUnorderedMigrations). Taken for a newer release's, the
 * database was never migrated again while every run failed on what the later migrations add.
 */
export function foreignMigrationsProblem(applied: readonly string[], known: readonly string[]): string | undefined {
  const last = [...known].sort().at(-1);
  const foreign = last === undefined ? [] : applied.filter((name) => !known.includes(name) && name < last);
  if (foreign.length === 0) return undefined;
  const s = foreign.length === 1 ? '' : 's';
  return `the database records migration${s} ${foreign.join(', ')}, which this release does not have and which sort${foreign.length === 1 ? 's' : ''} before its last (${last ?? ''}): not a newer release's, but another build's (a migration renamed or withdrawn before release), so this release cannot tell what the schema holds`;
}

/** What to do about it. */
export const FOREIGN_MIGRATIONS_FIX = 'restore the database from a backup taken before that build migrated it, or sync into a new database';

/** The log line for a database a newer release has migrated. */
export function logAhead(log: Logger): (unknown: string[]) => void {
  return (unknown) => log.warn({ migrations: unknown }, 'the database was migrated by a newer release; continuing without migrating');
}

/** What every command that migrates tells its log: a database ahead of this release, a migration waiting for locks. */
export function migrateLogged(log: Logger): MigrateOptions {
  return {
    onAhead: logAhead(log),
    onLockWait: (holders, next) =>
      log.warn(
        { holders },
        next === 'retry'
          ? 'the migrations wait for the sessions holding the cpq tables (holders); trying again, with no reader held behind them meanwhile'
          : 'the migrations wait for the sessions holding the cpq tables (holders); tried in short turns for 10 minutes, they now wait as long as it takes, and readers of those tables queue behind them',
      ),
  };
}

/** Postgres's insufficient_privilege: a role refused a CREATE, or the use of schema cpq. */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * Schema cpq, made before anything can lock: IF NOT EXISTS is no guard against a session making
 * it at the same moment (two sites' first runs), which fails one of them with a unique violation
 * on pg_namespace (or duplicate_schema): the schema then exists, as asked. Looked up first:
 * CREATE SCHEMA IF NOT EXISTS needs the database's CREATE privilege even when the schema exists,
 * which a role given a schema a DBA made for it (the warehouse's usual policy) does not have.
 */
async function createSchema(db: Db): Promise<void> {
  const { rows } = await sql<{ exists: boolean }>`SELECT to_regnamespace('cpq') IS NOT NULL AS exists`.execute(db);
  if (rows[0]?.exists === true) return;
  try {
    await sql`CREATE SCHEMA IF NOT EXISTS cpq`.execute(db);
  } catch (err) {
    // A role without the database's CREATE: `permission denied for database …` alone did not say
    // what to do, and `cpq-sync migrate` took it for an internal error (exit code 1). Said as check says it.
    if (errorCode(err) === INSUFFICIENT_PRIVILEGE) {
      const { role, database } = await readSchemaRights(queryableOf(db));
      throw new SyncError('database', `${noSchemaRightsProblem(role, database)}: ${noSchemaRightsFix(role, database)}`);
    }
    if (errorCode(err) !== '23505' && errorCode(err) !== '42P06') throw err;
  }
}

/** No schema cpq, and `role` may not create one: what `check` and a run that would create it say. */
export function noSchemaRightsProblem(role: string, database: string): string {
  return `no cpq schema, and role ${role} may not create one in database ${database}`;
}

/**
 * A role or database name as a statement of the fixes below must spell it: quoted unless plain
 * lower case, or the DBA who pastes `GRANT cpq_reader TO IT-Report` (a name with a capital, a `-`,
 * an `@` as cloud IAM logins have) gets a syntax error or another role (review IT).
 */
const sqlName = (name: string) => (/^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`);

/** Schema cpq there, and `role` may not create its tables in it: what `check` and a run that would migrate it say. */
export function noCreateInSchemaProblem(role: string): string {
  return `role ${role} may not create tables in schema cpq`;
}

/** What to do about noCreateInSchemaProblem. */
export function noCreateInSchemaFix(role: string): string {
  return `run cpq-sync as the role that owns schema cpq, or have a DBA run GRANT CREATE, USAGE ON SCHEMA cpq TO ${sqlName(role)}`;
}

/**
 * Schema cpq migrated, and `rights`' role may not write its tables (a reporting login, cpq_reader
 * alone): `check`'s failure, and what every command that writes says before it starts. Without it
 * run, forget and alerts retry failed at their first write with Postgres's bare `permission
 * denied`, and schedule started, answered /readyz ready, then skipped every tick. undefined when it
 * may write, or when there are no tables yet (the migrations make them).
 */
export function noWriteRightsProblem(rights: SchemaRights): { problem: string; fix: string } | undefined {
  if (rights.mayWriteUsers !== false) return undefined;
  return {
    problem: `role ${rights.role} may not write the cpq tables (a reporting role?)`,
    fix: 'run cpq-sync as the role that owns schema cpq (the one that migrated it)',
  };
}

/** What a DBA does about noSchemaRightsProblem. */
export function noSchemaRightsFix(role: string, database: string): string {
  return `have a DBA run CREATE SCHEMA cpq AUTHORIZATION ${sqlName(role)} (or GRANT CREATE ON DATABASE ${sqlName(database)} TO ${sqlName(role)})`;
}

/** Which commands a line about schema cpq's rights speaks to: those that only read, those that write, or both (check). */
export type SchemaCommands = Exclude<SchemaAccess, 'none'>;

/**
 * Schema cpq there, and `usage`'s role may not use it (no USAGE): a reporting login not yet given
 * cpq_reader, or DATABASE_URL switched to another role after migrating as a superuser. Every
 * command said Postgres's bare `permission denied for schema cpq`, and check failed three steps
 * with it, none saying what to do.
 */
export function noSchemaUsageProblem(usage: SchemaUsage): string {
  return `role ${usage.role} may not use schema cpq (no USAGE on it; its owner is ${usage.owner})`;
}

/** What to do about noSchemaUsageProblem, for `commands` (README "Read-only access"). */
export function noSchemaUsageFix(usage: SchemaUsage, commands: SchemaCommands): string {
  const { role, owner } = usage;
  // A member of cpq_reader without USAGE: most likely a DBA made cpq_reader after this database was
  // migrated (the migrating role could not create roles), and its grants were never given here.
  const read = usage.isReader
    ? `as ${owner}, run SELECT cpq.grant_reader_access() (cpq_reader, which ${role} has, was given nothing in this database)`
    : usage.readerExists
      ? `have a DBA run GRANT cpq_reader TO ${sqlName(role)}`
      : `have a DBA run CREATE ROLE cpq_reader NOLOGIN, then, as ${owner}, SELECT cpq.grant_reader_access(), then GRANT cpq_reader TO ${sqlName(role)}`;
  const write = `run cpq-sync as the role that owns schema cpq (${owner}, the one that migrated it); cpq_reader would let ${role} read, not write`;
  if (commands === 'read') return read;
  if (commands === 'write') return write;
  const writing = commandsThat('write');
  const writers = `${writing.slice(0, -1).join(', ')} and ${writing.at(-1)}`;
  return `for the commands that only read (${commandsThat('read').join(', ')}), ${read}; for ${writers}, ${write}`;
}

/**
 * The SyncError (exit code 6) of a role without USAGE on schema cpq, told to `commands`, when that
 * is why `err` (insufficient_privilege) was refused; undefined otherwise (a function's EXECUTE
 * revoked, say), and when the catalogs cannot be read either.
 */
export async function noSchemaUsageError(on: Queryable, err: unknown, commands: SchemaCommands): Promise<SyncError | undefined> {
  if (errorCode(err) !== INSUFFICIENT_PRIVILEGE) return undefined;
  const usage = await readSchemaUsage(on).catch(() => undefined);
  if (usage === undefined || usage.mayUse) return undefined;
  return new SyncError('database', `${noSchemaUsageProblem(usage)}: ${noSchemaUsageFix(usage, commands)}`);
}

/** readAppliedMigrations, a role without USAGE on schema cpq told what to do (noSchemaUsageError). */
async function readAppliedMigrationsFor(on: Queryable, commands: SchemaCommands): Promise<string[] | null> {
  try {
    return await readAppliedMigrations(on);
  } catch (err) {
    throw (await noSchemaUsageError(on, err, commands)) ?? err;
  }
}

export interface MigrateOptions {
  dir?: string;
  /** Told when the database is ahead of this release and migrating was skipped. */
  onAhead?: (unknown: string[]) => void;
  /**
   * Told, naming them, when sessions held the locks the migration asked for longer than lockWaitMs:
   * it tries again, in a short turn (`retry`) or, past patienceMs, waiting as long as it takes (`queue`).
   */
  onLockWait?: (holders: string, next: 'retry' | 'queue') => void;
  /** How long one attempt waits for a lock (MIGRATION_LOCK_WAIT_MS). */
  lockWaitMs?: number;
  /** How long it tries in short turns before it waits without a bound (MIGRATION_PATIENCE_MS). */
  patienceMs?: number;
  /** Cuts short the wait between attempts (see migrateUntilAborted). */
  signal?: AbortSignal;
}

/**
 * How long an attempt at the migrations waits for a lock: every reader of the table it asks for
 * waits behind it that long at most. Then it waits 1 s, 2 s, 4 s, … up to
 * MIGRATION_RETRY_MAX_MS between attempts, with nothing queued.
 */
export const MIGRATION_LOCK_WAIT_MS = 3000;
const MIGRATION_RETRY_MAX_MS = 60_000;

/**
 * How long the migrations try in short turns before an attempt waits for its locks without a
 * bound, queued as they always were: short turns never get a lock that some session always holds
 * (the runs of several sites by an older release's workers in a rolling upgrade, one starting
 * before the last ends), and every worker of this release waits on the migrations. Readers then
 * queue behind the request again, only after this long.
 */
export const MIGRATION_PATIENCE_MS = 10 * 60_000;

/**
 * Postgres's message for a migration's failure, with its DETAIL when that names the objects in the
 * way: a view, materialized view or rule a reporting team or DBA built on a cpq table or view
 * (dependent_objects_still_exist; feature_not_supported, as for a column type a view uses). The
 * message alone named neither. Other details are left out: a constraint's names the key values,
 * users' logins among them.
 */
function migrationErrorMessage(error: unknown): string {
  const detail = (error as { detail?: unknown } | null | undefined)?.detail;
  const code = errorCode(error);
  if (typeof detail !== 'string' || detail === '' || (code !== '2BP01' && code !== '0A000')) return errorMessage(error);
  return `${errorMessage(error)} (${detail.split('\n').join('; ')})`;
}

export async function migrate(db: Db, options: MigrateOptions = {}): Promise<string[]> {
  // Before anything is written: every run migrates first, so none writes into such a database.
  const problem = encodingProblem(await readDatabaseEncoding(db));
  if (problem !== undefined) throw new SyncError('database', problem);
  const readOnly = writeAccessProblem(await readWriteAccess(db));
  if (readOnly !== undefined) throw new SyncError('database', `${readOnly.problem}: ${readOnly.fix}`);
  await createSchema(db);
  const provider = new SqlFileMigrationProvider(options.dir ?? MIGRATIONS_DIR);
  // Migrations only ever add, so an older release keeps working on a newer schema; Kysely would
  // refuse outright ("corrupted migrations"), stopping old workers during a rolling deploy.
  const known = Object.keys(await provider.getMigrations());
  // None when the database has no migration table yet.
  const applied = (await readAppliedMigrationsFor(queryableOf(db), 'write')) ?? [];
  const foreign = foreignMigrationsProblem(applied, known);
  if (foreign !== undefined) throw new SyncError('database', `${foreign}: ${FOREIGN_MIGRATIONS_FIX}`);
  // Every command that writes migrates first: a role that may not write the tables is told so
  // here, before the returns below (nothing to apply, a newer schema) let it start.
  const noWrite = noWriteRightsProblem(await readSchemaRights(queryableOf(db)));
  if (noWrite !== undefined) throw new SyncError('database', `${noWrite.problem}: ${noWrite.fix}`);
  const ahead = applied.filter((name) => !known.includes(name));
  if (ahead.length > 0) {
    options.onAhead?.(ahead);
    return [];
  }
  // Nothing to apply (every run but the first after an upgrade): Kysely's migration lock is not
  // taken. It is an advisory lock with a fixed key, which any role may hold (cpq_reader too), and
  // a run waiting for it would wait up to an hour before its run record is even written.
  if (known.every((name) => applied.includes(name))) return [];
  await refuseMigrationLockHeldByReader(db);
  const lockWaitMs = options.lockWaitMs ?? MIGRATION_LOCK_WAIT_MS;
  const queueFrom = Date.now() + (options.patienceMs ?? MIGRATION_PATIENCE_MS);
  for (let retryMs = 1000; ; retryMs = Math.min(retryMs * 2, MIGRATION_RETRY_MAX_MS)) {
    // lock_timeout 0 once patience ran out: this attempt waits as long as it takes.
    const outcome = await migrateOnce(db, provider, Date.now() < queueFrom ? lockWaitMs : 0, options.signal);
    const failure = provider.takeFailure();
    const error = failure?.error ?? outcome.error;
    if (errorCode(error) === LOCK_NOT_AVAILABLE) {
      // Rolled back whole: the readers queued behind its lock requests go on, and it tries again.
      const holders = await readCpqLockHolders(queryableOf(db), KYSELY_MIGRATION_LOCK_KEYS).then(describeCpqLockHolders, errorMessage);
      const wait = Math.min(retryMs, Math.max(0, queueFrom - Date.now()));
      options.onLockWait?.(holders, Date.now() + wait < queueFrom ? 'retry' : 'queue');
      // Cut short by a signal: the next attempt's first statement is then refused (cancelOnAbort).
      await sleep(wait, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
      continue;
    }
    if (outcome.error) {
      // Cancelled or refused by the signal: passed on as it is, the signal's doing (isSignalsDoing).
      if (isSignalsDoing(error, options.signal)) throw error;
      const failed = failure?.name ?? outcome.results?.find((r) => r.status === 'Error')?.migrationName;
      // A schema a DBA made that this role may use but not create tables in: what to do, as check says it.
      const rights = errorCode(error) === INSUFFICIENT_PRIVILEGE ? await readSchemaRights(queryableOf(db)).catch(() => undefined) : undefined;
      const fix = rights?.mayCreateInSchema === false ? `; ${noCreateInSchemaProblem(rights.role)}: ${noCreateInSchemaFix(rights.role)}` : '';
      // The pending migrations are applied in one transaction: all or none.
      throw new SyncError(
        'database',
        `${failed === undefined ? 'the migrations' : `migration ${failed}`} failed: ${oneLine(migrationErrorMessage(error))}; rolled back: no migration of this release was applied${fix}`,
      );
    }
    return (outcome.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }
}

/**
 * One attempt at the pending migrations, in Kysely's one transaction, on a connection of its own
 * whose lock requests wait at most `lockWaitMs` (0: as long as it takes). Its DDL asks for ACCESS EXCLUSIVE locks, and while
 * such a request waits every later reader of that table or view queues behind it: waited for
 * without a bound, behind a report's open transaction (a REPEATABLE READ session, a pg_dump) or a
 * run in progress, it held every reporting query of the table for as long as that lasted. So it
 * gives up soon, rolled back whole, and migrate tries again: a migration still waits for the runs
 * in progress to commit, as long as they take, but in short turns.
 */
async function migrateOnce(db: Db, provider: MigrationProvider, lockWaitMs: number, signal: AbortSignal | undefined): Promise<MigrationResultSet> {
  return db.connection().execute(async (connection) => {
    // A role's or database's statement_timeout cancelled the wait for the runs in progress, failing
    // the migration and every run after it (review DE); and a migration killed while its request
    // waited kept its session, and the request, until the lock came (the connection check).
    await prepareHoldingSession(queryableOf(connection));
    await sql.raw(`SET lock_timeout = ${Math.round(lockWaitMs)}`).execute(connection);
    // allowUnorderedMigrations: three times a migration was committed after one named later (0009
    // before 0008, 0011 before 0010, 0032 before 0031), and a database migrated by a build between
    // lacks the earlier-named one. Kysely refused it ("corrupted migrations"), so that database
    // could never be upgraded. Each of those pairs touches different objects (0008 groups, 0009
    // sync_runs' commit order; 0010 sites on the existing tables, 0011 alert_outbox with its own
    // site default; 0031 sync_runs' progress, 0032 run_seals' lines), so applying the earlier-named
    // one after makes the same schema (test/migrations.test.ts); pending ones still apply in name order.
    const outcome = await new Migrator({ db: connection, provider, migrationTableSchema: 'cpq', allowUnorderedMigrations: true }).migrateToLatest();
    try {
      await sql`RESET lock_timeout`.execute(connection);
      await endHoldingSession(queryableOf(connection));
    } catch (err) {
      // A connection the migration lost (its session ended, the server restarted) cannot be put
      // back, and Kysely discards it; its own failure is the one to tell. Refused by a signal that
      // came once the migrations committed (migrateUntilAborted), they are applied all the same,
      // and said so; the connection, its limits not reset, is discarded (cancellablePool).
      if (!outcome.error && !signal?.aborted) throw err;
    }
    return outcome;
  });
}

/**
 * migrate as a run and the worker do before their runs: every statement on `pool` cancelled by
 * `options.signal` (cancellablePool), none started once it has aborted, the waits between attempts cut
 * short. A SIGTERM while a migration waited for a lock (a report's open transaction, an older
 * release's run) waited on with it, for up to 10 minutes of attempts, then without a bound, and
 * SHUTDOWN_TIMEOUT ended the process by force. The pending migrations apply in one transaction:
 * cancelled, none is applied.
 */
export function migrateUntilAborted(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  return migrate(createDb(cancellablePool(pool, options.signal)), options);
}

/**
 * For the commands that write to a database runs have synced into (forget, alerts retry): the
 * migrations of this release it lacks are applied, as a run would, but a database without the cpq
 * schema is refused, not given one: pointed at another database (a warehouse), they created the
 * schema there, then found nothing to do.
 */
export async function migrateSynced(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  await requireSyncedInto(cancellableOn(pool, options.signal), 'write');
  // Its statements cancelled by options.signal, as a run's migrations are (alerts retry takes SIGTERM).
  return migrateUntilAborted(pool, options);
}

/** Why a database without what runs make is most likely not the one they write. */
const NOT_SYNCED_INTO = 'no run has synced into it (is DATABASE_URL the database the runs write?)';

/**
 * The failure of a command that needs what runs make in a database where it is not there, the one
 * place these lines come from. No cpq schema at all: every run and worker creates it first thing,
 * so none means nothing ever ran against this database, most likely not the one the runs write
 * (`cpq-sync migrate` would create the schema there). A schema that exists but lacks what this
 * release needs, or holds none: `whenSchemaExists`, which says what to do.
 */
export async function missingSchemaError(on: Queryable, whenSchemaExists: string): Promise<SyncError> {
  // Its own read failing (the connection lost as it asks) is a database failure, exit code 6, for
  // every command that asks: node-postgres's error alone was exit code 1.
  const rights = await readSchemaRights(on).catch(rethrowAsSyncError);
  return new SyncError('database', rights.schemaExists ? whenSchemaExists : `the database has no cpq schema: ${NOT_SYNCED_INTO}`);
}

const MIGRATE = 'run `cpq-sync migrate` with the role that owns schema cpq';

/**
 * readAppliedMigrationsFor, its failure a database failure (exit code 6, named as one): a session
 * ended under it (Postgres restarted) was an internal error, exit code 1, in the read commands.
 */
function readAppliedMigrationsOrFail(on: Queryable, commands: SchemaCommands): Promise<string[] | null> {
  return readAppliedMigrationsFor(on, commands).catch(rethrowAsSyncError);
}

/**
 * Refuses a database no run has synced into: without the cpq schema, or with one that holds no
 * migration (missingSchemaError). `commands`: whether the command that asks only reads (status) or writes.
 */
export async function requireSyncedInto(on: Queryable, commands: Exclude<SchemaCommands, 'both'>): Promise<void> {
  if ((await readAppliedMigrationsOrFail(on, commands)) === null) {
    throw await missingSchemaError(on, `the database's cpq schema is not migrated: ${NOT_SYNCED_INTO}`);
  }
}

/**
 * For the commands that only read (snapshot, changes, verify): they never migrate, so they work
 * with the cpq_reader role. A database that lacks a migration of this release fails with one line
 * that says to run `cpq-sync migrate`, one without the cpq schema with the line of a database no
 * run has synced into (missingSchemaError); a newer one is read as it is (migrations only add).
 */
export async function requireMigrated(on: Queryable, dir = MIGRATIONS_DIR): Promise<void> {
  const expected = Object.keys(await new SqlFileMigrationProvider(dir).getMigrations());
  const applied = await readAppliedMigrationsOrFail(on, 'read');
  if (applied === null) throw await missingSchemaError(on, `the database schema is older than this release, or not migrated: ${MIGRATE}`);
  const missing = expected.filter((name) => !applied.includes(name));
  if (missing.length > 0) {
    throw new SyncError(
      'database',
      `the database schema is older than this release (${missing.length} migration${missing.length === 1 ? '' : 's'} not applied, the first ${missing[0]!}): ${MIGRATE}`,
    );
  }
}
