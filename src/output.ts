import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, fstatSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SyncError, errorCode } from './errors.js';
import { OWNER_TAG, leftoversOfEndedProcesses, ownerTag } from './process-runs.js';

/** What an export's manifest says besides the file's digest: the rows and where they come from (run, watermark). */
export type ManifestFields = { kind: 'snapshot' | 'changes'; format: string; rows: number } & Record<string, unknown>;

/** `<file>.manifest.json`: written next to an export file, checked by `cpq-sync verify --file`. */
export interface Manifest extends Record<string, unknown> {
  manifest: typeof MANIFEST_VERSION;
  /** The data file's name (no folder: the pair may be moved together). */
  file: string;
  bytes: number;
  /** SHA-256 of the file's bytes, lower-case hex. */
  sha256: string;
  rows: number;
  createdAt: string;
}

const MANIFEST_VERSION = 'cpq-sync export manifest v1';
const manifestPath = (file: string) => `${file}.manifest.json`;

/**
 * A unique, unguessable temporary name in `file`'s folder, created exclusively (see writeOutput):
 * `.<file's name>.<ownerTag>.<24 random hex digits>.partial`. The owner tag names this process, so
 * that a later write to `file` can tell a partial file a killed process left from one being written.
 */
const partialName = (file: string) => join(dirname(file), `.${basename(file)}.${ownerTag()}.${randomBytes(12).toString('hex')}.partial`);

/** What follows `.<file's name>.` in a partial file's name (partialName). */
const PARTIAL = new RegExp(`^${OWNER_TAG}\\.[0-9a-f]{24}\\.partial$`);

/**
 * Removes the partial files of `file` that processes since ended left: a process killed mid-write
 * (SIGKILL, the out-of-memory killer) runs no cleanup, and its partial file of personal data stayed
 * for good. Only files named as partialName names `file`'s, by a process of this machine and
 * process-id namespace that no longer runs (leftByEndedProcess: a running writer of the same file
 * keeps its own), that are regular files (not a link, never followed: unlink removes the name
 * only), of this user, and readable by no one else (as made: 0600). Never throws: a file it
 * cannot remove stays as before.
 */
async function removePartialsOfEndedProcesses(file: string): Promise<void> {
  const prefix = `.${basename(file)}.`;
  const partials = await leftoversOfEndedProcesses(dirname(file), (name) => (name.startsWith(prefix) ? PARTIAL.exec(name.slice(prefix.length)) : null));
  for (const { path, stats } of partials) {
    if (stats.isFile() && (stats.mode & 0o077) === 0) await unlink(path).catch(() => undefined);
  }
}

/**
 * Runs `write` against standard output, or against FILE written under a temporary name and
 * renamed into place when complete, so a reader never sees half a file. With `manifest`, a file
 * gets its side file `<file>.manifest.json` (written the same way, before the data is renamed
 * into place, and renamed after it): its bytes, SHA-256 and what `manifest` says of the result
 * (rows, run, watermark). A failure, or a stop signal (STOP_SIGNALS), removes the temporary files.
 *
 * The temporary file sits in FILE's folder (rename stays on one file system) under a name
 * nobody can guess, and is created exclusively (`wx`: O_CREAT|O_EXCL, which also refuses a
 * symlink at that name): in a folder other users can write to, a link planted in advance is
 * never followed and never written through. rename() replaces FILE itself, even when FILE is
 * a symlink, rather than writing to where a link points. A process killed mid-write (SIGKILL),
 * which removes nothing, leaves its partial files: the next write to FILE removes them
 * (removePartialsOfEndedProcesses).
 */
export async function writeOutput<T>(file: string | undefined, write: (out: Writable) => Promise<T>, manifest?: (result: T) => ManifestFields): Promise<T> {
  if (file === undefined) return writeStdout(write);
  await requireFileOrNothing(file);
  if (manifest) await requireFileOrNothing(manifestPath(file));
  // What a killed writer of this file left (its data, its manifest), before this one adds its own.
  await removePartialsOfEndedProcesses(file);
  await removePartialsOfEndedProcesses(manifestPath(file));
  const partial = partialName(file);
  const partials = [partial];
  let side: string | undefined;
  let placed = false;
  // Stopped by a signal meanwhile, the export leaves no partial file of personal data behind; once
  // the data is being put in place, the signal puts it and its manifest in place, so that the two
  // still agree.
  const onSignal = (signal: NodeJS.Signals) => {
    if (placed && side !== undefined) {
      // The data's rename may not have happened yet (ENOENT when it has): both, in their order.
      for (const [from, to] of [
        [partial, file],
        [side, manifestPath(file)],
      ] as const) {
        try {
          renameSync(from, to);
        } catch {
          // done already, or left to the removal below
        }
      }
    }
    for (const path of partials) rmSync(path, { force: true });
    // Every failure ends with one line (review HK: the process exited saying nothing).
    process.stderr.write(
      `cpq-sync: stopped by ${signal}: ${placed ? `it came as ${file} was put in place` : `${file} was not written, nothing of it is left`}\n`,
    );
    process.exit(128 + constants.signals[signal]);
  };
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  try {
    // 0600: an export holds personal data (names, emails); only its owner reads it.
    const handle = await open(partial, 'wx', 0o600);
    const out = handle.createWriteStream();
    const digest = createHash('sha256');
    let bytes = 0;
    // Every byte on its way to the file goes through the digest.
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        digest.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    // pipeline, not pipe: a failing file (a full disk) fails the export, which then removes the
    // partial file, instead of an 'error' nobody listens to ending the process.
    const piped = pipeline(counted, out);
    piped.catch(() => undefined); // awaited below; until then, its failure also fails `write`
    try {
      const result = await write(counted);
      counted.end();
      await piped;
      if (manifest) {
        const fields: Manifest = {
          manifest: MANIFEST_VERSION,
          file: basename(file),
          bytes,
          sha256: digest.digest('hex'),
          ...manifest(result),
          createdAt: new Date().toISOString(),
        };
        // Written before the data is put in place: a manifest that cannot be written leaves the
        // earlier file and its manifest as they were.
        side = partialName(manifestPath(file));
        partials.push(side);
        await writeFile(side, `${JSON.stringify(fields, null, 2)}\n`, { flag: 'wx', mode: 0o600 }).catch((err: unknown) => {
          throw withPlace(err, manifestPath(file));
        });
      }
      placed = true; // from here on, a signal completes the pair rather than removing its half
      await rename(partial, file);
      if (side !== undefined) {
        try {
          await rename(side, manifestPath(file));
        } catch (err) {
          throw withPlace(err, manifestPath(file));
        }
      }
      return result;
    } catch (err) {
      counted.destroy();
      out.destroy();
      throw err;
    }
  } catch (err) {
    for (const path of partials) await rm(path, { force: true }).catch(() => undefined);
    throw withPlace(err, file);
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  }
}

/** The signals that end an export: Ctrl-C, a stop, a closed terminal or ssh session, Ctrl-\. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/**
 * FILE must be a file or not exist: a FIFO, a device or a link to one (`--out /dev/stdout`)
 * would be replaced by a regular file, its reader left waiting (the data is for standard output:
 * leave out --out). Nor may it be the file one of this process's standard streams writes or
 * reads (`--out /dev/stdout > file`): that FILE is a link to /proc's link to it, and the rename
 * replaced the link, which is /dev/stdout itself for root (review HK).
 */
async function requireFileOrNothing(file: string): Promise<void> {
  const stats = await stat(file).catch(() => undefined);
  if (stats === undefined) return;
  if (!stats.isFile()) {
    throw new SyncError(
      'config',
      `${file}: not a regular file (a pipe, a device or a folder), so it cannot be replaced; leave out --out to write to standard output`,
    );
  }
  for (const [fd, stream] of [
    [1, 'output'],
    [2, 'error'],
    [0, 'input'],
  ] as const) {
    const standard = fstatOrNothing(fd);
    if (standard !== undefined && standard.dev === stats.dev && standard.ino === stats.ino) {
      throw new SyncError(
        'config',
        `${file}: the file of this command's standard ${stream}, so it cannot be replaced; leave out --out to write to standard output`,
      );
    }
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function fstatOrNothing(fd: number): { dev: number; ino: number } | undefined {
  try {
    return fstatSync(fd);
  } catch {
    return undefined; // closed
  }
}

/**
 * `write` to standard output. A reader that goes away (`| head`) or a full disk behind a
 * redirection fails the export with one line (and `changes` prints no watermark, since what it
 * wrote was not all read) rather than an unhandled 'error' ending the process.
 */
async function writeStdout<T>(write: (out: Writable) => Promise<T>): Promise<T> {
  let onError!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (onError = reject));
  process.stdout.on('error', onError);
  try {
    return await Promise.race([write(process.stdout), failed]);
  } catch (err) {
    throw withPlace(err, 'standard output');
  } finally {
    process.stdout.off('error', onError);
  }
}

/** A failure to write the export, naming where. */
function withPlace(err: unknown, where: string): unknown {
  // A system call's failure (the file, the pipe), not the database's (which has a code too).
  if (!(err instanceof Error) || (err as NodeJS.ErrnoException).syscall === undefined) return err;
  // The temporary file (partialName) could not be made in the folder: said of the folder, which
  // is what to change, not of a random name the reader never chose (an ordinary account's EACCES).
  const { code, path } = err as NodeJS.ErrnoException;
  if (path !== undefined && dirname(path) === dirname(where) && basename(path).startsWith(`.${basename(where)}.`)) {
    // The command line's to change: exit code 2, as for any other bad argument (review HT). A
    // folder that is there answers ENOENT too when its file system makes no files (/proc, /sys):
    // it was said to be no folder (review JB).
    if (code === 'ENOENT' && !isFolder(dirname(where)))
      return new SyncError('config', `cannot write ${where}: there is no folder ${dirname(where)}; create it, or choose another for --out`);
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      const why = code === 'ENOENT' ? 'ENOENT: the folder is there, but its file system makes no new files' : code;
      return new SyncError(
        'config',
        `cannot write ${where}: cannot create a file in ${dirname(where)} (${why}), where it is written under a temporary name and renamed into place; choose a folder you can write for --out`,
      );
    }
  }
  return new Error(
    (err as NodeJS.ErrnoException).code === 'EPIPE'
      ? `${where} was closed before the export was written whole (EPIPE)`
      : `cannot write ${where}: ${err.message}`,
  );
}

/**
 * The outcome of `cpq-sync verify --file`: problems empty when the file is the one the manifest
 * describes; `unchecked` (why) when there was nothing to compare (no manifest, or one that is
 * none, or a file that cannot be read): that is no mismatch.
 */
export type FileCheck = { file: string; manifest: Manifest; problems: string[]; unchecked?: undefined } | { file: string; unchecked: string };

function isManifest(value: unknown): value is Manifest {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return m.manifest === MANIFEST_VERSION && typeof m.file === 'string' && typeof m.sha256 === 'string' && typeof m.bytes === 'number';
}

/** Checks an export file against its manifest: name, size and SHA-256. */
export async function verifyFile(file: string): Promise<FileCheck> {
  const side = manifestPath(file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(side, 'utf8'));
  } catch (err) {
    const code = errorCode(err);
    // One this account may not read (an auditor's account, the export being 0600) is not said to
    // be no JSON, which reads as a tampered manifest.
    if (code !== undefined && code !== 'ENOENT') {
      return { file, unchecked: `${side} cannot be read (${code}): run verify as an account that may read the file and its manifest` };
    }
    return { file, unchecked: `${side} ${code === 'ENOENT' ? 'does not exist' : 'is not JSON'}: the file has no manifest to check it against` };
  }
  if (!isManifest(parsed)) return { file, unchecked: `${side} is not a cpq-sync export manifest` };
  const manifest = parsed;
  const digest = createHash('sha256');
  let bytes = 0;
  try {
    await pipeline(createReadStream(file), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        digest.update(chunk);
        bytes += chunk.length;
      }
    });
  } catch (err) {
    return { file, unchecked: `${file} cannot be read: ${(err as Error).message}` };
  }
  const sha256 = digest.digest('hex');
  const problems: string[] = [];
  if (manifest.file !== basename(file)) problems.push(`the manifest describes ${manifest.file}, not ${basename(file)}`);
  if (bytes !== manifest.bytes) problems.push(`${bytes} bytes, the manifest says ${manifest.bytes}`);
  if (sha256 !== manifest.sha256) problems.push(`SHA-256 ${sha256}, the manifest says ${manifest.sha256}`);
  return { file, manifest, problems };
}
