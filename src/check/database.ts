import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { siteCpqUrl, type AppConfig, type SiteConfig } from '../config.js';
import { openDatabase, type Database } from '../db/connect.js';
import { embeddedClusterMade } from '../db/embedded-cluster.js';
import { DATA_DIR_FIX, NoRunsDatabase, embeddedFolderProblem } from '../db/embedded.js';
import { redactUrl } from '../db/database.js';
import {
  MIGRATIONS_DIR,
  FOREIGN_MIGRATIONS_FIX,
  foreignMigrationsProblem,
  migrationFiles,
  noCreateInSchemaFix,
  noSchemaRightsFix,
  noSchemaRightsProblem,
  noSchemaUsageFix,
  noSchemaUsageProblem,
  noWriteRightsProblem,
} from '../db/migrate.js';
import { readAppliedMigrations } from '../db/sql/read-applied-migrations.js';
import { encodingProblem, readDatabaseEncoding } from '../db/sql/read-database-encoding.js';
import { readSchemaRights, readSchemaUsage, type SchemaRights } from '../db/sql/read-schema-rights.js';
import { readWriteAccess, writeAccessProblem } from '../db/sql/read-only-database.js';
import { readSiteCpqUrl } from '../db/sql/site-cpq-url.js';
import { readSameUsersHeld } from '../sync/site-cpq-url.js';
import { outsiderHolder, readSyncLockHolder, runHolder } from '../db/sql/read-sync-lock-holder.js';
import { databaseHint } from '../error-hints.js';
import { errorCode, errorMessage, isUndefinedTable } from '../errors.js';
import type { Logger } from '../logger.js';
import { fail, pass, skip, warn, type StepResult } from './step.js';

/** The migrations this release has, in the order they apply. */
function releaseMigrations(): string[] {
  return migrationFiles(readdirSync(MIGRATIONS_DIR)).map((f) => f.replace(/\.sql$/, ''));
}

/** The schema version: applied migrations against this release's. Pending ones are applied by the next run, so they only warn. */
export async function checkSchema(database: Database): Promise<StepResult> {
  const applied = await readAppliedMigrations(database.pool);
  const known = releaseMigrations();
  if (applied === null) return unmigratedSchema(await readSchemaRights(database.pool));
  const latest = applied[applied.length - 1] ?? 'none';
  const foreign = foreignMigrationsProblem(applied, known);
  if (foreign !== undefined) return fail('schema', foreign, FOREIGN_MIGRATIONS_FIX);
  const ahead = applied.filter((name) => !known.includes(name));
  if (ahead.length > 0) return warn('schema', `migrated by a newer release (${ahead.join(', ')}); this one runs on it without migrating`);
  const pending = known.filter((name) => !applied.includes(name));
  if (pending.length > 0) {
    return warn(
      'schema',
      `version ${latest}; ${pending.length} migration(s) pending: ${pending.join(', ')}`,
      'the next run applies them, or run cpq-sync migrate',
    );
  }
  // A role that may read but not write (cpq_reader alone): every run would fail at its first write.
  const noWrite = noWriteRightsProblem(await readSchemaRights(database.pool));
  if (noWrite !== undefined) return fail('schema', `version ${latest}, but ${noWrite.problem}`, noWrite.fix);
  return pass('schema', `up to date: version ${latest} (${applied.length} migrations)`);
}

/** A database no run has migrated: whether the first run can (the role may create the schema, or its tables in the one a DBA made). */
function unmigratedSchema(rights: SchemaRights): StepResult {
  const { role, database } = rights;
  if (!rights.schemaExists) {
    return rights.mayCreateSchema
      ? warn('schema', 'no cpq schema yet', 'the first run (or cpq-sync migrate) creates it')
      : fail('schema', noSchemaRightsProblem(role, database), noSchemaRightsFix(role, database));
  }
  return rights.mayCreateInSchema === true
    ? warn('schema', 'schema cpq exists, not migrated yet', 'the first run (or cpq-sync migrate) migrates it')
    : fail('schema', `schema cpq exists, not migrated yet, and role ${role} may not create tables in it`, noCreateInSchemaFix(role));
}

/** Whether a run of `site` could take its sync lock now; held by a run means one is going on, which is no setup problem; held by a session that cannot write the tables is one. */
export async function checkSyncLock(database: Database, site: string): Promise<StepResult> {
  const step = `sync lock (${site})`;
  let holder: Awaited<ReturnType<typeof readSyncLockHolder>>;
  try {
    holder = await readSyncLockHolder(database.pool, site);
  } catch (err) {
    // A schema from before sites has no cpq.sites: no run of this release has taken a site's lock.
    if (isUndefinedTable(err)) return pass(step, 'free (no run of this release yet)');
    throw err;
  }
  if (holder === null) return pass(step, 'free');
  // A session that cannot write the tables (a reporting login) is no run: every run of the site fails until it lets go.
  if (holder.canWrite === false) {
    const { who, end } = outsiderHolder(holder);
    return fail(step, `held by ${who}: a run started now would exit 6`, `no run of this site can start until it lets go: end that session (${end})`);
  }
  return warn(step, `held by ${runHolder(holder)}: a run is in progress`, 'a run started now would exit 7; wait for that one');
}

/** Whether the site's base URL names the CPQ its rows were read from (cpq.sites.cpq_url): a run of another fails. */
export async function checkSiteCpq(database: Database, site: SiteConfig): Promise<StepResult> {
  const step = `cpq (${site.name})`;
  const cpqUrl = siteCpqUrl(site.cpq.baseUrl, site.cpq.pathPrefix);
  // A schema from before sites (no cpq.sites) or before 0021 (no cpq_url), or none yet: the next
  // run migrates, then records it.
  const beforeSites =
    <T>(none: T) =>
    (err: unknown): T => {
      if (isUndefinedTable(err) || errorCode(err) === '42703') return none;
      throw err;
    };
  const recorded = await readSiteCpqUrl(database.pool, site.name).catch(beforeSites(null));
  if (recorded === null) {
    const sameUsers = await readSameUsersHeld(database.pool, site.name, site.cpq).catch(beforeSites(undefined));
    if (sameUsers) return warn(step, sameUsers.problem, sameUsers.fix);
    return pass(step, `no CPQ recorded yet: the next successful run records ${cpqUrl}`);
  }
  if (recorded !== cpqUrl) {
    return fail(
      step,
      `its rows were read from ${recorded}, its base URL names ${cpqUrl}: a run would exit 2`,
      `if the new address is a mistake (a typo, a path added), correct it; if it is the same CPQ at a new address, cpq-sync run --site ${site.name} --cpq-moved; if another, give it a site name of its own`,
    );
  }
  return pass(step, `its rows were read from ${recorded}`);
}

/**
 * The database steps: reachable, schema version, and per site its sync lock and its CPQ. Reads
 * only. An embedded Postgres that was never created, or that lacks the runs' database, is not
 * created here (the first run does that); one that exists is started for the check and stopped
 * again, as `status` does.
 */
export async function checkDatabase(config: AppConfig, log: Logger, sites: readonly SiteConfig[]): Promise<{ where: string; steps: StepResult[] }> {
  const siteSteps = (why: string) => sites.flatMap((site) => [skip(`sync lock (${site.name})`, why), skip(`cpq (${site.name})`, why)]);
  // An empty DATA_DIR/pg (a first run whose initdb failed, an empty volume) holds no cluster either;
  // nor does one holding other files (a volume's lost+found), which the first run refuses.
  if (!config.databaseUrl && !embeddedClusterMade(join(config.dataDir, 'pg'))) {
    const where = `embedded Postgres in ${config.dataDir}`;
    // What the first run would meet making it (a checkout under /root, a DATA_DIR this user may not write): it exits 6.
    let problem: string | undefined;
    try {
      problem = embeddedFolderProblem(join(config.dataDir, 'pg'));
    } catch (err) {
      problem = errorMessage(err);
    }
    // Each problem is the run's one line, "<what>; <fix>".
    const cut = problem?.indexOf('; ') ?? -1;
    return {
      where,
      steps: [
        problem === undefined
          ? warn('database', `${where} does not exist yet`, 'the first run creates it, or set DATABASE_URL')
          : fail(
              'database',
              `${where} does not exist yet, and the first run would fail (exit code 6): ${cut < 0 ? problem : problem.slice(0, cut)}`,
              cut < 0 ? DATA_DIR_FIX : problem.slice(cut + 2),
            ),
        skip('schema', 'no database yet'),
        ...siteSteps('no database yet'),
      ],
    };
  }
  let database: Database;
  try {
    // An embedded cluster without the runs' database (one the demo made) is not given one.
    database = await openDatabase(config, log, { existing: true });
  } catch (err) {
    const message = errorMessage(err);
    const where = config.databaseUrl ? redactUrl(config.databaseUrl) : `embedded Postgres in ${config.dataDir}`;
    // As for a cluster not made yet: the first run creates the database (review HK: after the demo, check failed where run works).
    if (err instanceof NoRunsDatabase) {
      return {
        where,
        steps: [
          warn('database', `${where} holds no database for runs yet`, 'the first run creates it, or set DATABASE_URL'),
          skip('schema', 'no database yet'),
          ...siteSteps('no database yet'),
        ],
      };
    }
    return { where, steps: [fail('database', message, databaseHint(message)), skip('schema', 'no connection'), ...siteSteps('no connection')] };
  }
  try {
    const problem = encodingProblem(await readDatabaseEncoding(database.db));
    // Read-only (a standby, default_transaction_read_only): every run would exit 6 before writing.
    const readOnly = writeAccessProblem(await readWriteAccess(database.db));
    const steps = [
      problem !== undefined
        ? fail('database', `reachable: ${database.where}; ${problem}`, "create the database anew with ENCODING 'UTF8' and point DATABASE_URL at it")
        : readOnly !== undefined
          ? fail('database', `reachable: ${database.where}; ${readOnly.problem}`, readOnly.fix)
          : pass('database', `reachable: ${database.where}`),
    ];
    // A role without USAGE on schema cpq (a login never given cpq_reader): every step below failed
    // with Postgres's bare `permission denied for schema cpq`, and none said what to do.
    const usage = await readSchemaUsage(database.pool);
    if (usage?.mayUse === false) {
      steps.push(fail('schema', noSchemaUsageProblem(usage), noSchemaUsageFix(usage, 'both')), ...siteSteps('no USAGE on schema cpq'));
      return { where: database.where, steps };
    }
    const guarded = async (step: string, work: () => Promise<StepResult>) => {
      try {
        steps.push(await work());
      } catch (err) {
        steps.push(fail(step, `database error: ${errorMessage(err)}`));
      }
    };
    await guarded('schema', () => checkSchema(database));
    for (const site of sites) {
      await guarded(`sync lock (${site.name})`, () => checkSyncLock(database, site.name));
      await guarded(`cpq (${site.name})`, () => checkSiteCpq(database, site));
    }
    return { where: database.where, steps };
  } finally {
    await database.close();
  }
}
