import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { lstat, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeOutput } from '../../src/output.js';
import { BIN } from '../helpers/cli-process.js';
import { createTestDatabase } from '../helpers/database.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('--out in a folder another local user can write to', () => {
  it('a symlink planted at the old predictable temporary name, or other guessable ones, is not followed; the target ends up right', async () => {
    const shared = await mkdtemp(join(tmpdir(), 'cpq-sync-out-'));
    dirs.push(shared);
    const victim = join(shared, 'victim.txt'); // a file of the user running the export, reached through the link
    await writeFile(victim, 'precious\n');
    const file = join(shared, 'snapshot.csv');
    // The attacker cannot know the random part; they plant what they can guess.
    const guesses = [
      `${file}.partial-${process.pid}`, // the old name
      `${file}.partial`,
      `${file}.tmp`,
      `${file}~`,
      join(shared, '.snapshot.csv.partial'),
      join(shared, '.snapshot.csv.tmp'),
      ...Array.from({ length: 20 }, (_, i) => `${file}.partial-${process.pid + i + 1}`),
    ];
    for (const guess of guesses) await symlink(victim, guess);

    const result = await writeOutput(file, async (out) => {
      out.write('login,email\n');
      out.write('alice,a@example.com\n');
      return 2;
    });

    expect(result).toBe(2);
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect((await lstat(file)).isFile()).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('login,email\nalice,a@example.com\n');
    for (const guess of guesses) expect((await lstat(guess)).isSymbolicLink()).toBe(true);
    // Nothing else is left in the folder: no temporary file after a success.
    expect((await readdir(shared)).sort()).toEqual(['snapshot.csv', 'victim.txt', ...guesses.map((g) => g.slice(shared.length + 1))].sort());
  });

  it('a symlink planted at the target name itself is replaced, not written through', async () => {
    const shared = await mkdtemp(join(tmpdir(), 'cpq-sync-out-'));
    dirs.push(shared);
    const victim = join(shared, 'victim.txt');
    await writeFile(victim, 'precious\n');
    const file = join(shared, 'changes.jsonl');
    await symlink(victim, file);
    await writeOutput(file, async (out) => void out.write('{"change":"insert"}\n'));
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect((await lstat(file)).isFile()).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('{"change":"insert"}\n');
  });

  it('a failed export leaves neither the target nor a temporary file', async () => {
    const shared = await mkdtemp(join(tmpdir(), 'cpq-sync-out-'));
    dirs.push(shared);
    const file = join(shared, 'snapshot.csv');
    await expect(
      writeOutput(file, async (out) => {
        out.write('half');
        throw new Error('database went away');
      }),
    ).rejects.toThrow('database went away');
    expect(await readdir(shared)).toEqual([]);
  });

  it("a link to the command's own standard output, redirected to a file (`--out /dev/stdout > file`), is refused, the link left a link (review HK)", async () => {
    // A private link as /dev/stdout is one (to /proc/self/fd/1): as root, the export renamed its
    // file over /dev/stdout itself.
    const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-out-'));
    dirs.push(dir);
    const link = join(dir, 'stdout');
    await symlink('/proc/self/fd/1', link);
    const captured = join(dir, 'captured.csv');
    const t = await createTestDatabase();
    const stdout = openSync(captured, 'w');
    try {
      const child = spawnSync(process.execPath, [BIN, 'snapshot', '--out', link], {
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: t.url, LOG_LEVEL: 'warn' },
        stdio: ['ignore', stdout, 'pipe'],
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(child.stderr).toContain(`${link}: the file of this command's standard output, so it cannot be replaced; leave out --out`);
      expect(child.status).not.toBe(0);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect(await readlink(link)).toBe('/proc/self/fd/1');
      expect((await readdir(dir)).sort()).toEqual(['captured.csv', 'stdout']);
    } finally {
      closeSync(stdout);
      await t.drop();
    }
  });
});
