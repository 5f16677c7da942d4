import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { CpqSimulator } from '../src/simulator/index.js';
import { Cleanups, cli, gate, until, type CliProcess } from './helpers/cli-process.js';
import { expectChangeLogConsistent, expectReferencesResolve } from './helpers/db-equals-simulator.js';
import { it } from './helpers/fixtures.js';

/*
 * Review DZ: a `schedule` process paused (SIGSTOP: a frozen VM or container) in the middle of a
 * run keeps its site's lock and session; the other workers go on with the other sites and skip
 * that one, and when it resumes its run ends as any other (not abandoned, nothing run twice).
 * Meanwhile a warehouse polls `changes --after` through it all and receives every change once.
 */

const EVERY_SECOND = '*/1 * * * * *';

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

describe('many workers, one paused mid-run', () => {
  it('a worker paused holding a site keeps it; the others sync the rest and skip it; resumed, it finishes; the poller gets each change once', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    const names = ['alpha', 'beta', 'gamma'];
    const sims = names.map((_, i) => new CpqSimulator({ seed: i + 11, partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0, drift: false }));
    for (const sim of sims) cleanups.push(() => sim.stop());
    const urls = await Promise.all(sims.map((s) => s.start()));
    const [alpha, beta, gamma] = sims as [CpqSimulator, CpqSimulator, CpqSimulator];
    // beta answers nothing until released: its first run waits mid-read, holding its lock.
    const betaHeld = gate();
    cleanups.push(betaHeld.open);
    beta.onRequest = () => betaHeld.promise;
    const dir = mkdtempSync(join(tmpdir(), 'cpq-paused-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sitesFile = join(dir, 'sites.json');
    writeFileSync(sitesFile, JSON.stringify(names.map((name, i) => ({ name, baseUrl: urls[i], companies: '*', cron: EVERY_SECOND }))));
    // One site at a time per worker: the one running beta runs nothing else while it hangs.
    // SHUTDOWN_TIMEOUT: a run a SIGTERM stops rolls back and records itself first (1.3 s here at
    // load 14, for one worker of three); 5 s left a loaded CI little room before a forced exit 1.
    const env = { CPQ_SITES_FILE: sitesFile, DATABASE_URL: t.url, SYNC_SITE_CONCURRENCY: '1', SHUTDOWN_TIMEOUT: '20s', HTTP_PORT: '0', SYNC_STALE_AFTER: '4s' };
    const workers = [0, 1, 2].map(() => cleanups.spawn(['schedule'], env));

    // The warehouse polls throughout, loading a batch only on exit code 0.
    const received: string[] = [];
    let watermark = '0';
    const polling = { on: true };
    const poll = async () => {
      const out = await cli(['changes', '--after', watermark, '--format', 'jsonl'], { DATABASE_URL: t.url });
      if (out.code !== 0) return;
      const next = /^watermark: (\d+)$/m.exec(out.stderr);
      expect(next, out.stderr).not.toBeNull();
      for (const line of out.stdout.split('\n').filter(Boolean)) received.push((JSON.parse(line) as { change_id: string }).change_id);
      watermark = next![1]!;
    };
    const poller = (async () => {
      while (polling.on) await poll();
    })();

    const runs = (site: string) =>
      t.query<{ id: string; status: string; started_at: Date }>(
        `SELECT id::text, status, started_at FROM cpq.sync_runs WHERE site = $1 ORDER BY sync_runs.id`,
        [site],
      );
    const succeededSince = async (site: string, since: Date) => (await runs(site)).some((r) => r.status === 'succeeded' && r.started_at > since);
    await until('beta running', async () => (await runs('beta')).some((r) => r.status === 'running'), 30_000);
    // Waited for, not looked up once: a run logs 'sync run started' after its record is committed,
    // and the line can reach this process after the query above saw the record (holder undefined).
    const runsBeta = (w: CliProcess) => w.lines().some((l) => l.msg === 'sync run started' && l.site === 'beta');
    await until('the worker running beta to say so', () => workers.some(runsBeta), 30_000);
    const holder = workers.find(runsBeta)!;
    holder.kill('SIGSTOP');
    const paused = new Date();
    cleanups.push(() => holder.kill('SIGCONT'));
    const others = workers.filter((w) => w !== holder);

    // CPQ changes; the other two workers sync alpha and gamma, and skip beta, whose lock the paused process holds.
    alpha.addUser('_host');
    gamma.updateUser('_host', String(gamma.users('_host')[0]!.login), { firstName: 'Paused' });
    await until(
      'alpha and gamma synced while the holder is paused',
      async () => (await succeededSince('alpha', paused)) && (await succeededSince('gamma', paused)),
    );
    const skippedBeta = (w: CliProcess) =>
      w.lines().some((l) => l.msg === 'run skipped: another worker holds the sync lock of this site and is syncing it' && l.site === 'beta');
    await until('a tick of beta skipped for its lock', () => others.some(skippedBeta), 30_000);
    expect((await runs('beta')).map((r) => r.status)).toEqual(['running']);
    // Its run has been running longer than SYNC_STALE_AFTER: the others' /readyz say so, naming beta alone.
    const readyz = async (w: CliProcess) => {
      const port = (await w.waitForLine((l) => l.msg === 'health and metrics listening (/healthz, /readyz, /metrics)')).port;
      const res = await fetch(`http://127.0.0.1:${String(port)}/readyz`);
      return { status: res.status, body: (await res.json()) as { staleSites: string[] } };
    };
    await until(
      'beta stale on the other workers',
      async () => {
        const answers = await Promise.all(others.map(readyz));
        return answers.every((a) => a.status === 503 && a.body.staleSites.join() === 'beta');
      },
      30_000,
    );

    // Resumed, its run goes on and succeeds: it was never dead, so never abandoned.
    betaHeld.open();
    holder.kill('SIGCONT');
    await until('beta synced', async () => (await runs('beta')).some((r) => r.status === 'succeeded'), 30_000);
    expect((await runs('beta'))[0]!.status).toBe('succeeded');
    beta.addUser('_host');
    const edited = new Date();
    await until('the edit of beta synced', () => succeededSince('beta', edited), 30_000);

    // Every worker stops cleanly, within SHUTDOWN_TIMEOUT.
    polling.on = false;
    await poller;
    for (const w of workers) {
      const asked = Date.now();
      w.kill('SIGTERM');
      const out = await w.exited;
      expect(out.code, out.stderr).toBe(0);
      expect(Date.now() - asked).toBeLessThan(20_000);
    }
    await poll();

    // No run left running, none abandoned, none failed (a run the SIGTERMs stopped is interrupted); runs of a site never overlap.
    const all = await t.query<{ site: string; status: string; started_at: Date; finished_at: Date }>(
      `SELECT site, status, started_at, finished_at FROM cpq.sync_runs ORDER BY site, started_at`,
    );
    expect(all.filter((r) => r.status !== 'succeeded' && r.status !== 'interrupted')).toEqual([]);
    for (let i = 1; i < all.length; i++) {
      if (all[i]!.site === all[i - 1]!.site) expect(all[i]!.started_at.getTime()).toBeGreaterThanOrEqual(all[i - 1]!.finished_at.getTime());
    }
    // Each site's users are its CPQ's.
    for (const [i, sim] of sims.entries()) {
      const stored = await t.query<{ login: string }>(`SELECT login FROM cpq.users WHERE site = $1 AND deleted_at IS NULL ORDER BY login`, [names[i]]);
      expect(stored.map((r) => r.login).sort(), names[i]).toEqual(
        sim
          .users('_host')
          .map((u) => String(u.login))
          .sort(),
      );
    }
    await expectReferencesResolve(t);
    await expectChangeLogConsistent(t);
    // The poller received every change exactly once.
    const logged = await t.query<{ id: string }>(`SELECT id::text FROM cpq.user_changes ORDER BY user_changes.id`);
    expect([...received].sort()).toEqual(logged.map((r) => r.id).sort());
    expect(new Set(received).size).toBe(received.length);
  });
});
