import { afterEach, describe, expect } from 'vitest';
import { Cleanups, cli } from './helpers/cli-process.js';
import { cutProxy } from './helpers/cut-proxy.js';
import { expectInSync } from './helpers/db-equals-simulator.js';
import { it, type Harness } from './helpers/harness.js';

/*
 * Review HQ: the connection lost as COMMIT was sent, after the server had it. The run (or the
 * erasure) committed; `run` said "database error: lost the connection to Postgres … and rolled
 * back what was not committed" and exited 6, `forget` the same, while the data had changed, the
 * run's alerts had gone, and its record said succeeded. Each now says what happened.
 */

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const SITE = { partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 };

/** A site synced, then one of its users deleted in CPQ and found deleted by a full run: one `forget` may erase. */
async function siteWithDeletedUser(h: Harness, logLevel = 'warn') {
  const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, LOG_LEVEL: logLevel };
  expect((await cli(['run'], env)).code).toBe(0);
  const login = String(h.sim.users('_host')[0]!.login);
  h.sim.deleteUser('_host', login);
  expect((await cli(['run', '--full'], env)).code).toBe(0);
  return { env, login };
}

const forgetArgs = (login: string) => ['forget', '--company', '_host', '--login', login, '--reason', 'ticket 7', '--by', 'test'];

describe('the answer to COMMIT lost', () => {
  it('a run that committed exits 0, its record says succeeded, and the log says the connection was lost as it committed', async ({ startHarness }) => {
    const h = await startHarness(SITE);
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, LOG_LEVEL: 'info' };
    expect((await cli(['run'], env)).code).toBe(0);
    const [login] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', login!, { lastName: 'Committed' });
    const proxy = await cutProxy(h.t.url, 'commit-answer');
    cleanups.push(proxy.close);
    const out = await cli(['run'], { ...env, DATABASE_URL: proxy.url });
    expect(proxy.cut).toBe(true);
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
    expect(out.stdout).toContain('the connection to Postgres was lost as the run committed');
    expect(out.stdout).toContain('"msg":"sync run succeeded"');
    const runs = await h.t.query<{ status: string; error: string | null; users_updated: number }>(
      `SELECT status, error, users_updated FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`,
    );
    expect(runs).toEqual([{ status: 'succeeded', error: null, users_updated: 1 }]);
    await expectInSync(h);
  });

  // And the server still committing when forget asks, on another connection, whether it did (its
  // COMMIT reaching it 2 s late): it asked at once, and said nothing committed, exit code 6, for an
  // erasure that a moment later was (review HP). It now waits for its transaction to end.
  for (const [when, rule] of [
    ['at once', 'commit-answer'],
    ['2 s after the connection is cut', { commitLateMs: 2000 }],
  ] as const)
    it(`forget that committed (the COMMIT reaching the server ${when}) prints what it erased and exits 0; asked again, it says forgotten already`, async ({
      startHarness,
    }) => {
      const h = await startHarness(SITE);
      const { env, login } = await siteWithDeletedUser(h);
      const proxy = await cutProxy(h.t.url, rule);
      cleanups.push(proxy.close);
      const out = await cli(forgetArgs(login), { ...env, DATABASE_URL: proxy.url });
      expect(proxy.cut).toBe(true);
      expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
      // Besides a warning that the lock's session is gone (which lets go of it).
      expect(out.stdout).toMatch(new RegExp(`^forgot _host/${login} in site default \\(erasure \\d+\\): redacted `, 'm'));
      expect(await h.t.query(`SELECT login FROM cpq.erasures`)).toEqual([{ login }]);
      const again = await cli(forgetArgs(login), env);
      expect(again.code).toBe(0);
      expect(again.stderr).toContain('was forgotten already');
    });
});

describe('the server still committing when the answer to COMMIT is lost (review HP)', () => {
  it('forget that cannot tell within SYNC_LOCK_TIMEOUT says so, exit code 6, and does not say nothing was committed', async ({ startHarness }) => {
    const h = await startHarness(SITE);
    const { env, login } = await siteWithDeletedUser(h);
    const proxy = await cutProxy(h.t.url, { commitLateMs: 5000 });
    cleanups.push(proxy.close);
    const out = await cli(forgetArgs(login), { ...env, DATABASE_URL: proxy.url, SYNC_LOCK_TIMEOUT: '1s' });
    expect(proxy.cut).toBe(true);
    expect(out.code, out.stderr).toBe(6);
    expect(out.stderr).toMatch(/^cpq-sync: [^\n]*could not tell whether the erasure committed[^\n]*forget again[^\n]*\n$/);
    expect(out.stderr).not.toContain('rolled back');
    // It did commit, once the server had the COMMIT; asked again, forget says so.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const again = await cli(forgetArgs(login), env);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('was forgotten already');
  });

  it('a run waits for its transaction to end (its failure record waits for the run row), then says it succeeded', async ({ startHarness }) => {
    const h = await startHarness(SITE);
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, LOG_LEVEL: 'info' };
    expect((await cli(['run'], env)).code).toBe(0);
    const [login] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', login!, { lastName: 'Late' });
    const proxy = await cutProxy(h.t.url, { commitLateMs: 2000 });
    cleanups.push(proxy.close);
    const out = await cli(['run'], { ...env, DATABASE_URL: proxy.url });
    expect(proxy.cut).toBe(true);
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
    expect(out.stdout).toContain('"msg":"sync run succeeded"');
    expect(await h.t.query(`SELECT status FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`)).toEqual([{ status: 'succeeded' }]);
    await expectInSync(h);
  });
});

describe('the connection lost before a query of forget or snapshot (review HQ)', () => {
  // They exited 1 (an internal error) with node-postgres's bare "Connection terminated unexpectedly".
  for (const [command, at] of [
    ['forget', /pg_try_advisory_lock/],
    ['snapshot', /clock_timestamp/],
  ] as const)
    it(`${command}: a database error, exit code 6, in one line; nothing is erased`, async ({ startHarness }) => {
      const h = await startHarness(SITE);
      const { env, login } = await siteWithDeletedUser(h, 'error');
      const proxy = await cutProxy(h.t.url, at);
      cleanups.push(proxy.close);
      const args = command === 'forget' ? forgetArgs(login) : ['snapshot'];
      const out = await cli(args, { ...env, DATABASE_URL: proxy.url });
      expect(proxy.cut).toBe(true);
      expect(out.code, out.stderr).toBe(6);
      expect(out.stderr).toMatch(/^cpq-sync: [^\n]*database[^\n]*\n$/);
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.erasures`)).toEqual([{ n: 0 }]);
    });
});
