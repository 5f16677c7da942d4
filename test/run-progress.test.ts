import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { afterEach, describe, expect } from 'vitest';
import type { RunProgressReport, StreamReport } from '../src/db/schema.js';
import { runSync } from '../src/sync/run.js';
import { formatStatus, readStatus, type StatusReport } from '../src/worker/status.js';
import { Cleanups, cli, until, type CliProcess, type LogLine } from './helpers/cli-process.js';
import { migrateBefore, untilWaitingForLock, type TestDatabase } from './helpers/database.js';
import { it, snapshotTables, type Harness } from './helpers/harness.js';
import { holdRequests } from './helpers/scripted-pages.js';

/*
 * A running run's progress in its record (cpq.sync_runs.progress, migration 0031), as `status`
 * shows it beside the run: before, a run recorded `running` had no counts until it ended, and
 * `status` showed `running 7.9s…` through a first load of minutes.
 */

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const sum = (ns: number[]) => ns.reduce((n, m) => n + m, 0);

/** What the run's `page read` lines say it has read: pages, users received and CPQ's totals of the streams started, streams read whole. */
function readSoFar(lines: LogLine[], streams: number): Omit<RunProgressReport, 'phase'> {
  const pages = lines.filter((l) => l.msg === 'page read');
  const last = new Map<string, { received: number; totalResults: number }>();
  for (const l of pages) last.set(l.stream as string, { received: l.received as number, totalResults: l.totalResults as number });
  const reads = [...last.values()];
  return {
    pages: pages.length,
    received: sum(reads.map((r) => r.received)),
    totalResults: reads.length === 0 ? null : sum(reads.map((r) => r.totalResults)),
    streamsDone: reads.filter((r) => r.received === r.totalResults).length,
    streams,
  };
}

/** The progress run `id`'s record holds now. */
async function recorded(t: TestDatabase, id: string): Promise<RunProgressReport | null> {
  const [row] = await t.query<{ progress: RunProgressReport | null }>(`SELECT progress FROM cpq.sync_runs WHERE id = $1`, [id]);
  return row!.progress;
}

/** Waits until the record of the site's running run holds `expected` (written within the throttle's interval); its id. */
async function untilRecorded(t: TestDatabase, expected: () => RunProgressReport): Promise<string> {
  let id = '';
  let last: unknown;
  await until(
    'the running run to record its progress',
    async () => {
      const [row] = await t.query<{ id: string; progress: RunProgressReport | null }>(
        `SELECT id::text AS id, progress FROM cpq.sync_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1`,
      );
      id = row?.id ?? '';
      last = row?.progress;
      return isDeepStrictEqual(last, expected());
    },
    20_000,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}: recorded ${JSON.stringify(last)}, expected ${JSON.stringify(expected())}`);
  });
  return id;
}

const env = (h: Harness, extra: Record<string, string> = {}) => ({
  CPQ_BASE_URL: h.sim.baseUrl,
  DATABASE_URL: h.t.url,
  CPQ_COMPANIES: '_host,partner1',
  CPQ_PAGE_SIZE: '5',
  CPQ_KEY_RANGES: '1',
  // One company after the other: the first is read whole while the second reads.
  CPQ_CONCURRENCY: '1',
  ...extra,
});

async function statusOf(h: Harness): Promise<{ text: string; json: StatusReport }> {
  const text = await cli(['status'], { DATABASE_URL: h.t.url });
  const json = await cli(['status', '--json'], { DATABASE_URL: h.t.url });
  expect(text.stderr + json.stderr).toBe('');
  return { text: text.stdout, json: JSON.parse(json.stdout) as StatusReport };
}

const count = (n: number) => n.toLocaleString('en-US');

/** A session in a transaction that took `lock` (a LOCK TABLE statement); ROLLBACK on it lets go. */
async function holdLock(h: Harness, lock: string): Promise<pg.Client> {
  const blocker = new pg.Client({ connectionString: h.t.url });
  await blocker.connect();
  cleanups.push(() => blocker.end());
  await blocker.query('BEGIN');
  await blocker.query(lock);
  return blocker;
}

describe('a running run shows how far it has come', () => {
  it('in status and status --json: its pages, users read of those CPQ reported and streams, as read; moving on; then merging', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 23, integrationUsers: 0 });
    // A first load, held at its fourth request: three pages of _host read.
    const first = holdRequests(h.sim, 3);
    cleanups.push(first.release);
    const run: CliProcess = cleanups.spawn(['run'], env(h));
    await first.reached;
    const id = await untilRecorded(h.t, () => ({ phase: 'reading', ...readSoFar(run.lines(), 2) }));
    const early = (await recorded(h.t, id))!;
    expect(early.pages).toBeGreaterThan(0);

    const { text, json } = await statusOf(h);
    const shown = json.sites[0]!.runs[0]!;
    expect(shown).toMatchObject({ id, status: 'running', usersSeen: null });
    expect(shown.progress).toEqual({ ...early, writtenAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/) as unknown });
    const total = early.totalResults!;
    expect(text).toContain(
      `\n  run ${id} is reading: ${count(early.received)} of ${count(total)} users of the streams begun, ${count(early.pages)} pages, ${early.streamsDone} of 2 streams (as of ${shown.progress!.writtenAt.replace('T', ' ').replace(/\.\d+Z$/, '')})\n`,
    );

    // Five more requests: _host read whole, partner1 begun.
    const second = holdRequests(h.sim, 5);
    cleanups.push(second.release);
    first.release();
    await second.reached;
    await untilRecorded(h.t, () => ({ phase: 'reading', ...readSoFar(run.lines(), 2) }));
    const later = (await recorded(h.t, id))!;
    expect(later.pages).toBeGreaterThan(early.pages);
    expect(later.received).toBeGreaterThan(early.received);
    expect(later.streamsDone).toBe(1);
    expect((await statusOf(h)).json.sites[0]!.runs[0]!.progress).toMatchObject(later);
    second.release();
    expect(await run.exited).toMatchObject({ code: 0 });
    // Ended: the record keeps its progress as it stood at the end, every stream read.
    const end = (await recorded(h.t, id))!;
    expect(end).toEqual({ phase: 'committing', ...readSoFar(run.lines(), 2) });
    expect(end.streamsDone).toBe(2);

    // An incremental run held in its merge: a session holds cpq.users against writes (not reads).
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { lastName: 'Changed' });
    const blocker = await holdLock(h, 'LOCK TABLE cpq.users IN SHARE MODE');
    const merging = cleanups.spawn(['run'], env(h));
    await untilWaitingForLock(h.t);
    const mergeId = await untilRecorded(h.t, () => ({ phase: 'merging', ...readSoFar(merging.lines(), 2) }));
    const merge = (await recorded(h.t, mergeId))!;
    expect(merge.streamsDone).toBe(2);
    expect((await statusOf(h)).text).toContain(
      `\n  run ${mergeId} is merging: ${count(merge.received)} of ${count(merge.totalResults!)} users, ${count(merge.pages)} pages, 2 of 2 streams (as of `,
    );
    await blocker.query('ROLLBACK');
    expect(await merging.exited).toMatchObject({ code: 0 });
  });

  it("a run waiting for another site's run to commit shows committing, not the phase before", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 12, integrationUsers: 0 });
    // Another run taking its commit number (migration 0017): this run's record update waits for it.
    const blocker = await holdLock(h, 'LOCK TABLE cpq.commit_order IN EXCLUSIVE MODE');
    const run = cleanups.spawn(['run'], env(h));
    await untilWaitingForLock(h.t);
    const [waiting] = await h.t.query<{ id: string }>(`SELECT id::text AS id FROM cpq.sync_runs WHERE status = 'running'`);
    const id = waiting!.id;
    // As it waits: no later write is due, so what it shows now it shows for the whole wait.
    const { text, json } = await statusOf(h);
    expect(json.sites[0]!.runs[0]).toMatchObject({ id, status: 'running', progress: { phase: 'committing', streamsDone: 2, streams: 2 } });
    expect(text).toContain(`\n  run ${id} is committing: `);
    await blocker.query('ROLLBACK');
    expect(await run.exited).toMatchObject({ code: 0 });
    expect(await recorded(h.t, id)).toMatchObject({ phase: 'committing', streamsDone: 2 });
  });

  it('with CPQ_COMPANIES=*, while it reads the company list', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 5, integrationUsers: 0 });
    // Every request held: the first is the company list's.
    const held = holdRequests(h.sim, 0);
    cleanups.push(held.release);
    const run = cleanups.spawn(['run'], env(h, { CPQ_COMPANIES: '*' }));
    await held.reached;
    const id = await untilRecorded(h.t, () => ({ phase: 'reading', pages: 0, received: 0, totalResults: null, streamsDone: 0, streams: null }));
    expect((await statusOf(h)).text).toContain(`\n  run ${id} is reading: the company list, no user yet (as of `);
    held.release();
    expect(await run.exited).toMatchObject({ code: 0 });
    expect(await recorded(h.t, id)).toMatchObject({ phase: 'committing', streamsDone: 2, streams: 2 });
  });

  it('a dead run shows the last progress it wrote', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 12, integrationUsers: 0 });
    const held = holdRequests(h.sim, 2);
    cleanups.push(held.release);
    const run = cleanups.spawn(['run'], env(h));
    await held.reached;
    const id = await untilRecorded(h.t, () => ({ phase: 'reading', ...readSoFar(run.lines(), 2) }));
    const written = (await recorded(h.t, id))!;
    // Its process killed: its session ends, and with it the site's sync lock.
    run.kill('SIGKILL');
    await run.exited;
    await until('the run to be dead', async () => (await statusOf(h)).json.sites[0]!.runs[0]!.presumedDead === true);
    const { text, json } = await statusOf(h);
    const shown = json.sites[0]!.runs[0]!;
    expect(shown).toMatchObject({ id, status: 'running', presumedDead: true });
    expect(shown.progress).toMatchObject(written);
    expect(text).toContain(
      `\n  run ${id} was reading when it last wrote: ${count(written.received)} of ${count(written.totalResults!)} users of the streams begun, ${count(written.pages)} pages, ${written.streamsDone} of 2 streams (as of `,
    );
  });

  it('a failed run leaves the user tables as they were, and its record the progress it had when it failed', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 1, usersPerCompany: 12, integrationUsers: 0 },
      { CPQ_COMPANIES: '_host,partner1', CPQ_PAGE_SIZE: '5', CPQ_CONCURRENCY: '1', CPQ_MAX_RETRIES: '0' },
    );
    await h.sync();
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { lastName: 'Changed' });
    const before = await snapshotTables(h.t);
    // _host read whole, then partner1 fails.
    h.sim.addFault({ match: { path: '/rest/v16/companies/partner1/users' }, status: 500, times: Infinity });
    const error = await h.syncError({ full: true });
    expect(error.message).toMatch(/500/);
    expect(await snapshotTables(h.t)).toEqual(before);
    const [run] = await h.t.query<{ id: string; status: string; pages: number; streams: StreamReport[]; progress: RunProgressReport }>(
      `SELECT id::text AS id, status, pages, streams, progress FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`,
    );
    expect(run!.status).toBe('failed');
    const totals = run!.streams.flatMap((s) => (s.totalResults === null ? [] : [s.totalResults]));
    expect(run!.progress).toEqual({
      phase: 'reading',
      pages: run!.pages,
      received: sum(run!.streams.map((s) => s.received)),
      totalResults: sum(totals),
      streamsDone: run!.streams.filter((s) => s.totalResults !== null && s.received === s.totalResults).length,
      streams: h.config.sites[0]!.cpq.companies.length,
    });
    expect(run!.progress.streamsDone).toBe(1);
    const status = await readStatus(h.t.pool, { sites: ['default'] });
    expect(status.sites[0]!.runs[0]!.progress).toMatchObject({ ...run!.progress, writtenAt: expect.any(String) as unknown });
    // In text too: the phase it failed in, and what it had read.
    const p = run!.progress;
    expect(formatStatus(status)).toContain(
      `\n  run ${run!.id} failed while reading: ${count(p.received)} of ${count(p.totalResults!)} users of the streams begun, ${count(p.pages)} pages, 1 of 2 streams\n`,
    );
  });

  it("never waits for a lock: the run finishes while DDL queued behind its transaction holds every later request for cpq.sync_runs, its record's included", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 20, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '5' });
    const held = holdRequests(h.sim, 2);
    cleanups.push(held.release);
    const run = runSync({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log });
    // Awaited below; a failure before that is the test's own.
    run.catch(() => undefined);
    await held.reached;
    const [{ id }] = (await h.t.query<{ id: string }>(`SELECT id::text AS id FROM cpq.sync_runs WHERE status = 'running'`)) as [{ id: string }];
    // The run's transaction holds a lock on cpq.sync_runs (its clock read it), while it waits on CPQ.
    // In this database: every test database is made from one template, so a table has the same oid
    // in each, and a run of another test file held "one" more for seconds (review GY).
    await until(
      "the run's transaction to hold a lock on cpq.sync_runs",
      async () =>
        (
          await h.t.query(
            `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.relation = 'cpq.sync_runs'::regclass AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.granted AND a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid()`,
          )
        ).length === 1,
      10_000,
    );
    // A migration of a newer release, say, waiting for it: every later lock request on the table queues behind it.
    const ddl = new pg.Client({ connectionString: h.t.url });
    await ddl.connect();
    cleanups.push(() => ddl.end());
    await ddl.query('BEGIN');
    await ddl.query('SET LOCAL lock_timeout = 0');
    const granted = ddl.query('LOCK TABLE cpq.sync_runs IN ACCESS EXCLUSIVE MODE');
    await untilWaitingForLock(h.t);
    // A plain UPDATE of the run's record waits until the run ends: a run that waited for it would wait for itself.
    const naive = new pg.Client({ connectionString: h.t.url });
    await naive.connect();
    cleanups.push(() => naive.end());
    await naive.query(`SET lock_timeout = '300ms'`);
    await expect(naive.query(`UPDATE cpq.sync_runs SET error = NULL WHERE id = $1`, [id])).rejects.toThrow(/lock timeout/);

    const from = h.logLines.length;
    held.release();
    const result = await run;
    expect(result.status).toBe('succeeded');
    await granted;
    // Its writes were made meanwhile, and each gave up at once.
    const notWritten = () =>
      h.logLines
        .slice(from)
        .map((l) => JSON.parse(l) as LogLine)
        .filter((l) => l.msg === 'run progress not written');
    await until('a progress write to give up', () => notWritten().length > 0, 10_000);
    expect(notWritten()[0]!.error).toMatch(/lock timeout/);
    await ddl.query('ROLLBACK');
    // The record is the run's end, progress included.
    expect(await recorded(h.t, id)).toMatchObject({ phase: 'committing', pages: result.pages, received: 20, totalResults: 20, streamsDone: 1, streams: 1 });
  });
});

describe('migration 0031', () => {
  it("applies to a database of the release before: earlier runs have no progress; a new run's record has it", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 0 });
    await migrateBefore(h.t, '0031');
    expect(
      await h.t.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = 'cpq' AND table_name = 'sync_runs' AND column_name = 'progress'`),
    ).toEqual([]);
    // Runs as that release recorded them: one that ended, one whose process died.
    await h.t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, finished_at) VALUES ('default', 'failed', 'full', now()), ('default', 'running', 'full', NULL)`,
    );
    // status, which never migrates, of a newer release against it (its workers not upgraded yet): no progress, no error.
    const before = await cli(['status', '--json'], { DATABASE_URL: h.t.url });
    expect(before.stderr).toBe('');
    expect((JSON.parse(before.stdout) as StatusReport).sites[0]!.runs.map((r) => [r.status, r.progress])).toEqual([
      ['running', null],
      ['failed', null],
    ]);
    expect(await cli(['migrate'], { DATABASE_URL: h.t.url })).toMatchObject({ code: 0 });
    const old = await readStatus(h.t.pool, { sites: ['default'] });
    expect(old.sites[0]!.runs.map((r) => [r.status, r.progress])).toEqual([
      ['running', null],
      ['failed', null],
    ]);
    const run = await h.sync();
    const [row] = await h.t.query<{ progress: RunProgressReport; at: boolean }>(
      `SELECT progress, progress_at BETWEEN started_at AND finished_at + interval '1 ms' AS at FROM cpq.sync_runs WHERE id = $1`,
      [run.runId],
    );
    expect(row).toEqual({ progress: { phase: 'committing', pages: run.pages, received: 7, totalResults: 7, streamsDone: 1, streams: 1 }, at: true });
  });
});
