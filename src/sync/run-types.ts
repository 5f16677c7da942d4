import type pg from 'pg';
import type { AppConfig } from '../config.js';
import type { HttpStats } from '../cpq/http-stats.js';
import type { Db } from '../db/database.js';
import type { StreamReport } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { MergeCounts } from './merge.js';
import type { ProgressSink } from './stream-progress.js';

/* What a sync run takes and gives back (run.ts runs it; run-sites.ts runs one per site). */

export interface RunOptions {
  /** The site to sync, by name; may be left out when only one site is configured. */
  site?: string;
  /** Read every stream in full, ignoring stored cursors. */
  full?: boolean;
  /** Apply deletions even past both SYNC_MAX_DELETE_FRACTION and SYNC_MASS_DELETE_MIN (refusesDeletion). */
  allowMassDelete?: boolean;
  /** The site's CPQ moved: read its base URL even though its rows were read from another address (cpq.sites.cpq_url). */
  cpqMoved?: boolean;
  signal?: AbortSignal;
  /** Told of each stream's pages as they are read (the terminal display of `run`). */
  progress?: ProgressSink;
}

export interface RunResult extends MergeCounts {
  site: string;
  runId: string;
  status: 'succeeded' | 'failed';
  mode: 'full' | 'incremental' | 'mixed';
  pages: number;
  streams: StreamReport[];
  warnings: string[];
  /** What the HTTP client had to do, as the run record says. */
  http: HttpStats;
  /** From the run record's creation to the commit. */
  seconds: number;
  error?: string;
}

export interface SyncDeps {
  pool: pg.Pool;
  db: Db;
  config: AppConfig;
  log: Logger;
  /**
   * The database written to, as openDatabase names it (the DATABASE_URL with its secrets hidden,
   * or the embedded Postgres's absolute folder), for the start lines: a run from another folder
   * wrote to a new embedded cluster there, and no line said so. Unset where a caller brings a pool
   * of its own (tests), and then not logged.
   */
  where?: string;
}
