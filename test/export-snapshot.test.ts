import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import type { AppConfig } from '../src/config.js';
import { exportSnapshot } from '../src/history/export.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { cli } from './helpers/cli-process.js';
import { untilWaitingForLock } from './helpers/database.js';
import { collectJsonLines } from './helpers/export-output.js';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

async function snapshotLines(h: Harness, asOf: Date): Promise<Record<string, unknown>[]> {
  return collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out));
}

describe('snapshot: the run it names is exactly the state it contains', () => {
  it('a run that commits after the snapshot chose its run, before it read the users, is not in it', async ({ startHarness, connectClient }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const first = await h.sync();
    const later = new Date(Date.now() + 3_600_000);

    // Hold the snapshot between its two reads: the run it names (cpq.sync_runs) is free to read,
    // the users (cpq.users) are locked by a transaction that then commits a run adding a user.
    const holder = await connectClient(h.t.url);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE cpq.users IN ACCESS EXCLUSIVE MODE');
    const exporting = snapshotLines(h, later);
    await untilWaitingForLock(h.t);
    const { rows } = await holder.query<{ id: string; effective_at: Date }>(
      `INSERT INTO cpq.sync_runs (site, status, mode, finished_at, effective_at) VALUES ('default', 'succeeded', 'incremental', now(), now()) RETURNING id, effective_at`,
    );
    const second = rows[0]!;
    await holder.query(`CREATE TEMP TABLE late AS SELECT * FROM cpq.users ORDER BY login LIMIT 1`);
    await holder.query(
      `UPDATE late SET id = (SELECT max(id) + 1 FROM cpq.users), login = 'zz-late', valid_from = $2, first_seen_run_id = $1, last_changed_run_id = $1`,
      [second.id, second.effective_at],
    );
    await holder.query(`INSERT INTO cpq.users SELECT * FROM late`);
    await holder.query('COMMIT');

    const held = await exporting;
    expect(new Set(held.map((r) => r.snapshot_run_id))).toEqual(new Set([first.runId]));
    expect(held.map((r) => r.login)).toEqual(h.sim.users('_host').map((u) => u.login));

    // Asked again, the snapshot names the later run and holds its user.
    const now = await snapshotLines(h, later);
    expect(new Set(now.map((r) => r.snapshot_run_id))).toEqual(new Set([second.id]));
    expect(now.map((r) => r.login)).toContain('zz-late');
  });
});

describe('snapshot: a site with no state at its time (review CY)', () => {
  it('named with --site, it is refused; asked of every site, it is left out and said so, in the log and in the manifest', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const later = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0, seed: 7 });
    const laterUrl = await later.start();
    try {
      expect((await h.sync({ full: true })).status).toBe('succeeded');
      await new Promise((r) => setTimeout(r, 20));
      const asOf = new Date();
      await new Promise((r) => setTimeout(r, 20));
      // Site b's first run takes effect after asOf.
      const site = h.config.sites[0]!;
      const b = { ...h.config, cpq: undefined, sites: [{ ...site, name: 'b', cpq: { ...site.cpq, baseUrl: laterUrl } }] } as AppConfig;
      expect((await runSync({ pool: h.t.pool, db: h.t.db, config: b, log: h.log }, { full: true })).status).toBe('succeeded');

      const refusal = `no successful sync run of site b took effect at or before ${asOf.toISOString()}: there is no state to report`;
      for (const adminRights of [false, true]) {
        await expect(collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out, { sites: ['default', 'b'], adminRights }))).rejects.toThrow(
          refusal,
        );
      }
      // Site c has only a failed run: no state at any time.
      await h.t.query(`INSERT INTO cpq.sites (name) VALUES ('c') ON CONFLICT DO NOTHING`);
      await h.t.query(`INSERT INTO cpq.sync_runs (site, status, mode, finished_at) VALUES ('c', 'failed', 'full', now())`);
      const dir = await mkdtemp(join(tmpdir(), 'snapshot-later-'));
      const file = join(dir, 'users.csv');
      const all = await cli(['snapshot', '--as-of', asOf.toISOString(), '--out', file], { DATABASE_URL: h.t.url });
      expect(all.code, all.stderr).toBe(0);
      const warnings = all.stdout.split('\n').filter((l) => l.includes('"level":40'));
      expect(warnings).toHaveLength(2);
      expect(warnings[0]).toMatch(/"site":"b".*site b had no successful run by \S+ \(its first took effect at \S+\): this snapshot holds nothing of it/);
      expect(warnings[1]).toMatch(/"site":"c".*site c had no successful run by \S+ \(none yet\): this snapshot holds nothing of it/);
      const manifest = JSON.parse(await readFile(`${file}.manifest.json`, 'utf8')) as Record<string, unknown>;
      expect(manifest).toMatchObject({ rows: 3, runs: [{ site: 'default' }], sitesLeftOut: ['b', 'c'] });
      const named = await cli(['snapshot', '--as-of', asOf.toISOString(), '--site', 'default', 'b'], { DATABASE_URL: h.t.url });
      expect({ code: named.code, stdout: named.stdout }).toEqual({ code: 2, stdout: '' });
      // With a time that has a state of every site named: a millisecond after b's first run took effect.
      const [{ e }] = (await h.t.query<{ e: Date }>(`SELECT effective_at AS e FROM cpq.sync_runs WHERE site = 'b' AND status = 'succeeded'`)) as [{ e: Date }];
      expect(named.stderr).toBe(`cpq-sync: ${refusal} (an --as-of at or after ${new Date(e.getTime() + 1).toISOString()} has one)\n`);
      const withC = await cli(['snapshot', '--as-of', asOf.toISOString(), '--site', 'b', 'c'], { DATABASE_URL: h.t.url });
      expect(withC.stderr).toMatch(/: there is no state to report \(no later time has one yet\)\n$/);
    } finally {
      await later.stop();
    }
  });
});

describe('snapshot: a time before any state, the time to ask instead (review DB)', () => {
  it('of named sites, the last of their first runs, so that every one has a state; of every site, the first of them', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 });
    // Sites b and c, whose first successful runs took effect a day and two days after asOf.
    await h.t.query(`INSERT INTO cpq.sites (name) VALUES ('b'), ('c') ON CONFLICT DO NOTHING`);
    await h.t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, finished_at, effective_at) VALUES ('b', 'succeeded', 'full', $1, $1), ('c', 'succeeded', 'full', $2, $2)`,
      ['2020-01-02T00:00:00Z', '2020-01-03T00:00:00Z'],
    );
    const asOf = new Date('2020-01-01T00:00:00Z');
    const refusal = (of: string, time: string) =>
      `no successful sync run${of} took effect at or before 2020-01-01T00:00:00.000Z: there is no state to report (an --as-of at or after ${time} has one)`;
    await expect(collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out, { sites: ['b', 'c'] }))).rejects.toThrow(
      refusal(' of site b, c', '2020-01-03T00:00:00.001Z'),
    );
    await expect(collectJsonLines((out) => exportSnapshot(h.t.pool, asOf, 'jsonl', out))).rejects.toThrow(refusal('', '2020-01-02T00:00:00.001Z'));
  });
});
