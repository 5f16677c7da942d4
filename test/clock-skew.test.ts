import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, onTestFinished, vi } from 'vitest';
import { createAuthenticator } from '../src/cpq/auth.js';
import { checkReadiness } from '../src/worker/readiness.js';
import type { StatusReport } from '../src/worker/status.js';
import { CliProcess, cli } from './helpers/cli-process.js';
import { type Harness, it } from './helpers/harness.js';

/*
 * Run times are the database's clock (started_at is now() of the insert): a worker or a command on
 * a machine whose clock is off must neither write nor judge them by its own.
 */

const SKEW = fileURLToPath(new URL('./fixtures/clock-skew.mjs', import.meta.url));
const HOUR = 3_600_000;
const skewed = (h: Harness, skewMs: number, env: Record<string, string> = {}) => ({
  CPQ_BASE_URL: h.sim.baseUrl,
  DATABASE_URL: h.t.url,
  NODE_OPTIONS: `--import=${SKEW}`,
  CLOCK_SKEW_MS: String(skewMs),
  ...env,
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a machine whose clock is off', () => {
  it('records a run that ends after it starts: finished_at by the database clock, as started_at (an hour behind gave -3600 s)', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    for (const skew of [-HOUR, 24 * HOUR]) {
      expect((await cli(['run'], skewed(h, skew))).code).toBe(0);
    }
    const status = await cli(['status', '--json'], { DATABASE_URL: h.t.url });
    const runs = (JSON.parse(status.stdout) as StatusReport).sites[0]!.runs;
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      expect(run.durationSeconds).toBeGreaterThanOrEqual(0);
      expect(run.durationSeconds).toBeLessThan(600);
    }
  });

  it('SYNC_FULL_EVERY counts from the last full read by the database clock: two hours ahead, a full read an instant old seemed due', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    expect((await cli(['run'], skewed(h, 2 * HOUR, { SYNC_FULL_EVERY: '1h' }))).code).toBe(0);
    expect(await h.t.query(`SELECT mode FROM cpq.sync_runs ORDER BY id`)).toEqual([{ mode: 'full' }, { mode: 'incremental' }]);
  });

  it('snapshot without --as-of takes now from the database: an hour behind, it found no run yet', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const out = await cli(['snapshot', '--format', 'jsonl'], skewed(h, -HOUR));
    expect(out.code).toBe(0);
    expect(
      out.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { login: string }).login),
    ).toHaveLength(3);
  });

  it('HISTORY_RETENTION counts by the database clock: a worker two hours behind redacts a user deleted 90 minutes ago under a one-hour retention', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const login = String(h.sim.users('_host')[0]!.login);
    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    await h.t.query(`UPDATE cpq.users SET deleted_at = now() - interval '90 minutes' WHERE login = $1`, [login]);
    expect((await cli(['run'], skewed(h, -2 * HOUR, { HISTORY_RETENTION: '1h' }))).code).toBe(0);
    expect(await h.t.query(`SELECT email, raw->>'email' AS raw_email FROM cpq.users WHERE login = $1`, [login])).toEqual([
      { email: null, raw_email: '[redacted]' },
    ]);
  });

  for (const stepMs of [HOUR, -HOUR]) {
    it(`a clock stepped ${stepMs > 0 ? 'an hour ahead' : 'back an hour'} during a run dates the run by the database's clock, between its start and its end (review DE)`, async ({
      startHarness,
    }) => {
      const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
      // The clock steps when the run asks for its first page: after it measured the database's clock at its start.
      const stepFile = join(await mkdtemp(join(tmpdir(), 'clock-step-')), 'stepped');
      h.sim.onRequest = async () => {
        await writeFile(stepFile, '');
      };
      expect((await cli(['run'], skewed(h, 0, { CLOCK_STEP_FILE: stepFile, CLOCK_STEP_MS: String(stepMs) }))).code).toBe(0);
      const [run] = await h.t.query<{ within: boolean }>(`SELECT effective_at BETWEEN started_at AND finished_at AS within FROM cpq.sync_runs`);
      expect(run).toEqual({ within: true });
      // And the history the next run continues is the one this run dated: as of now, the tables.
      const [asOf] = await h.t.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.users_as_of(now())`);
      expect(asOf).toEqual({ n: 3 });
    });
  }

  // Two companies read one after the other: the clock steps at the run's first request, after the
  // run measured the database's clock and the first company chose how to read, before the second did.
  for (const { stepMs, fullEvery, backdate } of [
    { stepMs: 2 * HOUR, fullEvery: '1h', backdate: '0' },
    { stepMs: -2 * HOUR, fullEvery: '23h', backdate: '1 day' },
  ]) {
    it(`SYNC_FULL_EVERY=${fullEvery} decides every stream by the database clock when the worker's clock steps ${stepMs > 0 ? 'two hours ahead' : 'two hours back'} during the run (the second company was read ${stepMs > 0 ? 'in full' : 'incrementally'}: mixed)`, async ({
      startHarness,
    }) => {
      const companies = { CPQ_COMPANIES: '_host,partner1', CPQ_CONCURRENCY: '1' };
      const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 0 }, companies);
      await h.sync();
      // The last full read, by the database's clock, a day old (or just now).
      await h.t.query(`UPDATE cpq.sync_state SET last_full_sync_at = last_full_sync_at - $1::interval`, [backdate]);
      const stepFile = join(await mkdtemp(join(tmpdir(), 'clock-step-')), 'stepped');
      h.sim.onRequest = async () => {
        await writeFile(stepFile, '');
      };
      const run = await cli(['run'], skewed(h, 0, { ...companies, SYNC_FULL_EVERY: fullEvery, CLOCK_STEP_FILE: stepFile, CLOCK_STEP_MS: String(stepMs) }));
      expect(run.code).toBe(0);
      const mode = stepMs > 0 ? 'incremental' : 'full';
      expect(await h.t.query(`SELECT mode, streams->0->>'mode' AS first, streams->1->>'mode' AS second FROM cpq.sync_runs ORDER BY id`)).toEqual([
        { mode: 'full', first: 'full', second: 'full' },
        { mode, first: mode, second: mode },
      ]);
    });
  }

  it("a Retry-After pause is timed by a clock that does not step: stepped back a day during it, the run's next request waited a day", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    h.sim.addFault({ status: 429, headers: { 'retry-after': '3' } });
    const stepFile = join(await mkdtemp(join(tmpdir(), 'clock-step-')), 'stepped');
    const run = new CliProcess(['run'], skewed(h, 0, { CLOCK_STEP_FILE: stepFile, CLOCK_STEP_MS: String(-24 * HOUR) }));
    // Before the fix it waited the day out: gone with the test, whatever ended it.
    onTestFinished(() => run.kill('SIGKILL'));
    // The clock steps back once the run has taken the pause, while it waits (three seconds).
    await run.waitForLine((line) => line.msg === 'CPQ asked us to retry');
    await writeFile(stepFile, '');
    expect((await run.exited).code).toBe(0);
    expect(await h.t.query(`SELECT status, http_retries FROM cpq.sync_runs`)).toEqual([{ status: 'succeeded', http_retries: { '429': 1 } }]);
  });

  it("a Retry-After date is counted from CPQ's own Date: a site whose clock is an hour ahead of the worker's asked for 3 seconds and got an hour (past CPQ_RETRY_MAX_DELAY: the run failed)", async ({
    startHarness,
  }) => {
    const siteNow = () => new Date(Date.now() + HOUR);
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0, now: siteNow }, { CPQ_RETRY_MAX_DELAY: '60s' });
    h.sim.addFault({ status: 429, headers: { 'retry-after': new Date(siteNow().getTime() + 3_000).toUTCString() } });
    const result = await h.sync();
    expect(result).toMatchObject({ status: 'succeeded', inserted: 3 });
    expect(await h.t.query(`SELECT http_retries FROM cpq.sync_runs`)).toEqual([{ http_retries: { '429': 1 } }]);
  });

  it("an OAuth token's lifetime is timed by a clock that does not step: the worker's clock stepped a day ahead took a new token at once, stepped back kept one past its expiry", async ({
    startHarness,
  }) => {
    const h = await startHarness({
      partnerCompanies: 0,
      usersPerCompany: 1,
      integrationUsers: 0,
      auth: { oauth: { clientId: 'c', clientSecret: 's', tokenTtlSeconds: 2 } },
    });
    // The worker's clock (Date) is the test's from before the authenticator is made, as a preloaded
    // one would be in the CLI; it stands still unless stepped. The token service's goes on.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const auth = createAuthenticator({ kind: 'oauth', tokenUrl: `${h.sim.baseUrl}/oauth2/v1/token`, clientId: 'c', clientSecret: 's' }, 5000);
    const first = await auth.authorization();
    vi.setSystemTime(Date.now() + 24 * HOUR);
    expect(await auth.authorization()).toBe(first);
    expect(h.sim.tokenRequests).toBe(1);
    // Back a day behind the grant, then the token's two seconds (renewed at 90%) really pass.
    vi.setSystemTime(Date.now() - 48 * HOUR);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(await auth.authorization()).not.toBe(first);
    vi.useRealTimers();
    expect(h.sim.tokenRequests).toBe(2);
  });

  it('/readyz judges how long runs have failed by the database clock: a worker a day ahead took a failure after a success a day old for a streak of two', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    await h.t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at, error) VALUES
         ('default', 'succeeded', 'full', now() - interval '25 hours', now() - interval '24 hours', NULL),
         ('default', 'failed', 'incremental', now() - interval '1 hour', now() - interval '59 minutes', 'boom')`,
    );
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 24 * HOUR);
    const report = await checkReadiness(h.t.pool, { sites: ['default'], staleAfterMs: 36 * HOUR });
    vi.useRealTimers();
    expect(report).toMatchObject({ ready: true, staleSites: [] });
    expect(report.sites[0]!.runs).toMatch(/^the last run failed; runs have not succeeded since .*, within SYNC_STALE_AFTER=36h$/);
  });
});
