import { describe, expect, test } from 'vitest';
import { runCheck } from '../src/check/index.js';
import { loadConfig } from '../src/config.js';
import { SyncError } from '../src/errors.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import type { RunOptions } from '../src/sync/run-types.js';
import { siteCpqUrl } from '../src/config.js';
import { cli } from './helpers/cli-process.js';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';
import { snapshotTables } from './helpers/harness.js';

/** A second CPQ (another simulator, other users) that `h`'s site may be pointed at. */
async function otherCpq(): Promise<{ sim: CpqSimulator; url: string }> {
  const sim = new CpqSimulator({ seed: 99, usersPerCompany: 7 });
  return { sim, url: await sim.start() };
}

/** Runs `h`'s site against `baseUrl` instead of its own simulator; the run's error, or undefined. */
async function syncFrom(h: Harness, baseUrl: string, options: RunOptions = {}, env: Record<string, string> = {}): Promise<SyncError | undefined> {
  const config = loadConfig({ CPQ_BASE_URL: baseUrl, DATABASE_URL: h.t.url, ...env });
  try {
    await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, options);
    return undefined;
  } catch (err) {
    if (err instanceof SyncError) return err;
    throw err;
  }
}

async function recordedUrl(h: Harness): Promise<string | null> {
  const [row] = await h.t.query<{ cpq_url: string | null }>(`SELECT cpq_url FROM cpq.sites WHERE name = 'default'`);
  return row!.cpq_url;
}

describe('the CPQ a site was synced from (cpq.sites.cpq_url)', () => {
  test("is the REST API's root as URL spells it: base URL and CPQ_PATH_PREFIX, host in lower case without a trailing dot, no default port, no trailing slash", () => {
    expect(siteCpqUrl('HTTPS://CPQ.Example.COM:443/')).toBe('https://cpq.example.com');
    expect(siteCpqUrl('https://cpq.example.com.')).toBe('https://cpq.example.com');
    // /cpq in the base URL or in CPQ_PATH_PREFIX: the same root (review CD).
    expect(siteCpqUrl('https://cpq.example.com/cpq/', '')).toBe(siteCpqUrl('https://cpq.example.com', '/cpq'));
    expect(siteCpqUrl('https://cpq.example.com', '/cpq')).toBe('https://cpq.example.com/cpq');
    expect(siteCpqUrl('http://[0:0::1]:8080/')).toBe('http://[::1]:8080');
    expect(siteCpqUrl('https://cpq.example.com:8443//')).toBe('https://cpq.example.com:8443');
    expect(siteCpqUrl('https://proxy.example.com/site-a/')).toBe('https://proxy.example.com/site-a');
    expect(siteCpqUrl('https://proxy.example.com/site-a')).not.toBe(siteCpqUrl('https://proxy.example.com/site-b'));
  });

  it('is recorded by the first successful run; a run pointed at another CPQ fails before its first request, recorded, the database untouched', async ({
    startHarness,
  }) => {
    const h = await startHarness();
    await h.sync();
    expect(await recordedUrl(h)).toBe(siteCpqUrl(h.config.sites[0]!.cpq.baseUrl));
    const before = await snapshotTables(h.t);
    const other = await otherCpq();
    try {
      const error = await syncFrom(h, other.url);
      expect(error?.kind).toBe('config');
      expect(error?.message).toContain(`site default was synced from ${siteCpqUrl(h.config.sites[0]!.cpq.baseUrl)}`);
      expect(error?.message).toContain(`now name ${siteCpqUrl(other.url)}`);
      expect(error?.message).toContain('--cpq-moved');
      expect(other.sim.requests).toHaveLength(0);
      expect(await snapshotTables(h.t)).toEqual(before);
      const [run] = await h.t.query<{ status: string; error: string }>(`SELECT status, error FROM cpq.sync_runs ORDER BY started_at DESC LIMIT 1`);
      expect(run).toMatchObject({ status: 'failed', error: expect.stringContaining('another CPQ') as string });
      // The same address spelt another way is the same CPQ.
      expect(await syncFrom(h, `${h.config.sites[0]!.cpq.baseUrl.toUpperCase()}/`)).toBeUndefined();
    } finally {
      await other.sim.stop();
    }
  });

  it('--cpq-moved reads the new address once, says so in the run record, and records it: the old address is then refused', async ({ startHarness }) => {
    const h = await startHarness();
    await h.sync();
    const oldUrl = siteCpqUrl(h.config.sites[0]!.cpq.baseUrl);
    const moved = await otherCpq();
    try {
      expect(await syncFrom(h, moved.url, { cpqMoved: true, allowMassDelete: true })).toBeUndefined();
      expect(await recordedUrl(h)).toBe(siteCpqUrl(moved.url));
      const [run] = await h.t.query<{ warnings: string[] }>(`SELECT warnings FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1`);
      expect(run!.warnings).toContain(`site default was synced from ${oldUrl}; from this run on, from ${siteCpqUrl(moved.url)} (--cpq-moved)`);
      expect(await syncFrom(h, moved.url)).toBeUndefined();
      expect((await syncFrom(h, h.config.sites[0]!.cpq.baseUrl))?.message).toContain(`site default was synced from ${siteCpqUrl(moved.url)}`);
    } finally {
      await moved.sim.stop();
    }
  });

  it('a run that fails records no address: the next, pointed elsewhere, is a first run still', async ({ startHarness }) => {
    const h = await startHarness();
    h.sim.addFault({ match: { path: /\/users$/ }, status: 404, times: Infinity });
    expect(await h.syncError()).toBeInstanceOf(SyncError);
    expect(await recordedUrl(h)).toBeNull();
    const other = await otherCpq();
    try {
      expect(await syncFrom(h, other.url)).toBeUndefined();
      expect(await recordedUrl(h)).toBe(siteCpqUrl(other.url));
    } finally {
      await other.sim.stop();
    }
  });

  it('/cpq moved from the base URL into CPQ_PATH_PREFIX (as the README advises) is the same CPQ (review CD)', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq' }, { CPQ_PATH_PREFIX: '/cpq' });
    const root = h.sim.baseUrl;
    expect(await syncFrom(h, `${root}/cpq`, {}, { CPQ_PATH_PREFIX: '', CPQ_INTEGRATION_USERS: 'off' })).toBeUndefined();
    expect(await recordedUrl(h)).toBe(`${siteCpqUrl(root)}/cpq`);
    expect(await syncFrom(h, root, {}, { CPQ_PATH_PREFIX: '/cpq', CPQ_INTEGRATION_USERS: 'off' })).toBeUndefined();
  });

  it("a site an earlier release synced (no address recorded) takes its next successful run's", async ({ startHarness }) => {
    const h = await startHarness();
    await h.sync();
    await h.t.query(`UPDATE cpq.sites SET cpq_url = NULL`);
    await h.sync();
    expect(await recordedUrl(h)).toBe(siteCpqUrl(h.config.sites[0]!.cpq.baseUrl));
  });

  it('run: refused with exit code 2 naming --cpq-moved, as check says; --cpq-moved needs one site; with it the run succeeds', async ({
    startHarness,
    writeSitesFile,
  }) => {
    const h = await startHarness();
    await h.sync();
    const moved = await otherCpq();
    try {
      const env = { CPQ_BASE_URL: moved.url, DATABASE_URL: h.t.url, LOG_LEVEL: 'error' };
      const refused = await cli(['run'], env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('cpq-sync run --site default --cpq-moved');
      // A typo meets this refusal first: it says so before --cpq-moved (operator review EG).
      expect(refused.stderr).toContain('If the new address is a mistake (a typo, a path added), correct it; if it is the same CPQ');
      const accepted = await cli(['run', '--cpq-moved'], { ...env, LOG_LEVEL: 'warn' });
      expect(accepted.code, accepted.stderr).toBe(0);
      // Its warning names the site and run, as the run's info lines do (review DB: it named neither).
      const warned = accepted.stdout.split('\n').find((l) => l.includes('(--cpq-moved)'));
      expect(JSON.parse(warned!)).toMatchObject({ level: 40, site: 'default', runId: expect.stringMatching(/^\d+$/) as unknown });
      expect(await recordedUrl(h)).toBe(siteCpqUrl(moved.url));
      // check says so before a run does.
      const report = await runCheck({ ...env, CPQ_BASE_URL: h.sim.baseUrl });
      expect(report.database?.steps.find((s) => s.step === 'cpq (default)')).toMatchObject({
        status: 'fail',
        detail: `its rows were read from ${siteCpqUrl(moved.url)}, its base URL names ${siteCpqUrl(h.sim.baseUrl)}: a run would exit 2`,
        fix: 'if the new address is a mistake (a typo, a path added), correct it; if it is the same CPQ at a new address, cpq-sync run --site default --cpq-moved; if another, give it a site name of its own',
      });
      expect(report.ok).toBe(false);
      expect((await runCheck(env)).database?.steps.find((s) => s.step === 'cpq (default)')).toMatchObject({ status: 'pass' });
      const sitesFile = writeSitesFile([
        { name: 'default', baseUrl: moved.url },
        { name: 'other', baseUrl: h.sim.baseUrl },
      ]);
      const several = await cli(['run', '--cpq-moved'], { CPQ_SITES_FILE: sitesFile, DATABASE_URL: h.t.url, LOG_LEVEL: 'error' });
      expect(several.code).toBe(2);
      expect(several.stderr).toContain('--cpq-moved is said of one site: name it (--site NAME)');
    } finally {
      await moved.sim.stop();
    }
  });

  it("a site new to the database whose users another site of it holds (a sites file replacing the environment's settings) is warned by check and in its first run's record; one reading other companies is not (review JB)", async ({
    startHarness,
    writeSitesFile,
  }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 });
    // The environment's site, default, reads the host company.
    expect(await syncFrom(h, h.sim.baseUrl, {}, { CPQ_COMPANIES: '_host' })).toBeUndefined();
    // prod: the environment's site under a new name; others: another company of the same CPQ.
    const sitesFile = writeSitesFile([
      { name: 'prod', baseUrl: h.sim.baseUrl },
      { name: 'others', baseUrl: h.sim.baseUrl, companies: 'partner1' },
    ]);
    const env = { CPQ_SITES_FILE: sitesFile, DATABASE_URL: h.t.url };
    const url = siteCpqUrl(h.sim.baseUrl);
    const problem = `site prod is new to this database, and site "default" already holds users it reads (from ${url}, some of the same companies): its first run stores them again, under prod, every user twice`;
    const fix = `if prod is "default" renamed (a sites file replacing the environment's settings: their site is "default"), give it that name again; or rename or delete the old site's rows in SQL (README: Several sites); if both are meant, give each its own companies`;
    const steps = (await runCheck(env)).database?.steps ?? [];
    expect(steps.find((s) => s.step === 'cpq (prod)')).toEqual({ step: 'cpq (prod)', status: 'warn', detail: problem, fix });
    expect(steps.find((s) => s.step === 'cpq (others)')).toMatchObject({ status: 'pass' });
    const config = loadConfig(env);
    await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { site: 'prod' });
    await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { site: 'others' });
    const runs = await h.t.query<{ site: string; warnings: string[] }>(
      `SELECT site, warnings FROM cpq.sync_runs WHERE site IN ('prod', 'others') ORDER BY site COLLATE "C"`,
    );
    expect(runs).toEqual([
      { site: 'others', warnings: [] },
      { site: 'prod', warnings: [`${problem}: ${fix}`] },
    ]);
    // Its next run is no first run: said once.
    await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { site: 'prod' });
    const [last] = await h.t.query<{ warnings: string[] }>(`SELECT warnings FROM cpq.sync_runs WHERE site = 'prod' ORDER BY id DESC LIMIT 1`);
    expect(last).toEqual({ warnings: [] });
  });

  it('two sites of one CPQ reading other companies share only its integration users: the new one is told that, and to read them on one site only (review JI)', async ({
    startHarness,
    writeSitesFile,
  }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 2, pathPrefix: '/cpq' });
    expect(await syncFrom(h, h.sim.baseUrl, {}, { CPQ_COMPANIES: '_host', CPQ_PATH_PREFIX: '/cpq', CPQ_INTEGRATION_USERS: 'on' })).toBeUndefined();
    const partners = (name: string, integrationUsers: string) => ({
      name,
      baseUrl: h.sim.baseUrl,
      pathPrefix: '/cpq',
      companies: 'partner1',
      integrationUsers,
    });
    const sitesFile = writeSitesFile([partners('partners', 'on'), partners('quiet', 'off')]);
    const steps = (await runCheck({ CPQ_SITES_FILE: sitesFile, DATABASE_URL: h.t.url })).database?.steps ?? [];
    const url = siteCpqUrl(h.sim.baseUrl, '/cpq');
    expect(steps.find((s) => s.step === 'cpq (partners)')).toEqual({
      step: 'cpq (partners)',
      status: 'warn',
      detail: `site partners is new to this database, and site "default" already holds the integration users it reads (from ${url}): its first run stores them again, under partners`,
      fix: 'read them on one site only: integrationUsers: off (CPQ_INTEGRATION_USERS=off) on one of the two',
    });
    expect(steps.find((s) => s.step === 'cpq (quiet)')).toMatchObject({ status: 'pass' });
  });

  it('a new site reading the host company, beside one that read the integration users through their feed, is told of those users alone: its company read lists them too (review JJ)', async ({
    startHarness,
    writeSitesFile,
  }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 2, pathPrefix: '/cpq' });
    expect(await syncFrom(h, h.sim.baseUrl, {}, { CPQ_COMPANIES: 'partner1', CPQ_PATH_PREFIX: '/cpq', CPQ_INTEGRATION_USERS: 'on' })).toBeUndefined();
    const sitesFile = writeSitesFile([{ name: 'hostonly', baseUrl: h.sim.baseUrl, pathPrefix: '/cpq', companies: '_host', integrationUsers: 'off' }]);
    const env = { CPQ_SITES_FILE: sitesFile, DATABASE_URL: h.t.url };
    const steps = (await runCheck(env)).database?.steps ?? [];
    expect(steps.find((s) => s.step === 'cpq (hostonly)')).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('site "default" already holds the integration users it reads') as unknown,
    });
    // What it says is so: its run stores them again.
    await runSync({ pool: h.t.pool, db: h.t.db, config: loadConfig(env), log: h.log }, { site: 'hostonly' });
    const twice = await h.t.query<{ login: string }>(
      `SELECT a.login FROM cpq.users a JOIN cpq.users b ON b.site = 'hostonly' AND b.company_login = a.company_login AND b.login = a.login
         WHERE a.site = 'default' AND a.is_integration_user AND a.deleted_at IS NULL AND b.deleted_at IS NULL`,
    );
    expect(twice).toHaveLength(2);
  });
});
