import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';

/**
 * Runs `write` against standard output, or against FILE written under a temporary name and
 * renamed into place when complete, so a reader never sees half a file.
 */
export async function writeOutput<T>(file: string | undefined, write: (out: Writable) => Promise<T>): Promise<T> {
  if (file === undefined) return write(process.stdout);
  const partial = `${file}.partial-${process.pid}`;
  const out = createWriteStream(partial, { mode: 0o640 });
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
