import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { SyncError, errorCode } from '../errors.js';

// Apart from embedded.ts, which openDatabase loads only when it starts a cluster (it installs
// process exit hooks and ships large binaries), and which reads these too.

/**
 * Whether initdb has made a cluster in the embedded data folder `dataDir` (`DATA_DIR/pg`): its
 * PG_VERSION is there. The folder alone is not enough: a first run whose initdb failed (a full
 * disk) leaves it empty, and so is an empty volume mounted there; a read-only command took either
 * for a cluster and initdb made one in it. A file in its place, or a folder this user may not look
 * into (another account's), counts as made: the start says why it cannot be used.
 */
export function embeddedClusterMade(dataDir: string): boolean {
  if (!existsSync(dataDir)) return false;
  try {
    lstatSync(join(dataDir, 'PG_VERSION'));
    return true;
  } catch (err) {
    return errorCode(err) !== 'ENOENT';
  }
}

/** A command that only reads what runs wrote, without DATABASE_URL and with no cluster made at `where`: it makes none (exit code 6). */
export function noEmbeddedPostgres(where: string): SyncError {
  return new SyncError(
    'database',
    `no database: DATABASE_URL is not set, and there is no embedded Postgres in ${where} for a run to have written: set DATABASE_URL, or DATA_DIR to the runs' folder`,
  );
}
