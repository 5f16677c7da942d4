import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** HEAD or a loose ref: a commit id (64 hex digits in a SHA-256 repository) or `ref: <name>`, and a line break. */
const REF_FILE_MAX_BYTES = 1024;
/**
 * packed-refs: a line of about 60 bytes per branch and tag, so some 17,000 refs. A larger file is
 * not read, and the build names no commit, rather than read without a bound.
 */
const PACKED_REFS_MAX_BYTES = 1024 * 1024;

const COMMIT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** A ref as HEAD names one: under refs/, no `..` (it must not name a file outside .git). */
const REF_NAME = /^refs\/(?!.*\.\.)[^\0\s]+$/;

/**
 * The commit checked out in the git checkout at `folder`, read from its files as git writes
 * them: `.git/HEAD`, the ref file it names, or `.git/packed-refs`. No `git` is run: it may not be
 * installed, and a child process would be handed this one's environment, secrets included.
 * Undefined where there is none to read: no `.git` (a copy of the package), a `.git` that is a
 * file (a worktree's or a submodule's, which point elsewhere: not followed), a branch with no
 * commit yet, or a file too large to be git's.
 */
export function checkoutCommit(folder: string): string | undefined {
  const git = join(folder, '.git');
  const head = readSmallFile(join(git, 'HEAD'), REF_FILE_MAX_BYTES)?.trim();
  if (head === undefined) return undefined;
  if (COMMIT_ID.test(head)) return head; // detached
  const ref = /^ref: (.+)$/.exec(head)?.[1];
  if (ref === undefined || !REF_NAME.test(ref)) return undefined;
  const loose = readSmallFile(join(git, ref), REF_FILE_MAX_BYTES)?.trim();
  if (loose !== undefined) return COMMIT_ID.test(loose) ? loose : undefined;
  // `git gc` and `git pack-refs` move refs into one file: `<id> <name>` a line.
  for (const line of readSmallFile(join(git, 'packed-refs'), PACKED_REFS_MAX_BYTES)?.split('\n') ?? []) {
    const [id, name] = line.trimEnd().split(' ');
    if (name === ref && id !== undefined && COMMIT_ID.test(id)) return id;
  }
  return undefined;
}

/**
 * The text of a regular file of at most `maxBytes`; undefined for one that is not there, not a
 * regular file (O_NONBLOCK: a FIFO in its place is not waited on), or larger.
 */
function readSmallFile(path: string, maxBytes: number): string | undefined {
  let fd;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > maxBytes) return undefined;
    // One byte more than allowed: a file that grew since fstat is seen to be too large.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    return length > maxBytes ? undefined : buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}
