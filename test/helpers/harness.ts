import { Writable } from 'node:stream';
import pino from 'pino';
import { test } from 'vitest';
import { deliverPendingAlerts } from '../../src/alerts/delivery.js';
import { loadConfig, type AppConfig } from '../../src/config.js';
import type { Logger } from '../../src/logger.js';
import { REDACT_PATHS } from '../../src/logger.js';
import { CpqSimulator, type SimulatorOptions } from '../../src/simulator/index.js';
import type { RunOptions, RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { createTestDatabase, type TestDatabase, type TestDatabaseOptions } from './database.js';

export interface Harness {
  sim: CpqSimulator;
  t: TestDatabase;
  config: AppConfig;
  log: Logger;
  /** Every log line written so far, as JSON text. */
  logLines: string[];
  sync(options?: RunOptions): Promise<RunResult>;
  /** The run's error, for runs expected to fail. */
  syncError(options?: RunOptions): Promise<Error>;
  close(): Promise<void>;
}

/**
 * A real simulator on loopback, a fresh database cloned from the template, and a config pointing
 * at both.
 */
export async function startHarness(
  simulator: SimulatorOptions = {},
  env: Record<string, string> | ((baseUrl: string) => Record<string, string>) = {},
  database: TestDatabaseOptions = {},
): Promise<Harness> {
  const sim = new CpqSimulator(simulator);
  const url = await sim.start();
  const t = await createTestDatabase(database);
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const log = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  const config = loadConfig({
    CPQ_BASE_URL: url,
    CPQ_PATH_PREFIX: simulator.pathPrefix ?? '',
    DATABASE_URL: t.url,
    CPQ_RETRY_BASE_DELAY: '5ms',
    CPQ_RETRY_MAX_DELAY: '50ms',
    // Merge batches every few users, so that every scenario runs through batched merges (with
    // several batches, and later copies of batched users); merge.test.ts compares with none.
    SYNC_MERGE_BATCH_USERS: '3',
    // One key range per company: the scenarios follow a read request by request (pages of a few
    // users would otherwise be split into ranges read at once); test/key-ranges.test.ts splits.
    CPQ_KEY_RANGES: '1',
    ...(typeof env === 'function' ? env(url) : env),
  });
  // As `cpq-sync run` does after a run that succeeded: the run, then its alerts (and any earlier
  // ones still pending). `run` sends them after a failed run too; alerts.test shows that through the CLI.
  const sync = async (options?: RunOptions) => {
    const result = await runSync({ pool: t.pool, db: t.db, config, log }, options);
    await deliverPendingAlerts({ on: t.pool, config: config.alerts, log, signal: options?.signal });
    return result;
  };
  return {
    sim,
    t,
    config,
    log,
    logLines,
    sync,
    syncError: async (options) => {
      try {
        await sync(options);
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected the sync run to fail, but it succeeded');
    },
    close: async () => {
      await sim.stop();
      await t.drop();
    },
  };
}

/** Starts a harness for the running test; see `it`. */
export type StartHarness = typeof startHarness;

/**
 * vitest's `it` with a `startHarness` fixture: the harnesses a test starts through it are
 * closed (simulator stopped, database dropped) when the test ends, pass or fail, after the
 * file's own afterEach hooks, so those can still use them.
 */
export const it = test.extend<{ startHarness: StartHarness }>({
  // eslint-disable-next-line no-empty-pattern -- vitest reads the fixtures a fixture needs from this pattern
  startHarness: async ({}, use) => {
    const started: Harness[] = [];
    await use(async (simulator, env, database) => {
      const h = await startHarness(simulator, env, database);
      started.push(h);
      return h;
    });
    for (const h of started.reverse()) await h.close();
  },
});

/** Every row of the current-state tables, in a stable order, for before/after comparisons. */
export async function snapshotTables(t: TestDatabase) {
  return {
    users: await t.query(`SELECT * FROM cpq.users ORDER BY company_login, login`),
    groups: await t.query(`SELECT * FROM cpq.groups ORDER BY variable_name`),
    userGroups: await t.query(`SELECT * FROM cpq.user_groups ORDER BY user_id, group_variable_name`),
    permissions: await t.query(`SELECT * FROM cpq.user_access_permissions ORDER BY user_id, type, variable_name`),
    state: await t.query(`SELECT * FROM cpq.sync_state ORDER BY stream`),
  };
}
