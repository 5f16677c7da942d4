import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeZipTempDir, removeZipTempDir } from '../../src/cpq/zip-temp-dir.js';
import { cli } from '../helpers/cli-process.js';

/*
 * The embedded Postgres's private socket folder and a zip export's private folder are made in
 * TMPDIR (mkdtemp, 0700). In a TMPDIR other users may write without the sticky bit (a group's
 * shared folder), one of them renamed the socket folder away and put theirs, with a socket of
 * theirs, in its place: the worker's next connection sent it the superuser's password, asked for
 * in clear text (review DM, reproduced with `schedule` and a second account). Refused.
 */

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function folder(mode: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-tmpdir-'));
  await chmod(dir, mode);
  dirs.push(dir);
  return dir;
}

describe('TMPDIR another local user may change', () => {
  it('is refused for the embedded Postgres, one line, before anything starts', async () => {
    const shared = await folder(0o777);
    const data = await folder(0o755);
    const out = await cli(['migrate'], { TMPDIR: shared, DATA_DIR: join(data, 'data'), EMBEDDED_PG_PORT: '54381' });
    expect(out.code).toBe(6);
    expect(out.stderr).toBe(
      `cpq-sync: embedded Postgres: refusing TMPDIR ${shared} for its private socket folder: ${shared} can be written by every user (no sticky bit), so another local user could put a folder of theirs in its place and be sent the database password; set TMPDIR to a folder only you (or root) can change (/tmp is fine), or set DATABASE_URL\n`,
    );
  });

  it('is refused for a zip export; a sticky one (as /tmp) is not', async () => {
    const shared = await folder(0o777);
    await expect(makeZipTempDir(shared)).rejects.toThrow(
      `refusing TMPDIR ${shared} for the zip export's private folder: ${shared} can be written by every user (no sticky bit), so another local user could put a folder of theirs in its place`,
    );
    const sticky = await folder(0o1777);
    const made = await makeZipTempDir(sticky);
    expect((await stat(made)).mode & 0o777).toBe(0o700);
    await removeZipTempDir(made);
  });
});
