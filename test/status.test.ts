import { describe, expect } from 'vitest';
import { formatDuration, type StatusReport } from '../src/worker/status.js';
import { cli } from './helpers/cli-process.js';
import { holdSyncLock } from './helpers/database.js';
import { type Harness, it } from './helpers/harness.js';

const status = (h: Harness, args: string[] = []) => cli(['status', ...args], { DATABASE_URL: h.t.url });

describe('cpq-sync status', () => {
  it('after a good run: runs and cursors as tables, exit code 0', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 0 }, { CPQ_COMPANIES: '_host,partner1' });
    const first = await h.sync();
    // A user gone from CPQ: the full run that deletes it shows it.
    h.sim.deleteUser('_host', String(h.sim.users('_host')[0]!.login));
    const run = await h.sync({ full: true });
    const out = await status(h);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toBe('Last runs (newest first, times in UTC)');
    expect(lines[1]).toMatch(/^ {2}RUN +STARTED +TOOK +MODE +STATUS +SEEN +NEW +CHANGED +SAME +DELETED +RESTORED +RETRIES +ERROR$/);
    const started = '\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} +\\d+\\.\\ds';
    expect(lines[2]).toMatch(new RegExp(`^ +${run.runId}  ${started}  full +succeeded +7 +0 +0 +7 +1 +0 +0$`));
    expect(lines[3]).toMatch(new RegExp(`^ +${first.runId}  ${started}  full +succeeded +8 +8 +0 +0 +0 +0 +0$`));
    const cursors = lines.indexOf('Cursors (per stream)');
    expect(lines[cursors + 1]).toMatch(/^ {2}STREAM +CURSOR \(dateModified\) +LAST FULL READ +LAST RUN$/);
    expect(lines[cursors + 2]).toMatch(
      new RegExp(`^ {2}companies/_host +\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} +\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} +${run.runId}$`),
    );
    expect(lines[cursors + 3]).toMatch(/^ {2}companies\/partner1 /);
    expect(out.stdout).toMatch(new RegExp(`\\nLast run succeeded: run ${run.runId} at \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}, took \\d+\\.\\ds\\n$`));
    // The duration of the last success, as the table's TOOK shows it and to the millisecond in JSON.
    const took = /^ +\d+ +\S+ \S+ +(\S+)/.exec(lines[2]!)![1]!;
    expect(out.stdout).toContain(`, took ${took}\n`);
    const json = JSON.parse((await status(h, ['--json'])).stdout) as StatusReport;
    expect(json.sites[0]!.lastSuccessDurationSeconds).toBe(json.sites[0]!.runs[0]!.durationSeconds);
    expect(json.sites[0]!.lastSuccessDurationSeconds).toBeGreaterThan(0);
  });

  it('a stream without a cursor, as a site clock set back leaves it, says its next read is full', async ({ startHarness }) => {
    let clock = Date.now();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0, now: () => new Date(clock) },
      { CPQ_COMPANIES: '_host', SYNC_LOOKBACK: '10m' },
    );
    // A user edited now: the cursor is the site's present.
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { title: 'Now' });
    await h.sync();
    clock -= 3 * 3_600_000;
    const run = await h.sync();
    expect(run.warnings).toHaveLength(1);
    const lines = (await status(h)).stdout.split('\n');
    // Before: "(no users read yet)", though the stream had read users.
    expect(lines[lines.indexOf('Cursors (per stream)') + 2]).toMatch(
      new RegExp(`^ {2}companies/_host +\\(none: the next read is full\\) +\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} +${run.runId}$`),
    );
  });

  it('a site whose last success is older than SYNC_STALE_AFTER (its worker stopped) is stale: exit code 1, said in text and --json (review EC)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    expect((await status(h)).code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Before: the last run succeeded, so exit code 0 however long ago, and `status || alert` never fired for a dead worker.
    const env = { DATABASE_URL: h.t.url, SYNC_STALE_AFTER: '1s' };
    const text = await cli(['status'], env);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(
      /\nLast run succeeded: run \d+ at [\d-]+ [\d:]+, took [^\n]+\nSTALE: no run has succeeded since [\d-]+ [\d:]+, longer ago than SYNC_STALE_AFTER=1s: is the worker running\?\n$/,
    );
    const json = await cli(['status', '--json'], env);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as StatusReport;
    expect({ stale: report.stale, lastRunFailed: report.lastRunFailed, site: report.sites[0]!.stale }).toEqual({
      stale: true,
      lastRunFailed: false,
      site: expect.stringMatching(/^no run has succeeded since /) as unknown,
    });
    // Within SYNC_STALE_AFTER again once a run succeeds.
    await h.sync();
    expect((await cli(['status'], { DATABASE_URL: h.t.url, SYNC_STALE_AFTER: '1h' })).code).toBe(0);
  });

  it('after a failed run: exit code 1, the error in the table and the verdict; --json for scripts', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_MAX_RETRIES: '1' });
    const good = await h.sync();
    h.sim.addFault({ status: 503, times: Infinity });
    await h.syncError();

    const text = await status(h);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/ failed +- +- +- +- +- +- +1 {2}GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?/);
    expect(text.stdout).toMatch(
      /\nLAST RUN FAILED: run \d+ at [\d-]+ [\d:]+: GET http:\/\/\S+: CPQ still answered 503 after 2 attempts\nLast success: [\d-]+ [\d:]+, took \d+\.\ds\n$/,
    );

    const json = await status(h, ['--json']);
    expect(json.code).toBe(1);
    const whole = JSON.parse(json.stdout) as StatusReport;
    expect(whole.lastRunFailed).toBe(true);
    expect(whole.sites.map((s) => s.site)).toEqual(['default']);
    const report = whole.sites[0]!;
    expect(report.lastRunFailed).toBe(true);
    expect(report.lastRun).toMatchObject({ status: 'failed', error: expect.stringMatching(/CPQ still answered 503/) as unknown });
    expect(report.runs).toHaveLength(2);
    expect(report.runs[0]).toMatchObject({
      status: 'failed',
      mode: 'incremental',
      usersSeen: 0,
      httpRetries: { '503': 1 },
      warnings: [expect.stringMatching(/rolled back/)],
      error: expect.stringMatching(/503/) as unknown,
    });
    expect(report.runs[0]!.durationSeconds).toBeGreaterThanOrEqual(0);
    expect(report.runs[1]).toMatchObject({ id: good.runId, status: 'succeeded', mode: 'full', usersSeen: 3, inserted: 3, error: null });
    expect(report.cursors).toEqual([
      {
        stream: 'companies/_host',
        cursor: expect.any(String) as unknown,
        lastFullSyncAt: expect.any(String) as unknown,
        lastRunId: good.runId,
        updatedAt: expect.any(String) as unknown,
      },
    ]);
    expect(report.lastSuccessAt).toBe(report.runs[1]!.finishedAt);
    // The failed run is not the last success: the good one's duration is.
    expect(report.lastSuccessDurationSeconds).toBe(report.runs[1]!.durationSeconds);

    const limited = JSON.parse((await status(h, ['--json', '--limit', '1'])).stdout) as StatusReport;
    expect(limited.sites[0]!.runs.map((r) => r.status)).toEqual(['failed']);
  });

  it("shows a run's warnings (a count and the first, in text and --json), and a run going on with no counts yet rather than 0 users seen (review DN)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const good = await h.sync();
    // A run that warned, as a run records its warnings (here two, the first with a control character).
    await h.t.query(`UPDATE cpq.sync_runs SET warnings = $1::jsonb WHERE id = $2`, [
      JSON.stringify(['the deletion guard held back 2 deletions of company _host\u001b[2J (run with --allow-mass-delete)', 'a second warning']),
      good.runId,
    ]);
    const client = await h.t.pool.connect();
    const release = await holdSyncLock(client);
    try {
      const [{ id: running }] = (await h.t.query<{ id: string }>(
        `INSERT INTO cpq.sync_runs (site, status, mode) VALUES ('default', 'running', 'incremental') RETURNING id::text AS id`,
      )) as [{ id: string }];
      const out = await status(h);
      expect(out.code).toBe(0);
      const lines = out.stdout.split('\n');
      expect(lines[2]).toMatch(new RegExp(`^ +${running} +\\S+ \\S+ +\\d+\\.\\ds… +incremental +running +… +… +… +… +… +… +…$`));
      expect(lines[3]).toMatch(new RegExp(`^ +${good.runId} .* full +succeeded +3 +3 +0 +0 +0 +0 +0$`));
      expect(lines[4]).toBe(
        `  run ${good.runId} warned: the deletion guard held back 2 deletions of company _host\\x1b[2J (run with --allow-mass-delete) (and 1 more: status --json lists them)`,
      );
      const json = JSON.parse((await status(h, ['--json'])).stdout) as StatusReport;
      const [now, before] = json.sites[0]!.runs;
      expect(now).toMatchObject({
        id: running,
        status: 'running',
        pages: null,
        usersSeen: null,
        inserted: null,
        updated: null,
        httpRequests: null,
        warningCount: 0,
      });
      expect(before).toMatchObject({ id: good.runId, usersSeen: 3, warningCount: 2 });
      expect((before!.warnings as unknown as string[])[1]).toBe('a second warning');
    } finally {
      await release();
      client.release();
    }
    // One warning: the line is that warning alone, with no "(and 0 more…)" (review EK, mutant ST8).
    await h.t.query(`UPDATE cpq.sync_runs SET warnings = $1::jsonb WHERE id = $2`, [JSON.stringify(['the only warning']), good.runId]);
    expect((await status(h)).stdout.split('\n').filter((l) => l.includes('warned:'))).toEqual([`  run ${good.runId} warned: the only warning`]);
    // A long warning is cut at 200 characters, never inside an emoji: here its 199th and 200th UTF-16 units are one.
    await h.t.query(`UPDATE cpq.sync_runs SET warnings = $1::jsonb WHERE id = $2`, [
      JSON.stringify([`${'w'.repeat(198)}\u{1f600}${'x'.repeat(50)}`]),
      good.runId,
    ]);
    expect((await status(h)).stdout.split('\n').filter((l) => l.includes('warned:'))).toEqual([`  run ${good.runId} warned: ${'w'.repeat(198)}…`]);
  });

  it('the exit code follows the last run that ended on its own: interrupted and running runs are passed over', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    const add = (status: string) =>
      h.t.query(
        `INSERT INTO cpq.sync_runs (site, status, mode, finished_at, error) VALUES ('default', $1, 'full', CASE WHEN $1 <> 'running' THEN now() END, CASE WHEN $1 IN ('failed', 'interrupted', 'abandoned') THEN 'boom' END)`,
        [status],
      );
    // Interrupted runs alone: none ended on its own, and the last line says why, not "no run has finished" beside them (review HT).
    await add('interrupted');
    await add('interrupted');
    const onlyInterrupted = await status(h);
    expect(onlyInterrupted.code).toBe(0);
    expect(onlyInterrupted.stdout).toMatch(/\nNo run has ended on its own yet \(2 runs were interrupted by a signal, which says nothing of the site\)\.\n$/);
    await add('failed');
    await add('interrupted');
    expect((await status(h)).code).toBe(1); // a deploy interrupting the retry does not clear the alert
    await add('succeeded');
    await add('interrupted');
    await add('running');
    // Its site's sync lock held, as by the run going on.
    const client = await h.t.pool.connect();
    const release = await holdSyncLock(client);
    try {
      const out = await status(h);
      expect(out.code).toBe(0);
      // Its counts are written when it ends: not 0 users seen (review DN).
      expect(out.stdout).toMatch(/ running +… +… +… +… +… +… +…\n/);
    } finally {
      await release();
      client.release();
    }
    // The lock free: the run's session is gone (review AB), a failure as the abandoned run the next
    // run records it as, not a success until then (review CB). Said without claiming its process
    // died: a run that lost the database, and could not record so, ends the same way.
    const dead = await status(h);
    expect(dead.code).toBe(1);
    expect(dead.stdout).toMatch(/ \? +full +dead +\? +\? +\? +\? +\? +\? +\?\n/);
    expect(dead.stdout).toMatch(
      /\n {2}dead: recorded running, but no session holds the site's sync lock \(run \d+\): it ended without recording how \(its process killed or crashed, its machine lost, or its connection to Postgres lost\); the next run of the site records it abandoned\.\n/,
    );
    expect(dead.stdout).toMatch(
      /\nLAST RUN ABANDONED: run \d+: recorded running, but no session holds its site's sync lock: it ended without recording how \(its process killed or crashed, its machine lost, or its connection to Postgres lost\); the next run records it abandoned\n/,
    );
    const json = JSON.parse((await status(h, ['--json'])).stdout) as StatusReport;
    expect(json.sites[0]!.runs[0]).toMatchObject({ status: 'running', presumedDead: true, durationSeconds: null, usersSeen: null, inserted: null });
    expect(json.sites[0]).toMatchObject({ lastRunFailed: true, lastRun: { id: json.sites[0]!.runs[0]!.id, status: 'abandoned', finishedAt: null } });
    await add('abandoned'); // a crash is a failure
    expect((await status(h)).code).toBe(1);
    // Two runs recorded running, the lock free: both are dead, not only the newest (review EK).
    await add('running');
    await add('running');
    const twice = JSON.parse((await status(h, ['--json'])).stdout) as StatusReport;
    expect(twice.sites[0]!.runs.slice(0, 3).map((r) => [r.status, r.presumedDead ?? false])).toEqual([
      ['running', true],
      ['running', true],
      ['abandoned', false],
    ]);
  });

  it('sites this database has run that the configuration does not name are listed by name (a dead run of a renamed site is not hidden), and do not count in the exit code (review CM)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    await h.sync();
    // The site's former name, left with a dead run (recorded running, no session holds its lock).
    await h.t.query(`INSERT INTO cpq.sync_runs (site, status, mode) VALUES ('old-emea', 'running', 'full')`);
    const configured = { DATABASE_URL: h.t.url, CPQ_BASE_URL: h.sim.baseUrl, CPQ_TOKEN: 't' };
    const out = await cli(['status'], configured);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(
      '\nAlso in this database, not shown: old-emea (`status --site old-emea` shows one; their runs do not count in the exit code)\n',
    );
    const json = JSON.parse((await cli(['status', '--json'], configured)).stdout) as StatusReport;
    expect(json.sites.map((s) => s.site)).toEqual(['default']);
    expect(json.otherSites).toEqual(['old-emea']);
    const old = await cli(['status', '--site', 'old-emea'], configured);
    expect(old.code).toBe(1);
    expect(old.stdout).toMatch(/ \? +full +dead /);
    expect(old.stdout).toContain('Also in this database, not shown: default');
    // Every site shown: nothing else to name.
    const all = await status(h, ['--json']);
    expect((JSON.parse(all.stdout) as StatusReport).otherSites).toEqual([]);
  });

  it('a migrated database without runs: nothing to report, exit code 0; one without the cpq schema (nothing ever ran there): exit code 6', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    const empty = await status(h);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe('Last runs (newest first, times in UTC)\n  none yet\n\nCursors (per stream)\n  none yet\n\nNo run has finished yet.\n');
    // A worker creates the schema when it starts: none means DATABASE_URL names another database,
    // and `status || alert` must alert.
    await h.t.query('DROP SCHEMA cpq CASCADE');
    for (const args of [['--json'], ['--site', 'default']]) {
      const bare = await status(h, args);
      expect(bare.code).toBe(6);
      expect(bare.stdout).toBe('');
      expect(bare.stderr).toBe('cpq-sync: the database has no cpq schema: no run has synced into it (is DATABASE_URL the database the runs write?)\n');
    }
  });

  it('exit code 6 when the database is unreachable, 2 for a bad --limit', async () => {
    const down = await cli(['status'], { DATABASE_URL: 'postgres://u:secret-pw@127.0.0.1:1/none' });
    expect(down.code).toBe(6);
    expect(down.stderr).toMatch(/^cpq-sync: cannot connect to Postgres at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/none/);
    expect(down.stdout + down.stderr).not.toContain('secret-pw');
    const limit = await cli(['status', '--limit', 'all'], { DATABASE_URL: 'postgres://127.0.0.1:1/none' });
    expect(limit.code).toBe(2);
    expect(limit.stderr).toBe('cpq-sync: --limit must be a whole number from 1 to 1000, got "all"\n');
  });

  it('formats durations for people', () => {
    expect(formatDuration(0.25)).toBe('0.3s');
    expect(formatDuration(59.94)).toBe('59.9s');
    expect(formatDuration(61)).toBe('1m 01s');
    expect(formatDuration(3599)).toBe('59m 59s');
    expect(formatDuration(3723)).toBe('1h 02m');
  });
});
