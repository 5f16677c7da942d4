import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
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

  it('--out naming a pipe, a device (through a link, as /dev/stdout is) or, for the manifest, a folder is refused before anything is written', async ({
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
      expect(ended.code).not.toBe(0);
      expect(ended.stderr).toBe(
        `cpq-sync: ${file}: not a regular file (a pipe, a device or a folder), so it cannot be replaced; leave out --out to write to standard output\n`,
      );
    }
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect((await lstat(device)).isSymbolicLink()).toBe(true);
    expect((await readdir(folder)).sort()).toEqual(['changes.jsonl.manifest.json', 'fifo', 'stdout']);
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
          stdio: 'ignore',
        });
        const ended = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
        for (let i = 0; i < 200 && !(await readdir(folder)).some((f) => f.endsWith('.partial')); i++) await new Promise((r) => setTimeout(r, 50));
        expect((await readdir(folder)).some((f) => f.endsWith('.partial'))).toBe(true);
        child.kill(signal);
        expect(await ended).toBe(codes[signal]);
        expect(await readdir(folder)).toEqual([]);
      } finally {
        await holder.query('ROLLBACK');
        holder.release();
      }
    }
  });
});
