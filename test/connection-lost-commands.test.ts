import { afterEach, describe, expect } from 'vitest';
import { Cleanups, cli } from './helpers/cli-process.js';
import { cutProxy } from './helpers/cut-proxy.js';
import { expectInSync } from './helpers/db-equals-simulator.js';
import { it } from './helpers/harness.js';

/*
 * Review HQ: the connection lost as COMMIT was sent, after the server had it. The run (or the
 * erasure) committed; `run` said "database error: lost the connection to Postgres … and rolled
 * back what was not committed" and exited 6, `forget` the same, while the data had changed, the
 * run's alerts had gone, and its record said succeeded. Each now says what happened.
 */

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('the answer to COMMIT lost', () => {
  it('a run that committed exits 0, its record says succeeded, and the log says the connection was lost as it committed', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 });
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

  it('forget that committed prints what it erased and exits 0; asked again, it says forgotten already', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 });
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' };
    expect((await cli(['run'], env)).code).toBe(0);
    const [login] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.deleteUser('_host', login!);
    expect((await cli(['run', '--full'], env)).code).toBe(0);
    const proxy = await cutProxy(h.t.url, 'commit-answer');
    cleanups.push(proxy.close);
    const forget = ['forget', '--company', '_host', '--login', login!, '--reason', 'ticket 7', '--by', 'test'];
    const out = await cli(forget, { ...env, DATABASE_URL: proxy.url });
    expect(proxy.cut).toBe(true);
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
    // Besides a warning that the lock's session is gone (which lets go of it).
    expect(out.stdout).toMatch(new RegExp(`^forgot _host/${login!} in site default \\(erasure \\d+\\): redacted `, 'm'));
    expect(await h.t.query(`SELECT login FROM cpq.erasures`)).toEqual([{ login }]);
    const again = await cli(forget, env);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('was forgotten already');
  });
});

describe('the connection lost before a query of forget or snapshot (review HQ)', () => {
  // They exited 1 (an internal error) with node-postgres's bare "Connection terminated unexpectedly".
  for (const [command, at] of [
    ['forget', /pg_try_advisory_lock/],
    ['snapshot', /clock_timestamp/],
  ] as const)
    it(`${command}: a database error, exit code 6, in one line; nothing is erased`, async ({ startHarness }) => {
      const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 });
      const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, LOG_LEVEL: 'error' };
      expect((await cli(['run'], env)).code).toBe(0);
      const [login] = h.sim.users('_host').map((u) => String(u.login));
      h.sim.deleteUser('_host', login!);
      expect((await cli(['run', '--full'], env)).code).toBe(0);
      const proxy = await cutProxy(h.t.url, at);
      cleanups.push(proxy.close);
      const args = command === 'forget' ? ['forget', '--company', '_host', '--login', login!, '--reason', 'ticket 8'] : ['snapshot'];
      const out = await cli(args, { ...env, DATABASE_URL: proxy.url });
      expect(proxy.cut).toBe(true);
      expect(out.code, out.stderr).toBe(6);
      expect(out.stderr).toMatch(/^cpq-sync: [^\n]*database[^\n]*\n$/);
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.erasures`)).toEqual([{ n: 0 }]);
    });
});
