import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyncError, errorCode, errorMessage } from '../errors.js';
import { OWNER_TAG, leftoversOfEndedProcesses, ownerTag } from '../process-runs.js';
import { tmpdirRefusal } from '../local-paths.js';

/*
 * The private folder a zip export is downloaded to (mkdtemp: mode 0700, a name no one can guess).
 * It is removed when the read ends, and on exit should the process end mid-read. A process killed
 * (SIGKILL, the out-of-memory killer) runs neither: its folder, with a download of up to
 * CPQ_ZIP_MAX_BYTES, stays. Each folder's name says which process on which machine made it, so the
 * next process on that machine (in the same process-id namespace) removes the folders of processes
 * that no longer run; left to pile up, they would fill TMPDIR and fail every later zip read.
 */

const TEMP_PREFIX = 'cpq-sync-zip-';

/** `cpq-sync-zip-<ownerTag>-` and mkdtemp's six characters. */
const FOLDER = new RegExp(`^${TEMP_PREFIX}${OWNER_TAG}-[A-Za-z0-9]{6}$`);

/** Temporary folders alive right now: removed on exit too, should the process end mid-read. */
const liveTempDirs = new Set<string>();
let exitHookInstalled = false;
/** Parents already swept for the folders of dead processes: once per process and parent. */
const swept = new Set<string>();

export async function makeZipTempDir(parent: string | undefined): Promise<string> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const dir of liveTempDirs) rmSync(dir, { recursive: true, force: true });
    });
  }
  const base = parent ?? tmpdir();
  // Where another user may rename what is in TMPDIR, they could put a folder of theirs in the
  // place of this private one, and read the download or have it written through a link of theirs (review DM).
  const refusal = tmpdirRefusal(base, "the zip export's private folder");
  if (refusal !== undefined) throw new SyncError('config', refusal);
  if (!swept.has(base)) {
    swept.add(base);
    await removeFoldersOfEndedProcesses(base);
  }
  const dir = await mkdtemp(join(base, `${TEMP_PREFIX}${ownerTag()}-`)).catch((err: unknown) => {
    throw new SyncError(
      'config',
      `cannot create a temporary folder in ${base} for the zip export (${errorCode(err) ?? errorMessage(err)}); set TMPDIR to a writable folder`,
    );
  });
  liveTempDirs.add(dir);
  return dir;
}

/** Never throws (it runs in `finally`, where it must not hide the error that ended the read). */
export async function removeZipTempDir(dir: string) {
  const removed = await rm(dir, { recursive: true, force: true }).then(
    () => true,
    () => false,
  );
  if (removed) liveTempDirs.delete(dir); // else the exit hook tries again
}

/**
 * Removes the folders, in `base`, of this machine's processes that no longer run. Only folders:
 * of this user (another account's are not ours to judge), real (not a link), named by a process of
 * this machine and process-id namespace that has ended (leftByEndedProcess). Never throws: a
 * folder it cannot remove stays as before.
 */
async function removeFoldersOfEndedProcesses(base: string): Promise<void> {
  for (const { path, stats } of await leftoversOfEndedProcesses(base, (name) => FOLDER.exec(name))) {
    if (stats.isDirectory()) await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}
