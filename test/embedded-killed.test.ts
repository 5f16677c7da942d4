import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ownerTag, processRuns } from '../src/process-runs.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { BIN, Cleanups, cli } from './helpers/cli-process.js';
import { freePort } from './helpers/free-port.js';
import { holdRequests } from './helpers/scripted-pages.js';

const PAUSE_AT_OWNER_FILE = fileURLToPath(new URL('./fixtures/pause-at-owner-file.mjs', import.meta.url));

/*
 * `run` with the embedded Postgres (no DATABASE_URL), killed outright mid-run (SIGKILL, the
 * out-of-memory killer): the README promises that the next run starts from the last good state.
 * The server is a child of the killed process and outlives it, holding the data folder.
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

/**
 * The lines of the data folder's postmaster.pid, or undefined while there is none or its server
 * has not written its number in it yet: postgres creates the file (O_EXCL) and writes its lines
 * with a later write(), and a busy machine may run a reader in between. That empty file's "" was
 * taken for the killed-while-starting test's orphan: process 0, which kill(0, 0) finds (this
 * process's group) and no /proc entry gives a start time, so the orphan "still ran".
 */
function postmasterLines(dataDir: string): string[] | undefined {
  let lines;
  try {
    lines = readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  return lines.length > 1 && /^[0-9]+$/.test(lines[0]!) ? lines : undefined;
}

/** The owner files in the data folder (cpq-sync-owner…): one per server a live process started, and what killed ones left. */
function ownerFiles(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'pg')).filter((name) => name.startsWith('cpq-sync-owner'));
}

/** A DATA_DIR in a world-readable temporary folder (the server runs as user postgres when we are root), removed after the test with any server of it (this test started it). */
function dataFolder(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const dataDir = join(dir, 'data');
  cleanups.push(() => {
    const pid = Number(postmasterLines(dataDir)?.[0]);
    if (pid > 0 && processRuns(pid)) process.kill(pid, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  });
  return dataDir;
}

/** A simulator of 30 users, synced once by `run` into a DATA_DIR of its own (dataFolder): the start of the tests of two commands on one folder. */
async function syncedFolder(prefix: string): Promise<{ sim: CpqSimulator; dataDir: string; env: Record<string, string> }> {
  const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 });
  await sim.start();
  cleanups.push(() => sim.stop());
  const dataDir = dataFolder(prefix);
  const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), CPQ_PAGE_SIZE: '10' };
  expect((await cli(['run'], env)).code).toBe(0);
  return { sim, dataDir, env };
}

/** A full `run` (every page, so its second request is held) held mid-sync: its server holds the folder until `held.release()`. */
async function heldRun(sim: CpqSimulator, env: Record<string, string>) {
  const held = holdRequests(sim, 1);
  cleanups.push(held.release);
  const run = cleanups.spawn(['run', '--full'], env);
  await Promise.race([
    held.reached,
    run.exited.then((o) => {
      throw new Error(`the run ended first: ${o.code} ${o.stdout.slice(-1500)} ${o.stderr}`);
    }),
  ]);
  return { run, held };
}

describe('embedded Postgres and a killed run', () => {
  it('after SIGKILL mid-run, the next run starts the server again and syncs (no orphaned postmaster keeps the data folder)', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dataDir = dataFolder('cpq-embedded-killed-');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), CPQ_PAGE_SIZE: '10' };

    const first = await cli(['run'], env);
    expect(first.code, first.stderr).toBe(0);
    sim.updateUser('_host', String(sim.users('_host')[0]!.login), { lastName: 'Edited' });

    const { run, held } = await heldRun(sim, env);
    await run.waitForLine((l) => l.msg === 'page read');
    // The killed process's private socket folder, which its server keeps until stopped.
    const socketDir = postmasterLines(dataDir)![4]!.trim();
    expect(existsSync(socketDir)).toBe(true);
    run.kill('SIGKILL');
    await run.exited;
    held.release();
    sim.onRequest = undefined;

    const again = await cli(['run'], env);
    expect(again.stderr, 'the next run').toBe('');
    expect(again.code, 'the next run').toBe(0);
    expect(again.stdout).toContain('marked a dead run (left running, it ended without recording how) as abandoned');
    expect(existsSync(socketDir), "the orphan's socket folder").toBe(false);
    const status = await cli(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('"abandoned"');
  }, 120_000);

  it('Ctrl-C at a terminal (SIGINT to the whole process group) mid-run: the run rolls back, is recorded interrupted, and exits 130 at once', async () => {
    const { sim, dataDir, env } = await syncedFolder('cpq-embedded-ctrl-c-');
    sim.updateUser('_host', String(sim.users('_host')[0]!.login), { lastName: 'Edited' });
    const held = holdRequests(sim, 1);
    cleanups.push(held.release);
    // As a shell runs a command in the foreground: the group the terminal's Ctrl-C signals.
    const run = cleanups.spawn(['run', '--full'], env, { detached: true });
    await held.reached;
    await run.waitForLine((l) => l.msg === 'page read');
    const started = Date.now();
    process.kill(-run.child.pid!, 'SIGINT');
    held.release();
    const outcome = await run.exited;
    // Reached by the same signal, the server stopped first: the run waited out SHUTDOWN_TIMEOUT
    // (30 s) trying to record its failure, exited 1, and was left recorded `running`.
    expect(outcome.code, outcome.stdout.slice(-1500) + outcome.stderr).toBe(130);
    expect(Date.now() - started, 'ms to exit').toBeLessThan(10_000);
    expect(postmasterLines(dataDir), 'the server stopped with the command').toBeUndefined();
    const status = await cli(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    const runs = (JSON.parse(status.stdout) as { sites: { runs: { status: string; presumedDead?: boolean }[] }[] }).sites[0]!.runs;
    expect(runs[0]).toMatchObject({ status: 'interrupted' });
  }, 120_000);

  it('killed while its server starts (before it is ready), the next run stops that server and syncs', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dataDir = dataFolder('cpq-embedded-starting-');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
    const first = await cli(['run'], env);
    expect(first.code, first.stderr).toBe(0);

    // The next start: killed the moment its server takes the folder, long before it is ready.
    const run = cleanups.spawn(['run'], env);
    let lines: string[] | undefined;
    while ((lines = postmasterLines(dataDir)) === undefined && run.child.exitCode === null) await new Promise((wake) => setTimeout(wake, 1));
    run.kill('SIGKILL');
    await run.exited;
    expect(lines, 'the server had taken the folder').toBeDefined();
    // Usually it is not ready yet, and outlives the killed process; it may also end by itself (a log
    // line written to the killed process's closed pipe). Either way the next run must find the folder usable.
    const orphan = Number(lines![0]);
    // Its start time too: once it has ended and been reaped, a busy machine may give its number to
    // another process (pid_max is 32768 here).
    const orphanStart = startTimeOf(orphan);

    const again = await cli(['run'], env);
    expect(again.stderr, 'the next run').toBe('');
    expect(again.code, 'the next run').toBe(0);
    expect(processRuns(orphan) && startTimeOf(orphan) === orphanStart, 'the orphan (a zombie, where nothing reaps it, has ended)').toBe(false);
  }, 120_000);

  it('killed after spawning its server and before writing the owner file that names it, leaves no server: the next run syncs', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dataDir = dataFolder('cpq-embedded-unowned-');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
    expect((await cli(['run'], env)).code).toBe(0);

    // The next start held at the owner file's write (a busy machine's pause there), and killed in it.
    const mark = join(dataDir, '..', 'paused');
    const run = cleanups.spawn(['run'], { ...env, NODE_OPTIONS: `--import=${PAUSE_AT_OWNER_FILE}`, PAUSE_MARK_FILE: mark, PAUSE_MS: '30000' });
    while (!existsSync(mark) && run.child.exitCode === null) await new Promise((wake) => setTimeout(wake, 5));
    expect(existsSync(mark), 'the start reached the owner file').toBe(true);
    // Time for a server started at once to take the folder, as one did.
    await new Promise((wake) => setTimeout(wake, 2000));
    expect(postmasterLines(dataDir), 'a server took the folder before its owner file named it').toBeUndefined();
    run.kill('SIGKILL');
    await run.exited;

    const again = await cli(['run'], env);
    expect(again.stderr, 'the next run').toBe('');
    expect(again.code, 'the next run').toBe(0);
  }, 120_000);

  it('two commands starting on one folder at once: the server that takes it is named by its starter, and once that starter is killed the next run stops it', async () => {
    const { sim, dataDir, env } = await syncedFolder('cpq-embedded-two-starts-');

    // `status` spawns its server, which waits for its owner file: held there (a busy machine's
    // pause), having found no server in the folder.
    const mark = join(dataDir, '..', 'paused');
    const go = join(dataDir, '..', 'go');
    const status = cleanups.spawn(['status'], {
      ...env,
      NODE_OPTIONS: `--import=${PAUSE_AT_OWNER_FILE}`,
      PAUSE_MARK_FILE: mark,
      PAUSE_UNTIL_FILE: go,
      PAUSE_MS: '60000',
    });
    while (!existsSync(mark) && status.child.exitCode === null) await new Promise((wake) => setTimeout(wake, 5));
    expect(existsSync(mark), 'the start reached the owner file').toBe(true);
    // Meanwhile `run` starts: its server takes the folder, and the run is held mid-sync.
    const { run, held } = await heldRun(sim, env);
    await run.waitForLine((l) => l.msg === 'page read');
    const server = Number(postmasterLines(dataDir)![0]);
    // `status` goes on: its server finds the folder held and exits, and so does `status`.
    writeFileSync(go, '');
    const second = await status.exited;
    expect(second.code, second.stderr).toBe(6);
    expect(second.stderr).toContain('postmaster.pid');
    expect(Number(postmasterLines(dataDir)![0]), "the run's server holds the folder").toBe(server);
    const left = ownerFiles(dataDir);
    run.kill('SIGKILL');
    await run.exited;
    held.release();
    sim.onRequest = undefined;

    const again = await cli(['run'], env);
    expect(again.stderr, `the next run (owner files left by the two: ${left.join(', ') || 'none'})`).toBe('');
    expect(again.code, 'the next run').toBe(0);
    expect(processRuns(server), "the killed run's server").toBe(false);
    // The killed run's record went with its server; `status`'s with its failed start; the last run's at its stop.
    expect(ownerFiles(dataDir)).toEqual([]);
  }, 120_000);

  it('a command started while another uses the folder fails at once with one line naming that command (exit code 7), and runs once it has ended', async () => {
    const { sim, dataDir, env } = await syncedFolder('cpq-embedded-in-use-');
    const { run, held } = await heldRun(sim, env);
    const server = Number(postmasterLines(dataDir)![0]);
    const line = `cpq-sync: embedded Postgres: the data folder ${join(dataDir, 'pg')} is in use: another cpq-sync command (process ${String(run.child.pid)}) is using it, with its server (process ${String(server)}); one command at a time uses the embedded Postgres: run this one once that one has ended, or set DATABASE_URL to a Postgres server commands can share\n`;
    for (const command of [['status'], ['run']]) {
      const second = await cli(command, env);
      expect(second.stderr, command[0]).toBe(line);
      expect(second.code, command[0]).toBe(7);
    }
    held.release();
    const first = await run.exited;
    expect(first.code, first.stderr).toBe(0);
    expect((await cli(['status'], env)).code, 'status once the run ended').toBe(0);
  }, 120_000);

  it("an orphan named by the previous release's one owner file (cpq-sync-owner.pid) is stopped by the next run", async () => {
    const { sim, dataDir, env } = await syncedFolder('cpq-embedded-legacy-owner-');
    const { run, held } = await heldRun(sim, env);
    await run.waitForLine((l) => l.msg === 'page read');
    const server = Number(postmasterLines(dataDir)![0]);
    run.kill('SIGKILL');
    await run.exited;
    held.release();
    sim.onRequest = undefined;
    // What that release left: its one file, "<starter> <server>", and no record of this one.
    const pg = join(dataDir, 'pg');
    for (const name of ownerFiles(dataDir)) rmSync(join(pg, name));
    writeFileSync(join(pg, 'cpq-sync-owner.pid'), `${String(run.child.pid)} ${String(server)}\n`);

    const again = await cli(['run'], env);
    expect(again.stderr, 'the next run').toBe('');
    expect(again.code, 'the next run').toBe(0);
    expect(processRuns(server), "the killed run's server").toBe(false);
    expect(ownerFiles(dataDir), 'the stale file of the previous release').toEqual([]);
  }, 120_000);

  it('a stale postmaster.pid naming another live process (a reboot reused its number) is not signalled', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dir = mkdtempSync(join(tmpdir(), 'cpq-embedded-stale-'));
    chmodSync(dir, 0o755);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'data');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
    const first = await cli(['run'], env);
    expect(first.code, first.stderr).toBe(0);
    // Stopped cleanly, then a stale lock file as a machine that lost power leaves it, naming a
    // process that now runs something else, and an owner file naming a process gone.
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    cleanups.push(() => bystander.kill('SIGKILL'));
    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((done) => gone.on('exit', done));
    writeFileSync(join(dataDir, 'pg', 'postmaster.pid'), `${String(bystander.pid)}\n${join(dataDir, 'pg')}\n0\n1\n/tmp\n\n`);
    writeFileSync(join(dataDir, 'pg', 'cpq-sync-owner.pid'), `${String(gone.pid)}\n`);
    await cli(['run'], env);
    expect(processRuns(bystander.pid!)).toBe(true);
    expect(bystander.exitCode).toBeNull();
  }, 120_000);
});

/** When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or undefined when none runs. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

describe('embedded Postgres and a first start killed during initdb', () => {
  it("a first `run` killed (SIGKILL to its process group) as soon as initdb wrote PG_VERSION: the next run makes a working cluster and removes the killed start's leftover, not a live start's", async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dataDir = dataFolder('cpq-embedded-initdb-killed-');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
    // What a start still making its cluster holds: named by a process that runs (this one), kept.
    mkdirSync(dataDir, { recursive: true });
    const live = `pg.initdb-${ownerTag()}-0123456789ab`;
    mkdirSync(join(dataDir, live));
    writeFileSync(join(dataDir, live, 'PG_VERSION'), '17\n');

    // As a shell runs it: initdb and its postgres children die with it.
    const first = cleanups.spawn(['run'], env, { detached: true });
    const started = () => readdirSync(dataDir).some((name) => name !== live && name.startsWith('pg') && existsSync(join(dataDir, name, 'PG_VERSION')));
    // Polled closely: initdb writes PG_VERSION at once, then works for a second or more.
    for (let waited = 0; !started(); waited += 10) {
      if (waited > 60_000 || first.child.exitCode !== null) throw new Error(`initdb never started: ${first.stderr}`);
      await new Promise((wake) => setTimeout(wake, 10));
    }
    process.kill(-first.child.pid!, 'SIGKILL');
    await first.exited;

    // Before, the half-made cluster in DATA_DIR/pg (PG_VERSION, no password file) was taken for an
    // earlier release's folder: "password upgrade … failed … could not open file …/global/pg_control".
    const again = await cli(['run'], env);
    expect(again.stderr, 'the next run').toBe('');
    expect(again.code, 'the next run').toBe(0);
    expect(readdirSync(dataDir).sort()).toEqual([live, 'pg'].sort());
    for (const file of ['PG_VERSION', 'cpq-sync-password', join('global', 'pg_control')]) expect(existsSync(join(dataDir, 'pg', file)), file).toBe(true);
    const status = await cli(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('"succeeded"');
  }, 120_000);
});

describe('embedded Postgres in a DATA_DIR/pg that is a bind mount of the same filesystem', () => {
  // A mount needs root and a mount namespace of the test's own (unshare), so that nothing outside sees it.
  const mountable = process.getuid?.() === 0 && spawnSync('unshare', ['-m', '--propagation', 'private', 'true']).status === 0;
  it.skipIf(!mountable)(
    'the first migrate makes the cluster in it, as before (skipped unless root may make a mount namespace: unshare -m): rename cannot replace a mount point',
    async () => {
      const dataDir = dataFolder('cpq-embedded-bind-mount-');
      const volume = join(dataDir, '..', 'volume');
      mkdirSync(join(dataDir, 'pg'), { recursive: true, mode: 0o755 });
      mkdirSync(volume, { mode: 0o755 });
      // The volume's device is DATA_DIR's (a bind mount, a Kubernetes subPath): a device check cannot tell it is a mount.
      const out = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$VOLUME" "$DATA_DIR/pg" && exec "$NODE" "$BIN" migrate'], {
        env: {
          PATH: process.env.PATH,
          VOLUME: volume,
          DATA_DIR: dataDir,
          EMBEDDED_PG_PORT: String(await freePort()),
          NODE: process.execPath,
          BIN,
        },
        encoding: 'utf8',
        timeout: 120_000,
      });
      // Before: "embedded Postgres initialisation failed in …/pg: EBUSY: resource busy or locked, rename …".
      expect({ status: out.status, stderr: out.stderr }).toEqual({ status: 0, stderr: '' });
      expect(readdirSync(volume)).toEqual(expect.arrayContaining(['PG_VERSION', 'cpq-sync-password']));
      expect(readdirSync(join(dataDir, '..')).filter((name) => name.includes('.initdb-'))).toEqual([]);
    },
    150_000,
  );
});
