import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chown, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { BIN } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/*
 * An export whose destination fails (a full disk, a file-size limit, a reader that went away)
 * fails with one line, prints no watermark, and leaves no partial file of personal data behind;
 * before, an 'error' nobody listened to ended the process with a stack trace and the partial
 * file stayed.
 */

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

interface Ended {
  code: number | null;
  stderr: string;
}

/** The built CLI with `stdout` as given: a file descriptor, nothing, or a pipe closed at once. */
function exportTo(args: string[], env: Record<string, string>, stdout: number | 'ignore' | 'closed pipe', shell?: string): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const command = shell === undefined ? [process.execPath, BIN, ...args] : ['bash', '-c', `${shell}; exec "$0" "$@"`, process.execPath, BIN, ...args];
    const child = spawn(command[0]!, command.slice(1), {
      env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', stdout === 'closed pipe' ? 'pipe' : stdout, 'pipe'],
    });
    if (stdout === 'closed pipe') child.stdout!.destroy();
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('an export whose destination fails', () => {
  it('--out: over a file-size limit, one line naming the file, no watermark, no partial file left', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 150, integrationUsers: 0 });
    await h.sync();
    const folder = await mkdtemp(join(tmpdir(), 'cpq-sync-export-'));
    dirs.push(folder);
    const file = join(folder, 'changes.jsonl');
    // SIGXFSZ ignored, a write past the limit fails with EFBIG instead of killing the process.
    const ended = await exportTo(['changes', '--after', '0', '--out', file], { DATABASE_URL: h.t.url }, 'ignore', "trap '' XFSZ; ulimit -f 20");
    expect(ended.code).not.toBe(0);
    expect(ended.stderr).toBe(`cpq-sync: cannot write ${file}: EFBIG: file too large, write\n`);
    expect(await readdir(folder)).toEqual([]);
  });

  it('standard output on a full disk (/dev/full), or a reader that went away (EPIPE): one line, no watermark', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 150, integrationUsers: 0 });
    await h.sync();
    const full = openSync('/dev/full', 'w');
    try {
      const ended = await exportTo(['changes', '--after', '0'], { DATABASE_URL: h.t.url }, full);
      expect(ended.code).not.toBe(0);
      expect(ended.stderr).toBe('cpq-sync: cannot write standard output: ENOSPC: no space left on device, write\n');
    } finally {
      closeSync(full);
    }
    const gone = await exportTo(['snapshot', '--format', 'csv'], { DATABASE_URL: h.t.url }, 'closed pipe');
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toBe('cpq-sync: standard output was closed before the export was written whole (EPIPE)\n');
  });

  it('--out naming a pipe, a device (through a link, as /dev/stdout is), a folder, or a file in no folder is refused before anything is written, exit code 2', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const folder = await mkdtemp(join(tmpdir(), 'cpq-sync-export-'));
    dirs.push(folder);
    const fifo = join(folder, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const device = join(folder, 'stdout');
    await symlink('/dev/null', device);
    const manifested = join(folder, 'changes.jsonl');
    await mkdir(`${manifested}.manifest.json`);
    for (const [file, args] of [
      [fifo, ['changes', '--after', '0']],
      [device, ['snapshot']],
      [`${manifested}.manifest.json`, ['changes', '--after', '0']],
    ] as const) {
      const out = file.endsWith('.manifest.json') ? manifested : file;
      const ended = await exportTo([...args, '--out', out], { DATABASE_URL: h.t.url }, 'ignore');
      // A bad argument, exit code 2 (1, an internal error, before: review HT).
      expect(ended.code).toBe(2);
      expect(ended.stderr).toBe(
        `cpq-sync: ${file}: not a regular file (a pipe, a device or a folder), so it cannot be replaced; leave out --out to write to standard output\n`,
      );
    }
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect((await lstat(device)).isSymbolicLink()).toBe(true);
    expect((await readdir(folder)).sort()).toEqual(['changes.jsonl.manifest.json', 'fifo', 'stdout']);
    // A folder itself, and a file in a folder that does not exist: bad arguments too.
    const itself = await exportTo(['snapshot', '--out', folder], { DATABASE_URL: h.t.url }, 'ignore');
    expect({ code: itself.code, stderr: itself.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: ${folder}: not a regular file (a pipe, a device or a folder), so it cannot be replaced; leave out --out to write to standard output\n`,
    });
    const nowhere = join(folder, 'none', 'snap.csv');
    const missing = await exportTo(['snapshot', '--out', nowhere], { DATABASE_URL: h.t.url }, 'ignore');
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: cannot write ${nowhere}: there is no folder ${join(folder, 'none')}; create it, or choose another for --out\n`,
    });
    // A folder that is there, in a file system that makes no files: it was said to be no folder (review JB).
    const proc = await exportTo(['snapshot', '--out', '/proc/x.csv'], { DATABASE_URL: h.t.url }, 'ignore');
    expect({ code: proc.code, stderr: proc.stderr }).toEqual({
      code: 2,
      stderr:
        'cpq-sync: cannot write /proc/x.csv: cannot create a file in /proc (ENOENT: the folder is there, but its file system makes no new files), where it is written under a temporary name and renamed into place; choose a folder you can write for --out\n',
    });
  });

  it('SIGTERM, SIGINT or SIGHUP (a closed terminal) while an export is under way removes its partial file', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const folder = await mkdtemp(join(tmpdir(), 'cpq-sync-export-'));
    dirs.push(folder);
    const codes = { SIGTERM: 143, SIGINT: 130, SIGHUP: 129 } as const;
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      // The export waits for a lock the test holds: its partial file exists, nothing is finished.
      const holder = await h.t.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE cpq.users IN ACCESS EXCLUSIVE MODE');
        const child = spawn(process.execPath, [BIN, 'snapshot', '--out', join(folder, 'snap.csv')], {
          env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', DATABASE_URL: h.t.url },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const ended = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
        for (let i = 0; i < 200 && !(await readdir(folder)).some((f) => f.endsWith('.partial')); i++) await new Promise((r) => setTimeout(r, 50));
        expect((await readdir(folder)).some((f) => f.endsWith('.partial'))).toBe(true);
        child.kill(signal);
        expect(await ended).toBe(codes[signal]);
        expect(await readdir(folder)).toEqual([]);
        // One line, as every failure ends (review HK: nothing was printed).
        expect(stderr).toBe(`cpq-sync: stopped by ${signal}: ${join(folder, 'snap.csv')} was not written, nothing of it is left\n`);
      } finally {
        await holder.query('ROLLBACK');
        holder.release();
      }
    }
  });

  it("SIGKILL mid-write (no cleanup runs): the next export to the same file removes the partial file left, not a running writer's nor anything not its own", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const folder = await mkdtemp(join(tmpdir(), 'cpq-sync-export-'));
    dirs.push(folder);
    const file = join(folder, 'snap.csv');
    const partials = async () => (await readdir(folder)).filter((f) => f.startsWith('.snap.csv.') && f.endsWith('.partial')).sort();
    const until = async (test: (names: string[]) => boolean) => {
      for (let i = 0; i < 200 && !test(await partials()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(test(await partials()), (await partials()).join(', ')).toBe(true);
    };
    const snapshot = () => {
      const child = spawn(process.execPath, [BIN, 'snapshot', '--out', file], {
        env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', DATABASE_URL: h.t.url },
        stdio: 'ignore',
      });
      const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => resolve({ code, signal })),
      );
      return { child, ended };
    };
    // The exports wait for a lock the test holds: their partial files exist, nothing is finished.
    const holder = await h.t.pool.connect();
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await holder.query('ROLLBACK');
      holder.release();
    };
    const running: ReturnType<typeof snapshot>[] = [];
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE cpq.users IN ACCESS EXCLUSIVE MODE');
      const killed = snapshot();
      await until((names) => names.length === 1);
      const [left] = await partials();
      killed.child.kill('SIGKILL');
      expect(await killed.ended).toEqual({ code: null, signal: 'SIGKILL' });
      // Left behind, personal data readable by its owner only; its name says which process made it.
      expect(await partials()).toEqual([left]);
      expect((await stat(join(folder, left!))).mode & 0o777).toBe(0o600);
      const tag = /^\.snap\.csv\.([A-Za-z0-9._]+-(?:[0-9]+|x)-)([0-9]+)\.[0-9a-f]{24}\.partial$/.exec(left!);
      expect(tag?.[2], `${left} names the process that wrote it`).toBe(String(killed.child.pid));
      const owner = tag![1]!; // `<machine>-<pid namespace>-`
      const deadPid = String(killed.child.pid);

      // What the next export must not remove: a name of the dead process that is a link (to a file
      // of ours), a folder, another user's file, or another file's partial; one of a running process.
      const victim = join(folder, 'victim.txt');
      await writeFile(victim, 'precious\n', { mode: 0o600 });
      const hex = 'ab'.repeat(12);
      const kept = {
        link: `.snap.csv.${owner}${deadPid}.${'cd'.repeat(12)}.partial`,
        folder: `.snap.csv.${owner}${deadPid}.${'ef'.repeat(12)}.partial`,
        otherFile: `.other.csv.${owner}${deadPid}.${hex}.partial`,
        running: `.snap.csv.${owner}${String(process.pid)}.${hex}.partial`,
        readable: `.snap.csv.${owner}${deadPid}.${'01'.repeat(12)}.partial`,
        ...(process.getuid?.() === 0 ? { otherUser: `.snap.csv.${owner}${deadPid}.${'23'.repeat(12)}.partial` } : {}),
      };
      await symlink(victim, join(folder, kept.link));
      await mkdir(join(folder, kept.folder), { mode: 0o700 });
      await writeFile(join(folder, kept.otherFile), 'x', { mode: 0o600 });
      await writeFile(join(folder, kept.running), 'x', { mode: 0o600 });
      await writeFile(join(folder, kept.readable), 'x', { mode: 0o644 });
      if (kept.otherUser !== undefined) {
        await writeFile(join(folder, kept.otherUser), 'x', { mode: 0o600 });
        await chown(join(folder, kept.otherUser), 65534, 65534);
      }
      // The killed export's manifest, had it been killed while putting the pair in place.
      const manifestLeft = `.snap.csv.manifest.json.${owner}${deadPid}.${hex}.partial`;
      await writeFile(join(folder, manifestLeft), '{}', { mode: 0o600 });

      // The next export removes what the killed one left; a second one, while the first still
      // writes, leaves the first one's partial file alone.
      const writers = (names: string[]) => names.filter((n) => !Object.values(kept).includes(n) && n !== left && n !== manifestLeft);
      running.push(snapshot());
      await until((names) => writers(names).length === 1);
      expect(await partials(), "the killed export's partial files are gone").not.toContain(left);
      expect(await partials()).not.toContain(manifestLeft);
      const [first] = writers(await partials());
      running.push(snapshot());
      await until((names) => writers(names).length === 2);
      expect(await partials(), 'the running export keeps its partial file').toContain(first);
      await release();
      for (const { ended } of running) expect(await ended).toEqual({ code: 0, signal: null });
      expect((await readdir(folder)).sort()).toEqual(['snap.csv', 'snap.csv.manifest.json', 'victim.txt', ...Object.values(kept)].sort());
      expect(await readFile(victim, 'utf8')).toBe('precious\n');
      expect((await lstat(join(folder, kept.link))).isSymbolicLink()).toBe(true);
      expect((await readFile(file, 'utf8')).split('\n').filter(Boolean)).toHaveLength(4); // a header and 3 users
    } finally {
      await release();
      for (const { child, ended } of running) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await ended;
      }
    }
  });
});
