import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, type Outcome } from '../helpers/cli-process.js';
import { freePort } from '../helpers/free-port.js';

/*
 * Most operators run cpq-sync as an ordinary account (the Docker image as uid 1000, a systemd
 * unit as a service account), while the suite runs as root. Here the CLI runs as `nobody`
 * (65534:65534, which Debian always has) and meets what such an account meets: a DATA_DIR or
 * TMPDIR it may not write, a data folder a run as root made. Each is one line naming the setting
 * and the folder, and what to do; not a bare EACCES with exit code 1 (review DV).
 */

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A folder of `uid`'s with `mode`, in a folder of root's every user may enter. */
async function folder(uid: number, mode: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-ordinary-'));
  dirs.push(dir);
  await chmod(dir, mode);
  await chown(dir, uid, uid);
  return dir;
}

/** The built CLI run as nobody, in a working folder of its own, with only the given environment (plus PATH and TMPDIR). */
async function asNobody(args: string[], env: Record<string, string>): Promise<Outcome> {
  const cwd = await folder(NOBODY, 0o755);
  const child = spawn(process.execPath, [BIN, ...args], {
    uid: NOBODY,
    gid: NOBODY,
    cwd,
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', TMPDIR: tmpdir(), ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe.skipIf(!isRoot)('an ordinary account (nobody) and the embedded Postgres (skipped unless root: only root can run the CLI as nobody)', () => {
  it('a DATA_DIR it cannot create, a TMPDIR it cannot write, a DATA_DIR it cannot write: one line naming the setting and the folder, exit code 6', async () => {
    const roots = await folder(0, 0o755);
    const port = String(await freePort());

    const uncreatable = join(roots, 'data');
    const created = await asNobody(['migrate'], { DATA_DIR: uncreatable, EMBEDDED_PG_PORT: port });
    expect(created).toMatchObject({ code: 6, stdout: '' });
    expect(created.stderr).toBe(
      `cpq-sync: embedded Postgres: cannot create the data folder ${uncreatable} (DATA_DIR) (EACCES); set DATA_DIR to a folder you can write, or set DATABASE_URL\n`,
    );

    const own = await folder(NOBODY, 0o755);
    const socket = await asNobody(['migrate'], { DATA_DIR: join(own, 'data'), EMBEDDED_PG_PORT: port, TMPDIR: roots });
    expect(socket).toMatchObject({ code: 6, stdout: '' });
    expect(socket.stderr).toBe(
      `cpq-sync: embedded Postgres: cannot create its private socket folder in ${roots} (TMPDIR) (EACCES); set TMPDIR to a folder you can write (/tmp is fine), or set DATABASE_URL\n`,
    );

    // root's, and there already: the first file the start writes there is refused.
    const unwritable = await asNobody(['migrate'], { DATA_DIR: roots, EMBEDDED_PG_PORT: port });
    expect(unwritable).toMatchObject({ code: 6, stdout: '' });
    expect(unwritable.stderr).toBe(
      `cpq-sync: embedded Postgres initialisation failed in ${join(roots, 'pg')}: cannot write in ${roots} (DATA_DIR) (EACCES); set DATA_DIR to a folder you can write, or set DATABASE_URL\n`,
    );
  });
});
