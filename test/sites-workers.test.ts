import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { CpqSimulator } from '../src/simulator/index.js';
import { Cleanups, gate, until } from './helpers/cli-process.js';
import { it } from './helpers/fixtures.js';

const EVERY_SECOND = '*/1 * * * * *';

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

interface RunRow {
  id: string;
  site: string;
  status: string;
  started_at: Date;
  finished_at: Date | null;
}

describe('many sites, many workers', () => {
  it('two schedule processes share three sites: each tick runs once, a slow site holds back no other, a killed worker leaves its site to the other', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    const names = ['alpha', 'beta', 'gamma'];
    const sims: CpqSimulator[] = [];
    for (let i = 0; i < 3; i++) {
      const sim = new CpqSimulator({ seed: i + 1, partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
      sims.push(sim);
      cleanups.push(() => sim.stop());
    }
    const urls = await Promise.all(sims.map((s) => s.start()));
    // beta answers nothing until released: its first run hangs mid-read, holding its lock.
    const betaHeld = gate();
    cleanups.push(betaHeld.open);
    sims[1]!.onRequest = () => betaHeld.promise;
    const dir = mkdtempSync(join(tmpdir(), 'cpq-sites-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sitesFile = join(dir, 'sites.json');
    writeFileSync(sitesFile, JSON.stringify(names.map((name, i) => ({ name, baseUrl: urls[i], cron: EVERY_SECOND }))));
    // SHUTDOWN_TIMEOUT: the SIGTERM at the end may stop runs, which roll back and record themselves
    // first; 5 s left a loaded CI little room before a forced exit 1 (the test wants exit 0).
    const env = { CPQ_SITES_FILE: sitesFile, DATABASE_URL: t.url, SYNC_SITE_CONCURRENCY: '2', SHUTDOWN_TIMEOUT: '20s' };
    const workers = [cleanups.spawn(['schedule'], env), cleanups.spawn(['schedule'], env)];

    const runs = () => t.query<RunRow>(`SELECT id::text, site, status, started_at, finished_at FROM cpq.sync_runs ORDER BY started_at, id`);
    const ofSite = async (site: string) => (await runs()).filter((r) => r.site === site);

    // beta's run is held; alpha and gamma go on succeeding meanwhile, run after run.
    await until('beta running', async () => (await ofSite('beta')).some((r) => r.status === 'running'));
    const betaStarted = (await ofSite('beta'))[0]!.started_at;
    await until('alpha and gamma synced twice while beta hangs', async () => {
      const done = (await runs()).filter((r) => r.status === 'succeeded' && r.started_at > betaStarted);
      return ['alpha', 'gamma'].every((site) => done.filter((r) => r.site === site).length >= 2);
    });
    // The worker that is not running beta claims beta's ticks too, and finds its lock held.
    await until('a tick of beta skipped for its lock', () =>
      workers.some((w) =>
        w.lines().some((l) => l.msg === 'run skipped: another worker holds the sync lock of this site and is syncing it' && l.site === 'beta'),
      ),
    );

    // The worker running beta dies without a word.
    const holder = workers.find((w) => w.lines().some((l) => l.msg === 'sync run started' && l.site === 'beta'))!;
    const other = workers.find((w) => w !== holder)!;
    holder.kill('SIGKILL');
    await holder.exited;
    betaHeld.open();

    // The other worker's next tick of beta: the dead run is marked abandoned, and beta syncs.
    await until('beta synced by the other worker', async () => (await ofSite('beta')).some((r) => r.status === 'succeeded'), 30_000);
    const beta = await ofSite('beta');
    expect(beta[0]).toMatchObject({ status: 'abandoned' });
    expect(other.lines().some((l) => l.msg === 'marked a dead run (left running, it ended without recording how) as abandoned' && l.site === 'beta')).toBe(
      true,
    );
    expect(await t.query(`SELECT count(*)::int AS n FROM cpq.users WHERE site = 'beta'`)).toEqual([{ n: 3 }]);

    other.kill('SIGTERM');
    expect((await other.exited).code).toBe(0);

    // Never two runs of one site at once, on any worker (an abandoned run has no end: when its process died is not known).
    for (const site of names) {
      const own = (await ofSite(site)).filter((r) => r.status !== 'running');
      for (let i = 1; i < own.length; i++) {
        const before = own[i - 1]!;
        expect(own[i]!.started_at.getTime(), `${site} run ${own[i]!.id}`).toBeGreaterThanOrEqual((before.finished_at ?? before.started_at).getTime());
        expect(before.finished_at === null, `${site} run ${before.id}`).toBe(before.status === 'abandoned');
      }
    }
    // Each claimed tick ran at most once: no more runs than claimed ticks (a skip for a held lock starts no run).
    const ticks = await t.query<{ site: string; n: number }>(`SELECT site, count(*)::int AS n FROM cpq.scheduled_ticks GROUP BY site ORDER BY site`);
    const started = (await runs()).reduce((m, r) => m.set(r.site, (m.get(r.site) ?? 0) + 1), new Map<string, number>());
    for (const { site, n } of ticks) expect(started.get(site) ?? 0, site).toBeLessThanOrEqual(n);
    // Both workers took ticks.
    const claimers = await t.query<{ n: number }>(`SELECT count(DISTINCT claimed_by)::int AS n FROM cpq.scheduled_ticks`);
    expect(claimers[0]!.n).toBe(2);
  });
});
