import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { parseExactJson, stringifyExactJson } from '../../src/exact-json.js';
import { CpqSimulator, type SimulatorOptions, type ZipExportOptions } from '../../src/simulator/index.js';
import type { RunOptions, RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { RUN_BOOKKEEPING_TABLES, createTestDatabase, type TestDatabase } from './database.js';

/** The Python zip writer the tests use as an independent writer (see the script's docstring). */
export const MAKE_ZIP = fileURLToPath(new URL('../fixtures/zip/make-zip.py', import.meta.url));

/**
 * Python run without blocking: a test's simulator lives in this process, and an event loop
 * blocked for seconds let its keep-alive timer close a socket the next request was just written
 * on (fetch failed, ECONNRESET, on a loaded CI).
 */
export const python3 = async (args: string[]): Promise<Buffer> =>
  (await promisify(execFile)('python3', args, { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 })).stdout;

export async function pythonZip(out: string, args: string[]): Promise<void> {
  await python3([MAKE_ZIP, out, ...args]);
}

/** The path prefix each simulator was started with, whichever test bed started it. */
const PREFIXES = new WeakMap<CpqSimulator, string>();

/**
 * Simulators, databases and temporary folders for zip tests, closed together. One simulator can
 * be synced into several databases (the JSON path into one, the zip path into another), so both
 * see byte-identical records, links included.
 */
export class ZipTestBed {
  private readonly sims: CpqSimulator[] = [];
  private readonly dbs: TestDatabase[] = [];
  private readonly dirs: string[] = [];

  async simulator(options: SimulatorOptions = {}): Promise<CpqSimulator> {
    const sim = new CpqSimulator(options);
    await sim.start();
    this.sims.push(sim);
    PREFIXES.set(sim, options.pathPrefix ?? '');
    return sim;
  }

  async database(): Promise<TestDatabase> {
    const t = await createTestDatabase();
    this.dbs.push(t);
    return t;
  }

  async tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'cpq-zip-test-'));
    this.dirs.push(dir);
    return dir;
  }

  /** One sync run of `sim` into `t`; TMPDIR is a folder of its own, returned for inspection. */
  async run(
    sim: CpqSimulator,
    t: TestDatabase,
    env: Record<string, string> = {},
    options?: RunOptions,
  ): Promise<{ result?: RunResult; error?: Error; tmp: string }> {
    const tmp = await this.tempDir();
    const config = loadConfig({
      CPQ_BASE_URL: sim.baseUrl,
      CPQ_PATH_PREFIX: PREFIXES.get(sim) ?? '',
      DATABASE_URL: t.url,
      CPQ_RETRY_BASE_DELAY: '5ms',
      CPQ_RETRY_MAX_DELAY: '50ms',
      TMPDIR: tmp,
      ...env,
    });
    try {
      const result = await runSync({ pool: t.pool, db: t.db, config, log: pino({ level: 'silent' }) }, options);
      return { result, tmp };
    } catch (error) {
      return { error: error as Error, tmp };
    }
  }

  async sync(sim: CpqSimulator, t: TestDatabase, env: Record<string, string> = {}): Promise<RunResult> {
    const { result, error } = await this.run(sim, t, env);
    if (error) throw error;
    return result!;
  }

  /** The zip export of `company` as the simulator serves it now, saved to a file. */
  async fetchExport(sim: CpqSimulator, company = '_host', options?: ZipExportOptions): Promise<string> {
    if (options) sim.setZipExport(options);
    const response = await fetch(`${sim.baseUrl}${PREFIXES.get(sim) ?? ''}/rest/v16/companies/${company}/users`, { headers: { accept: 'application/zip' } });
    if (!response.ok) throw new Error(`export answered ${response.status}`);
    const file = join(await this.tempDir(), 'export.zip');
    await writeFile(file, Buffer.from(await response.arrayBuffer()));
    return file;
  }

  async close(): Promise<void> {
    await Promise.all(this.sims.splice(0).map((s) => s.stop()));
    await Promise.all(this.dbs.splice(0).map((t) => t.drop()));
    await Promise.all(this.dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  }
}

export async function filesIn(dir: string): Promise<string[]> {
  return readdir(dir, { recursive: true });
}

/**
 * Columns whose values depend on when and in which run a row was written, not on the data:
 * surrogate ids, run ids and wall-clock timestamps.
 */
const VOLATILE = new Set([
  'id',
  'history_id',
  'run_id',
  'first_seen_run_id',
  'last_changed_run_id',
  'last_run_id',
  'first_seen_at',
  'last_synced_at',
  'last_changed_at',
  'last_full_sync_at',
  'updated_at',
  'detected_at',
  'valid_from',
  'valid_to',
  'added_at',
]);

/**
 * Every row of every table in schema cpq (the run log and migration bookkeeping aside), as exact
 * JSON text without the volatile columns, user ids replaced by company/login, sorted: equal
 * results mean equal database contents.
 */
export async function databaseContents(t: TestDatabase): Promise<Record<string, string[]>> {
  const tables = await t.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'cpq' AND table_type = 'BASE TABLE' AND table_name NOT IN (${RUN_BOOKKEEPING_TABLES}) AND table_name NOT LIKE 'kysely%'
     ORDER BY 1`,
  );
  const users = await t.query<{ id: string; key: string }>(`SELECT id::text AS id, company_login || '/' || login AS key FROM cpq.users`);
  const userKey = new Map(users.map((u) => [u.id, u.key]));
  const out: Record<string, string[]> = {};
  for (const { name } of tables) {
    const rows = await t.query<{ row: string }>(`SELECT to_jsonb(t)::text AS row FROM cpq."${name}" t`);
    out[name] = rows
      .map(({ row }) => {
        const record = parseExactJson(row) as Record<string, unknown>;
        // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- dropping the volatile columns by name is the point
        for (const column of Object.keys(record)) if (VOLATILE.has(column)) delete record[column];
        if ('user_id' in record) record.user_id = userKey.get(String(record.user_id)) ?? `missing user ${String(record.user_id)}`;
        return stringifyExactJson(record);
      })
      .sort();
  }
  return out;
}
