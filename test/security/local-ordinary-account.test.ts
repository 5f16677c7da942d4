import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, type Outcome } from '../helpers/cli-process.js';
import { createTestDatabase } from '../helpers/database.js';
import { freePort } from '../helpers/free-port.js';
import { othersMayRead } from '../../src/foreign-writer.js';
import { privateGroupIn } from '../../src/local-paths.js';

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

/** The built CLI run as nobody, in a working folder of its own (`cwd`, or a new one), with only the given environment (plus PATH and TMPDIR). */
async function asNobody(args: string[], env: Record<string, string>, cwd?: string): Promise<Outcome> {
  cwd ??= await folder(NOBODY, 0o755);
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
  it('check, before any data folder exists, fails the database step with the reason and fix the first run exits 6 with', async () => {
    const port = String(await freePort());
    const roots = await folder(0, 0o755);
    const own = await folder(NOBODY, 0o755);
    const file = join(own, 'a-file');
    await writeFile(file, '');
    await chown(file, NOBODY, NOBODY);
    const cpq = { CPQ_BASE_URL: `http://127.0.0.1:${await freePort()}`, CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'not-used', CPQ_MAX_RETRIES: '0' };
    // One it may not create, one under a file, a file in its place, and one there already that it may not write.
    for (const dataDir of [join(roots, 'data'), join(file, 'data'), file, roots]) {
      const first = await asNobody(['migrate'], { DATA_DIR: dataDir, EMBEDDED_PG_PORT: port });
      expect(first).toMatchObject({ code: 6, stdout: '' });
      const line = first.stderr.replace(/^cpq-sync: /, '').replace(/\n$/, '');
      const cut = line.indexOf('; ');
      const checked = await asNobody(['check', '--json'], { ...cpq, DATA_DIR: dataDir, EMBEDDED_PG_PORT: port });
      expect(checked.code).toBe(1);
      const report = JSON.parse(checked.stdout) as { database: { steps: { step: string; status: string; detail: string; fix: string }[] } };
      expect(report.database.steps.find((s) => s.step === 'database')).toEqual({
        step: 'database',
        status: 'fail',
        detail: `embedded Postgres in ${dataDir} does not exist yet, and the first run would fail (exit code 6): ${line.slice(0, cut)}`,
        fix: line.slice(cut + 2),
      });
    }
  });
  it("a data folder another account made (a run as root makes it the postgres account's): one line saying whose it is and what to do, exit code 6", async () => {
    const port = String(await freePort());
    for (const owner of [0, 12345]) {
      const dataDir = await folder(NOBODY, 0o755);
      const pg = join(dataDir, 'pg');
      await mkdir(pg, { mode: 0o700 });
      await chown(pg, owner, owner);
      for (const command of ['migrate', 'status']) {
        const out = await asNobody([command], { DATA_DIR: dataDir, EMBEDDED_PG_PORT: port });
        expect(out).toMatchObject({ code: 6, stdout: '' });
        expect(out.stderr).toBe(
          `cpq-sync: embedded Postgres: the data folder ${pg} belongs to ${owner === 0 ? 'root (uid 0)' : 'uid 12345'}, not to this user, nobody (uid 65534), and only its owner may run its server (as root, cpq-sync makes it postgres'); run cpq-sync as the account that made it, or set DATA_DIR to a folder of yours, or set DATABASE_URL\n`,
        );
      }
    }
    // On a path another account may change, that is what is said: no advice to run as its owner.
    const theirs = await folder(12345, 0o755);
    await mkdir(join(theirs, 'pg'), { mode: 0o700 });
    await chown(join(theirs, 'pg'), 12345, 12345);
    const planted = await asNobody(['migrate'], { DATA_DIR: theirs, EMBEDDED_PG_PORT: port });
    expect(planted).toMatchObject({ code: 6, stdout: '' });
    expect(planted.stderr).toBe(
      `cpq-sync: embedded Postgres: refusing the data folder ${join(theirs, 'pg')}: ${theirs} belongs to uid 12345, so another local user could point it elsewhere; set DATA_DIR to a folder only you (or root) can change, or set DATABASE_URL\n`,
    );
  });
});

describe.skipIf(!isRoot)('an ordinary account (nobody) and --out (skipped unless root: only root can run the CLI as nobody)', () => {
  it('a folder it cannot write, or none: one line naming the file and the folder, not the temporary name', async () => {
    const t = await createTestDatabase();
    try {
      const roots = await folder(0, 0o755);
      for (const [args, file] of [
        [['snapshot'], join(roots, 'snap.csv')],
        [['changes', '--since', '2020-01-01'], join(roots, 'changes.jsonl')],
      ] as const) {
        const out = await asNobody([...args, '--out', file], { DATABASE_URL: t.url });
        expect(out.code).toBe(2);
        expect(out.stderr).toBe(
          `cpq-sync: cannot write ${file}: cannot create a file in ${roots} (EACCES), where it is written under a temporary name and renamed into place; choose a folder you can write for --out\n`,
        );
      }
      const missing = join(roots, 'none', 'snap.csv');
      const out = await asNobody(['snapshot', '--out', missing], { DATABASE_URL: t.url });
      // A bad argument, exit code 2 (1, an internal error, before: review HT).
      expect(out.code).toBe(2);
      expect(out.stderr).toBe(`cpq-sync: cannot write ${missing}: there is no folder ${join(roots, 'none')}; create it, or choose another for --out\n`);
    } finally {
      await t.drop();
    }
  });
});

describe.skipIf(!isRoot)('an ordinary account (nobody) and ALERT_WEBHOOK_URL_FILE (skipped unless root: only root can run the CLI as nobody)', () => {
  it('one another local user could write is refused, one line, exit code 2, and no alert leaves; its own is read', async () => {
    // The listener a member of the file's group would point the alerts to.
    const received: string[] = [];
    const server = createServer((req, res) => {
      received.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/theirs`;
      const dir = await folder(NOBODY, 0o755);
      const file = join(dir, 'webhook-url');
      const send = () => asNobody(['alerts', 'test'], { ALERT_WEBHOOK_URL_FILE: file, ALERT_WEBHOOK_SECRET: 'k' });
      // nogroup is no private group of nobody's (not named so, and the primary group of other accounts): its members may write it.
      for (const [uid, mode, problem] of [
        [NOBODY, 0o664, 'can be written by its group (mode 664)'],
        [NOBODY, 0o666, 'can be written by every user (mode 666)'],
        [12345, 0o644, 'is owned by uid 12345, not by this user (65534) or root'],
      ] as const) {
        await rm(file, { force: true });
        await writeFile(file, `${url}\n`);
        await chown(file, uid, NOBODY);
        await chmod(file, mode);
        const out = await send();
        expect(out).toMatchObject({ code: 2, stdout: '' });
        expect(out.stderr).toBe(
          `cpq-sync: invalid configuration: ALERT_WEBHOOK_URL_FILE: the file it names ${problem}: refusing to read it, since whoever wrote it chooses where every alert is sent; make it yours and not writable by others (chown, chmod go-w)\n`,
        );
      }
      expect(received).toEqual([]);
      await chmod(file, 0o644);
      await chown(file, NOBODY, NOBODY);
      const own = await send();
      expect(own.code).toBe(0);
      expect(received).toEqual(['/theirs']);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});

describe.skipIf(!isRoot)('an ordinary account (nobody) and a .env it may not read (skipped unless root: only root can run the CLI as nobody)', () => {
  it('is one line naming the folder it is in (the working directory is not always the one meant), exit code 2', async () => {
    const cwd = await folder(NOBODY, 0o755);
    await writeFile(join(cwd, '.env'), 'SYNC_CRON=0 3 * * *\n', { mode: 0o600 });
    const out = await asNobody(['status'], {}, cwd);
    expect(out).toMatchObject({ code: 2, stdout: '' });
    expect(out.stderr).toBe(
      `cpq-sync: invalid configuration: .env (in ${cwd}): cannot be opened (EACCES); run cpq-sync as the account that made it, or chown the file to this account\n`,
    );
  });
});

describe.skipIf(!isRoot)('an ordinary account (nobody) and verify --file (skipped unless root: only root can run the CLI as nobody)', () => {
  it("an export and manifest it may not read (0600, another account's): said so, not that the manifest is no JSON", async () => {
    const dir = await folder(0, 0o755);
    const file = join(dir, 'snap.csv');
    await writeFile(file, 'login\n', { mode: 0o600 });
    await writeFile(`${file}.manifest.json`, '{}\n', { mode: 0o600 });
    const out = await asNobody(['verify', '--file', file], {});
    expect(out).toMatchObject({ code: 2, stdout: '' });
    expect(out.stderr).toBe(
      `cpq-sync: cannot check ${file}: ${file}.manifest.json cannot be read (EACCES): run verify as an account that may read the file and its manifest\n`,
    );
  });
});

describe('who else may read a file holding a secret (othersMayRead: a .env or sites file warned about)', () => {
  it('every user, or a group other than your private one; not your private group alone (umask 002 and chmod 660), not the owner alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-readers-'));
    dirs.push(dir);
    const file = join(dir, 'secret');
    await writeFile(file, 'x');
    const readers = async (mode: number, privateGroups: number[]) => {
      await chmod(file, mode);
      return othersMayRead(statSync(file), privateGroups);
    };
    const gid = statSync(file).gid;
    expect(await readers(0o600, [])).toBe(false);
    expect(await readers(0o604, [gid])).toBe(true);
    expect(await readers(0o640, [])).toBe(true);
    expect(await readers(0o640, [gid + 1])).toBe(true);
    expect(await readers(0o660, [gid])).toBe(false);
  });
});

describe("your private group (ownPrivateGroup: what umask 002 makes group-writable is trusted only in it), from /etc/passwd and /etc/group's text", () => {
  const passwd = ['root:x:0:0:root:/root:/bin/bash', 'op:x:1001:1001::/home/op:/bin/sh', 'other:x:1002:1002::/home/other:/bin/sh', ''].join('\n');
  const op = (group: string, accounts = passwd) => privateGroupIn(1001, 1001, accounts, group);

  it('is the group named after the user, with no other member: taken', () => {
    expect(op('root:x:0:\nop:x:1001:\nother:x:1002:\n')).toEqual([1001]);
    expect(op('op:x:1001:op\n')).toEqual([1001]);
  });

  it('is not a group another account is a member of, or has as its primary group', () => {
    expect(op('op:x:1001:other\n')).toEqual([]);
    expect(op('op:x:1001:', `${passwd}svc:x:1003:1001::/:/bin/sh\n`)).toEqual([]);
  });

  it("is not a group /etc/group lacks (a directory's, or one only /etc/passwd gives) or names otherwise: refused, not guessed", () => {
    expect(op('other:x:1002:\n')).toEqual([]);
    expect(op('ops:x:1001:\n')).toEqual([]);
    expect(privateGroupIn(1001, 1001, '', 'op:x:1001:\n')).toEqual([]);
  });

  it('is not a group a second name of the same gid (groupadd -o) lists another member of', () => {
    expect(op('op:x:1001:\nalias:x:1001:other\n')).toEqual([]);
    expect(op('alias:x:1001:other\nop:x:1001:\n')).toEqual([]);
  });
});
