import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';

/**
 * Runs `write` against standard output, or against FILE written under a temporary name and
 * renamed into place when complete, so a reader never sees half a file.
 *
 * The temporary file sits in FILE's folder (rename stays on one file system) under a name
 * nobody can guess, and is created exclusively (`wx`: O_CREAT|O_EXCL, which also refuses a
 * symlink at that name): in a folder other users can write to, a link planted in advance is
 * never followed and never written through. rename() replaces FILE itself, even when FILE is
 * a symlink, rather than writing to where a link points.
 */
export async function writeOutput<T>(file: string | undefined, write: (out: Writable) => Promise<T>): Promise<T> {
  if (file === undefined) return write(process.stdout);
  const partial = join(dirname(file), `.${basename(file)}.${randomBytes(12).toString('hex')}.partial`);
  const handle = await open(partial, 'wx', 0o640);
  const out = handle.createWriteStream();
  try {
    const result = await write(out);
    out.end();
    await finished(out);
    await rename(partial, file);
    return result;
  } catch (err) {
    out.destroy();
    await rm(partial, { force: true });
    throw err;
  }
}
