import type pg from 'pg';
import type { AppConfig } from '../config.js';
import { SyncError, errorMessage, isConnectTimeout } from '../errors.js';
import type { Logger } from '../logger.js';
import { createDb, createPool, redactUrl, type Db } from './database.js';
import { embeddedClusterMade, noEmbeddedPostgres } from './embedded-cluster.js';
import { join, resolve } from 'node:path';

export interface Database {
  pool: pg.Pool;
  db: Db;
  /** Where the data is, for messages (password hidden). */
  where: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** The embedded Postgres database's name. */
  databaseName?: string;
  /** How many sync runs will use the pool at once (a run holds one connection and borrows others briefly). */
  concurrentRuns?: number;
  /**
   * For commands with nothing to do in a new database (status, the exports, verify, alerts, forget):
   * without DATABASE_URL, an embedded Postgres that does not exist yet is refused, not created.
   * Run where DATA_DIR or DATABASE_URL is not what the runs use (a cron job's environment), such
   * a command made a cluster of its own, found no runs, and `status` exited 0.
   */
  existing?: boolean;
}

/** DATABASE_URL when set; otherwise the embedded Postgres under DATA_DIR, started here and stopped by close(). */
export async function openDatabase(
  config: AppConfig,
  log: Logger,
  { databaseName = 'cpq_sync', concurrentRuns = 1, existing = false }: OpenOptions = {},
): Promise<Database> {
  let url = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url) {
    const dataDir = join(config.dataDir, 'pg');
    const made = embeddedClusterMade(dataDir);
    if (existing && !made) {
      throw noEmbeddedPostgres(`${config.dataDir} (DATA_DIR)`);
    }
    log.debug({ dataDir }, 'starting embedded Postgres');
    // Loaded only when needed: it installs process exit hooks and ships large binaries.
    const { startEmbeddedPostgres } = await import('./embedded.js');
    const embedded = await startEmbeddedPostgres({ dataDir, port: config.embeddedPort, database: databaseName, existing });
    // DATA_DIR is relative (./.data) unless set: run from another folder, a command made a cluster
    // there and synced every user into it, and nothing said so. Said, with the folder in full, once
    // made: a start that fails says why in its one line alone.
    if (!made) log.info({ dataDir: resolve(dataDir) }, 'no embedded Postgres was in DATA_DIR: made a new one');
    url = embedded.url;
    stopEmbedded = embedded.stop;
  }
  // One run holds a connection for its transaction and borrows up to two more at moments (user
  // ids, stored records, recording its failure).
  const pool = createPool(url, 2 + 2 * concurrentRuns, config.lockTimeoutMs, config.connectTimeoutMs);
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    await stopEmbedded?.();
    if (err instanceof SyncError) throw err;
    const why = isConnectTimeout(err) ? `no answer within DATABASE_CONNECT_TIMEOUT (${config.connectTimeoutMs / 1000} s)` : errorMessage(err);
    throw new SyncError('database', `cannot connect to Postgres at ${redactUrl(url)}: ${why}`);
  }
  const db = createDb(pool);
  return {
    pool,
    db,
    // In full: a relative DATA_DIR names no folder in a log read elsewhere.
    where: stopEmbedded ? `embedded Postgres in ${resolve(config.dataDir)}` : redactUrl(url),
    close: async () => {
      await db.destroy().catch(() => undefined);
      // Kysely ends the pool only if a query of its own opened it; commands that read through the
      // pool alone (status, verify, the exports) would leave its idle connections holding the
      // process open until they time out.
      if (!pool.ending) await pool.end().catch(() => undefined);
      await stopEmbedded?.();
    },
  };
}
