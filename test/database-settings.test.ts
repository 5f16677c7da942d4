import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { admin } from './helpers/database.js';
import { cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/*
 * node-postgres reads timestamptz only from ISO text: under a database's (or role's) DateStyle of
 * German, SQL or Postgres every time read back was null, and every run failed with "Cannot read
 * properties of null (reading 'getTime')" while `check` passed (review CJ).
 */
describe('a database whose DateStyle and IntervalStyle are not the defaults', () => {
  it('runs, snapshots, lists its runs and its changes, every time read back exact', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const name = `cpq_datestyle_${randomBytes(5).toString('hex')}`;
    await admin(async (c) => {
      await c.query(`CREATE DATABASE ${name}`);
      await c.query(`ALTER DATABASE ${name} SET datestyle = 'German, DMY'`);
      await c.query(`ALTER DATABASE ${name} SET intervalstyle = 'iso_8601'`);
    });
    const url = new URL(h.t.url);
    url.pathname = `/${name}`;
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() };
    expect(await cli(['run'], env)).toMatchObject({ code: 0, stderr: '' });
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { lastName: 'Changed' });
    expect(await cli(['run'], env)).toMatchObject({ code: 0, stderr: '' });

    const snapshot = await cli(['snapshot', '--format', 'jsonl'], env);
    expect(snapshot.code).toBe(0);
    const rows = snapshot.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { date_modified: string; snapshot_as_of: string });
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row.snapshot_as_of).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const status = await cli(['status', '--json'], env);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as { sites: { runs: { status: string; startedAt: string; durationSeconds: number }[] }[] };
    expect(report.sites[0]!.runs.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    for (const run of report.sites[0]!.runs) {
      expect(run.startedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(run.durationSeconds).toBeGreaterThan(0);
    }
    const changes = await cli(['changes', '--after', '0'], env);
    expect(changes.code).toBe(0);
    expect(changes.stdout.trim().split('\n')).toHaveLength(4); // three inserts, one update
  });
});
