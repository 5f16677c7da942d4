import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppConfig } from '../../src/config.js';
import type { RequestRecord } from '../../src/simulator/server.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { rowVersions, snapshotEverything } from '../helpers/db-equals-simulator.js';
import type { Harness } from '../helpers/harness.js';
import { commandSettings, propertyTimeout, runs } from './arbitraries.js';
import { COMPANIES, DeleteUser, RestoreUser, clockMove } from './history-commands.js';
import { CreateUser, UpdateUser, applyRun, checkRun, startCase, withFormat, type Cmd, type Model, type Real } from './run-model.js';

/*
 * Run sequences while the worker's own clock jumps, ahead or back, by seconds to days: between
 * runs and during them (at a request the run makes), as NTP stepping it or a VM resumed would.
 * The database's clock and CPQ's (the simulator's, which the case's commands move) go on as they
 * were. README: runs are dated by the database's clock, SYNC_FULL_EVERY counts by it, and a worker
 * whose clock is off changes none of that. So after every run, whatever the worker's clock did:
 *  - the tables, the run's change rows and the as-of state at every run's effective_at equal the
 *    reference model's (run-model.ts, as run-sequences.test.ts checks them);
 *  - each stream read in full or incrementally as the model says, SYNC_FULL_EVERY judged by the
 *    database's clock: set, per run, below the age of every stream's last full read (due) or ten
 *    minutes past the oldest (not due), both ages by the database's clock; and each stream's cursor
 *    where the model moved it (CPQ's clock, which the case may set back by hours, clears it: the
 *    stream's next read is a full one);
 *  - the run record ends after it starts, its effective_at lies between and after the previous
 *    successful run's;
 *  - each user's versions are contiguous (every one but the last ends where the next begins, each
 *    begins before it ends) and every version's bounds are runs' effective_at;
 *  - a run repeated with no edit in between writes nothing but bookkeeping.
 * A failed run leaves every row as it was, and its record too ends after it starts.
 */

const RealDate = Date;
/** This process's clock less the real one: what the commands step. */
let workerOffsetMs = 0;
/**
 * `Date` as a worker whose clock is off sees it: now is `workerOffsetMs` from the real time; dates
 * parsed or built from numbers are left as they are (test/fixtures/clock-skew.mjs, in this process).
 */
class WorkerDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() + workerOffsetMs);
    else super(...(args as [string]));
  }
  static override now(): number {
    return RealDate.now() + workerOffsetMs;
  }
  // Dates made before the swap (or by code holding the real Date) are dates all the same.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof RealDate;
  }
}
beforeAll(() => {
  globalThis.Date = WorkerDate as DateConstructor;
});
afterAll(() => {
  globalThis.Date = RealDate;
});

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const describeMs = (ms: number) => {
  const abs = Math.abs(ms);
  const [n, unit] = abs >= DAY ? [abs / DAY, 'd'] : abs >= HOUR ? [abs / HOUR, 'h'] : abs >= 60_000 ? [abs / 60_000, 'min'] : [abs / SECOND, 's'];
  return `${ms < 0 ? '-' : '+'}${Number(n.toFixed(3))}${unit}`;
};

/** A step of the worker's clock: seconds, minutes, hours or one to five days, ahead or back. */
const stepMs: fc.Arbitrary<number> = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 1, max: 59 }).map((s) => s * SECOND),
      fc.integer({ min: 1, max: 59 }).map((m) => m * 60_000),
      fc.integer({ min: 1, max: 23 }).map((h) => h * HOUR),
      fc.integer({ min: 24, max: 5 * 24 }).map((h) => h * HOUR),
    ),
    fc.boolean(),
  )
  .map(([ms, back]) => (back ? -ms : ms));

/** Steps of the worker's clock at a run's requests: at the `at`-th, by `ms`. */
interface RunStep {
  at: number;
  ms: number;
}
// Mostly early: a run asks for the company list, then the integration users, then the companies' pages.
const runSteps: fc.Arbitrary<RunStep[]> = fc.array(
  fc.record({ at: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 4, max: 10 }) }), ms: stepMs }),
  { maxLength: 2 },
);
const showSteps = (steps: RunStep[]) => steps.map((s) => `, clock ${describeMs(s.ms)} at request ${s.at}`).join('');

/** Steps the worker's clock at the requests `steps` name (and counts them): the run's CPQ asks nothing of it. */
function stepAtRequests(h: Harness, steps: RunStep[], also?: (req: RequestRecord, seen: number) => void): () => number {
  let seen = 0;
  h.sim.onRequest = (req) => {
    seen++;
    for (const s of steps) if (s.at === seen) workerOffsetMs += s.ms;
    also?.(req, seen);
  };
  return () => seen;
}

class StepWorkerClock implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run() {
    workerOffsetMs += this.ms;
  }
  toString = () => `worker clock ${describeMs(this.ms)}`;
}

/** How a run is asked to read: in full (--full), or with SYNC_FULL_EVERY due or not by the database's clock. */
type Kind = 'full' | 'due' | 'not due';

/**
 * SYNC_FULL_EVERY for a run of `kind`, from the ages of the streams' last full reads by the
 * database's clock now (they only grow until the run starts): half the youngest (every stream due),
 * or the oldest and ten minutes (none due: the run starts well within them; a worker judging by
 * its own clock ten minutes ahead would read in full). A site with no full read yet reads in full anyway.
 */
async function fullEveryFor(h: Harness, kind: Kind): Promise<number> {
  const [ages] = await h.t.query<{ youngest: string | null; oldest: string | null }>(
    `SELECT floor(extract(epoch FROM now() - max(last_full_sync_at)) * 1000)::bigint::text AS youngest,
            floor(extract(epoch FROM now() - min(last_full_sync_at)) * 1000)::bigint::text AS oldest
     FROM cpq.sync_state WHERE site = $1`,
    [h.config.sites[0]!.name],
  );
  if (ages!.youngest === null) return 7 * DAY;
  return kind === 'due' ? Math.max(1, Math.floor(Number(ages!.youngest) / 2)) : Number(ages!.oldest) + 10 * 60_000;
}

/** Per stream, whether the model says the run reads it in full (src/sync/stream-cursors.ts readsFrom, integration-users.ts integrationSince). */
function expectedModes(model: Model, kind: Kind, format: 'json' | 'zip'): Record<string, 'full' | 'incremental'> {
  const all = kind !== 'not due';
  const companyFull = (company: string) => all || format === 'zip' || !model.cursors.has(`companies/${company}`);
  const out: Record<string, 'full' | 'incremental'> = {};
  for (const company of COMPANIES) out[`companies/${company}`] = companyFull(company) ? 'full' : 'incremental';
  const integrationFull = all || format === 'zip' || !model.cursors.has('integrationUsers') || COMPANIES.some(companyFull);
  out.integrationUsers = integrationFull ? 'full' : 'incremental';
  return out;
}
const runMode = (modes: Record<string, string>) => {
  const set = new Set(Object.values(modes));
  return set.size === 1 ? [...set][0] : 'mixed';
};

/** The run record's times, by the database's clock whatever the worker's: it ends after it starts, and a success takes effect in between, after the previous success. */
async function expectRunTimes(h: Harness, runId: string, succeeded: boolean): Promise<void> {
  const [run] = await h.t.query<Record<string, boolean | null>>(
    `SELECT finished_at >= started_at AS ends_after_start,
            effective_at BETWEEN started_at AND finished_at AS effective_within,
            effective_at > coalesce((SELECT max(effective_at) FROM cpq.sync_runs p WHERE p.site = r.site AND p.status = 'succeeded' AND p.id < r.id), '-infinity') AS after_previous
     FROM cpq.sync_runs r WHERE id = $1`,
    [runId],
  );
  // A failed run may have fixed its effective time (its first write began) before it failed: no version has it.
  expect(succeeded ? run : { ends_after_start: run!.ends_after_start }, `run ${runId}'s times`).toEqual(
    succeeded ? { ends_after_start: true, effective_within: true, after_previous: true } : { ends_after_start: true },
  );
}

/**
 * Versions whose bounds break the history: a version that does not begin before it ends, one
 * other than a user's last that does not end where the next begins (a gap or an overlap), a last
 * one that ends, or a bound that is no successful run's effective_at.
 */
async function brokenVersions(h: Harness): Promise<unknown[]> {
  return h.t.query(
    `WITH runs AS (SELECT effective_at FROM cpq.sync_runs WHERE status = 'succeeded'),
     v AS (
       SELECT id, valid_from, valid_to,
              lead(valid_from) OVER (PARTITION BY id ORDER BY valid_from) AS next_from,
              row_number() OVER (PARTITION BY id ORDER BY valid_from DESC) AS from_last
       FROM cpq.user_history)
     SELECT id, valid_from::text, valid_to::text, next_from::text FROM v
     WHERE NOT (valid_from < coalesce(valid_to, 'infinity'))
        OR (from_last > 1 AND valid_to IS DISTINCT FROM next_from)
        OR (from_last = 1 AND valid_to IS NOT NULL)
        OR valid_from NOT IN (SELECT effective_at FROM runs)
        OR (valid_to IS NOT NULL AND valid_to NOT IN (SELECT effective_at FROM runs))
     ORDER BY id, valid_from`,
  );
}

/**
 * The database as a repeated run must leave it: every row but the bookkeeping a read moves (when a
 * user, a stream, a site was last read; the commit order) and the streams' cursors (checkRun holds
 * them to the model's: a cursor the first run cleared, CPQ's clock found set back, the repeat's full
 * read sets again).
 */
async function withoutBookkeeping(h: Harness): Promise<Record<string, string[]>> {
  const everything = await snapshotEverything(h.t);
  delete everything.commit_order;
  const out: Record<string, string[]> = {};
  for (const [table, rows] of Object.entries(everything))
    out[table] = rows
      .map((row) => {
        const { last_synced_at: _s, last_full_sync_at: _f, last_run_id: _r, updated_at: _u, cursor: _c, ...rest } = JSON.parse(row) as Record<string, unknown>;
        return JSON.stringify(rest);
      })
      .sort();
  return out;
}

/** One run as the model expects it, checked; the worker's clock steps at the requests `steps` name. */
async function checkedRun(model: Model, real: Real, kind: Kind, format: 'json' | 'zip', steps: RunStep[]): Promise<void> {
  const { h } = real;
  const config: AppConfig = { ...withFormat(h.config, format), fullEveryMs: await fullEveryFor(h, kind) };
  const modes = expectedModes(model, kind, format);
  stepAtRequests(h, steps);
  let result: RunResult;
  try {
    result = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: kind === 'full' });
  } finally {
    h.sim.onRequest = undefined;
  }
  const changes = applyRun(model, h.sim, kind !== 'not due', format);
  await checkRun(model, real, result, changes);
  const [record] = await h.t.query<{ mode: string; streams: { stream: string; mode: string }[] }>(`SELECT mode, streams FROM cpq.sync_runs WHERE id = $1`, [
    result.runId,
  ]);
  expect(
    { mode: record!.mode, streams: Object.fromEntries(record!.streams.map((s) => [s.stream, s.mode])) },
    `run ${result.runId}'s reads, SYNC_FULL_EVERY=${config.fullEveryMs}ms judged by the database's clock`,
  ).toEqual({ mode: runMode(modes), streams: modes });
  await expectRunTimes(h, result.runId, true);
  expect(await brokenVersions(h), 'user versions out of order, with gaps or overlaps, or bounded by no run').toEqual([]);
}

class Run implements Cmd {
  constructor(
    readonly kind: Kind,
    readonly format: 'json' | 'zip',
    readonly steps: RunStep[],
    /** Run again at once, no edit in between (the clock stepped by these, at its requests): nothing but bookkeeping may change. */
    readonly again: RunStep[] | undefined,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    await checkedRun(model, real, this.kind, this.format, this.steps);
    if (!this.again) return;
    const before = await withoutBookkeeping(real.h);
    await checkedRun(model, real, this.kind, this.format, this.again);
    expect(await withoutBookkeeping(real.h), 'a run repeated with no edit in between').toEqual(before);
  }
  toString = () =>
    `run ${this.kind === 'full' ? '--full' : `with SYNC_FULL_EVERY ${this.kind}`} ${this.format}${showSteps(this.steps)}${this.again ? `; again${showSteps(this.again)}` : ''}`;
}

/** One request (the `at`-th) answered 500 however often it is retried, the clock stepping meanwhile: the run fails and changes no row. */
class FailingRun implements Cmd {
  constructor(
    readonly at: number,
    readonly steps: RunStep[],
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const before = await rowVersions(h.t);
    const seen = stepAtRequests(h, this.steps, (req, n) => {
      if (n === this.at) h.sim.addFault({ match: { method: req.method, path: req.path, query: req.query }, status: 500, times: 10_000 });
    });
    let result: RunResult | undefined;
    try {
      result = await runSync({ pool: h.t.pool, db: h.t.db, config: { ...h.config, fullEveryMs: await fullEveryFor(h, 'not due') }, log: h.log });
    } catch {
      result = undefined;
    } finally {
      h.sim.onRequest = undefined;
      h.sim.clearFaults();
    }
    if (result?.status === 'succeeded' && seen() < this.at) {
      // It ended before that request: an ordinary run.
      await checkRun(model, real, result, applyRun(model, h.sim, false, 'json'));
      await expectRunTimes(h, result.runId, true);
      return;
    }
    expect(result?.status, 'a run one of whose requests always failed').not.toBe('succeeded');
    expect(await rowVersions(h.t), 'rows after a failed run').toEqual(before);
    const [last] = await h.t.query<{ id: string }>(`SELECT max(id)::text AS id FROM cpq.sync_runs`);
    await expectRunTimes(h, last!.id, false);
  }
  toString = () => `run failing at request ${this.at} (500)${showSteps(this.steps)}`;
}

const company = fc.constantFrom(...COMPANIES);
const commands: fc.Arbitrary<Cmd>[] = [
  stepMs.map((ms) => new StepWorkerClock(ms)),
  stepMs.map((ms) => new StepWorkerClock(ms)),
  clockMove,
  company.map((c) => new CreateUser(c)),
  fc.tuple(company, fc.nat(), fc.constantFrom('Smith', 'Jones', 'Ñúñez', '')).map(([c, n, name]) => new UpdateUser(c, n, name)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new DeleteUser(c, n)),
  fc.nat().map((n) => new RestoreUser(n)),
  fc
    .tuple(
      fc.constantFrom<Kind>('full', 'due', 'not due', 'not due'),
      fc.constantFrom<'json' | 'zip'>('json', 'json', 'zip'),
      runSteps,
      fc.option(runSteps, { nil: undefined }),
    )
    .map(([kind, format, steps, again]) => new Run(kind, format, steps, again)),
  fc
    .tuple(fc.constantFrom<Kind>('due', 'not due'), fc.constantFrom<'json' | 'zip'>('json'), runSteps, fc.option(runSteps, { nil: undefined }))
    .map(([kind, format, steps, again]) => new Run(kind, format, steps, again)),
  fc.tuple(fc.integer({ min: 1, max: 10 }), runSteps).map(([at, steps]) => new FailingRun(at, steps)),
];

describe("run sequences while the worker's clock jumps (property)", () => {
  it(
    "after every run the reads, the run's times, the history and every as-of state are the database clock's, whatever the worker's did",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, commandSettings(10)), async (cmds) => {
          workerOffsetMs = 0;
          const { h, model } = await startCase();
          try {
            // A first run, then the sequence, then runs that check the state it left: one not due
            // whose worker's clock jumps two days ahead once the run has begun, one due whose clock
            // jumps three days back, and that one again.
            await fc.asyncModelRun(
              () => ({ model, real: { h } }),
              [
                new Run('not due', 'json', [], undefined),
                ...cmds,
                new Run('not due', 'json', [{ at: 1, ms: 2 * DAY }], undefined),
                new Run('due', 'json', [{ at: 1, ms: -3 * DAY }], [{ at: 2, ms: HOUR }]),
              ],
            );
          } finally {
            workerOffsetMs = 0;
            await h.close();
          }
        }),
        runs(6, propertyTimeout(240_000)),
      );
    },
    propertyTimeout(240_000),
  );
});
