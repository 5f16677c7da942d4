import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CpqSimulator } from '../../src/simulator/index.js';
import { Cleanups, cli } from '../helpers/cli-process.js';
import { freePort } from '../helpers/free-port.js';

/*
 * Review CS: as root, the data folder is the postgres account's (any superuser session of any
 * cluster that account runs can write there, COPY … TO PROGRAM). The owner file is written by root
 * with writeFile, following a link planted in its place: the file it names is truncated and
 * overwritten (README, "The embedded Postgres and other local users": a planted link must not
 * make root change what it names).
 */
const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

describe('owner file', () => {
  it.runIf(process.getuid?.() === 0)(
    'a link planted as cpq-sync-owner.pid does not make root overwrite its target',
    async () => {
      const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
      await sim.start();
      cleanups.push(() => sim.stop());
      const dir = mkdtempSync(join(tmpdir(), 'cpq-rev-cs-link-'));
      chmodSync(dir, 0o755);
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const dataDir = join(dir, 'data');
      const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
      const first = await cli(['run'], env);
      expect(first.code, first.stderr).toBe(0);
      const victim = join(dir, 'root-owned-file'); // stands for /etc/shadow, root's crontab, …
      writeFileSync(victim, 'precious\n', { mode: 0o600 });
      rmSync(join(dataDir, 'pg', 'cpq-sync-owner.pid'), { force: true });
      symlinkSync(victim, join(dataDir, 'pg', 'cpq-sync-owner.pid'));
      const status = await cli(['status'], env);
      expect(status.code, status.stderr).toBe(0);
      expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    },
    120_000,
  );

  it("a FIFO planted as the previous release's cpq-sync-owner.pid does not hold up the next start", async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const dir = mkdtempSync(join(tmpdir(), 'cpq-owner-fifo-'));
    chmodSync(dir, 0o755);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'data');
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) };
    const first = await cli(['run'], env);
    expect(first.code, first.stderr).toBe(0);
    // As root the folder is the postgres account's, which may put a FIFO there: a read of it waits for a writer that never comes.
    execFileSync('mkfifo', [join(dataDir, 'pg', 'cpq-sync-owner.pid')]);
    const status = cleanups.spawn(['status'], env);
    const outcome = await Promise.race([status.exited, new Promise<undefined>((wake) => setTimeout(() => wake(undefined), 30_000))]);
    expect(outcome, '`status` still waits after 30 s').toBeDefined();
    expect(outcome!.code, outcome!.stderr).toBe(0);
  }, 120_000);
});
