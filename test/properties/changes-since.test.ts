import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import type { AppConfig } from '../../src/config.js';
import { exportChanges, parseAfter, parseSince, type ExportFormat } from '../../src/history/export.js';
import { CpqSimulator } from '../../src/simulator/index.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { collect } from '../helpers/export-output.js';
import type { Harness } from '../helpers/harness.js';
import { commandSettings, propertyTimeout, runs } from './arbitraries.js';
import { COMPANIES, MoveClock, pick, runFailingAt, siteBConfig, startCaseHarness } from './history-commands.js';

/*
 * `changes --since <run id>`, `--since <time>`, `--after <watermark>` and `--site` against a model
 * of the runs the test made one after the other, on two sites: succeeded (with changes or none),
 * failed at a random request, or refused. For every run R made so far (failed ones included):
 * `--since R` lists exactly the change rows of the runs that committed after R began (they began
 * after it: runs here never overlap), in commit order; `--after` R's watermark (the newest
 * commit before R began) lists the same; `--since <time>` at each commit's time to the
 * millisecond, and a millisecond after, lists the runs that committed at or after it; `--site`
 * keeps that site's rows only, whatever the other site did; and CSV lists the same change ids
 * in the same order as JSON lines.
 */

interface RunRecord {
  site: string;
  id: string;
  committed: boolean;
  /** commit_seq of the newest commit when this run began (0: none). */
  before: number;
  seq?: number;
}
interface Model {
  runs: RunRecord[];
  seq: number;
  clock: { now: number };
}
interface Real {
  h: Harness;
  b: { sim: CpqSimulator; config: AppConfig };
}
type Cmd = fc.AsyncCommand<Model, Real>;

const SITES = ['default', 'b'] as const;
const stats = { runs: 0, failed: 0, siteRows: [0, 0], sinceRows: 0 };

async function recordRun(model: Model, h: Harness, site: string, result: RunResult | undefined, before: number) {
  // The newest run of the site in cpq.sync_runs is the one just made (runs never overlap here).
  const [row] = await h.t.query<{ id: string; seq: string | null }>(
    `SELECT r.id::text, r.commit_seq::text AS seq FROM cpq.sync_runs r WHERE r.site = $1 ORDER BY r.id DESC LIMIT 1`,
    [site],
  );
  if (!row) return;
  if (model.runs.some((r) => r.id === row.id)) return; // refused before a record was made
  const committed = result?.status === 'succeeded';
  expect(row.seq !== null, `run ${row.id} committed`).toBe(committed);
  const rec: RunRecord = { site, id: row.id, committed, before };
  if (committed) rec.seq = ++model.seq;
  if (committed) expect(Number(row.seq), `commit_seq of run ${row.id}`).toBe(rec.seq);
  model.runs.push(rec);
  stats.runs++;
  if (!committed) stats.failed++;
}

class Edit implements Cmd {
  constructor(
    readonly site: 0 | 1,
    readonly company: string,
    readonly n: number,
    readonly kind: 'add' | 'update' | 'delete',
    readonly text: string,
  ) {}
  check = () => true;
  async run(_m: Model, { h, b }: Real) {
    const sim = this.site === 0 ? h.sim : b.sim;
    const user = pick(
      sim.users(this.company).filter((u) => u.oauthClientId === undefined),
      this.n,
    );
    if (this.kind === 'add') sim.addUser(this.company);
    else if (user && this.kind === 'update') sim.updateUser(this.company, String(user.login), { jobTitle: this.text });
    else if (user) sim.deleteUser(this.company, String(user.login));
  }
  toString = () => `${this.kind} user #${this.n} of ${this.company} at site ${SITES[this.site]}`;
}

class Run implements Cmd {
  constructor(
    readonly site: 0 | 1,
    readonly full: boolean,
    readonly failAt: number | undefined,
  ) {}
  check = () => true;
  async run(model: Model, { h, b }: Real) {
    const before = model.seq;
    const config = this.site === 0 ? h.config : b.config;
    let result: RunResult | undefined;
    if (this.failAt !== undefined && this.site === 0) result = (await runFailingAt(h, this.failAt, this.full)).result;
    else {
      try {
        result = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: this.full });
      } catch {
        result = undefined;
      }
    }
    await recordRun(model, h, SITES[this.site], result, before);
    await checkExports(model, h);
  }
  toString = () =>
    `run ${this.full ? 'full' : 'incremental'} of site ${SITES[this.site]}${this.failAt !== undefined && this.site === 0 ? ` failing at request ${this.failAt}` : ''}`;
}

/** The change ids of the log in commit order, per run. */
async function changeIdsByRun(h: Harness): Promise<Map<string, string[]>> {
  const rows = await h.t.query<{ run_id: string; id: string }>(`SELECT c.run_id::text, c.id::text FROM cpq.user_change_log c ORDER BY c.id`);
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.run_id, [...(out.get(r.run_id) ?? []), r.id]);
  return out;
}

async function exported(h: Harness, from: ReturnType<typeof parseSince>, format: ExportFormat, sites: string[] = []) {
  let watermark = '';
  const text = await collect(async (out) => {
    watermark = (await exportChanges(h.t.pool, from, format, out, sites)).watermark;
  });
  if (format === 'jsonl')
    return {
      ids: text
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { change_id: string }).change_id),
      watermark,
    };
  const rows = parse<{ change_id: string }>(text, { columns: true, bom: true });
  return { ids: rows.map((r) => r.change_id), watermark };
}

async function checkExports(model: Model, h: Harness) {
  const byRun = await changeIdsByRun(h);
  const committed = model.runs.filter((r) => r.committed).sort((x, y) => x.seq! - y.seq!);
  const expectedIds = (runsIn: RunRecord[]) => runsIn.flatMap((r) => byRun.get(r.id) ?? []);
  const newest = String(model.seq);
  for (const r of model.runs) {
    // committed after r began: seq > r.before, r itself excluded when committed
    const after = committed.filter((c) => c.seq! > r.before && c.id !== r.id);
    const since = await exported(h, parseSince(r.id), 'jsonl');
    expect(since.ids, `changes --since ${r.id} (${r.committed ? 'committed' : 'failed'} run of ${r.site})`).toEqual(expectedIds(after));
    expect(since.watermark, `watermark of --since ${r.id}`).toBe(newest);
    if (r.committed) {
      const w = await exported(h, parseAfter(String(r.seq)), 'jsonl');
      expect(w.ids, `changes --after ${r.seq}`).toEqual(expectedIds(committed.filter((c) => c.seq! > r.seq!)));
    }
    for (const site of SITES) {
      const one = await exported(h, parseSince(r.id), 'jsonl', [site]);
      stats.siteRows[SITES.indexOf(site)]! += one.ids.length;
      expect(one.ids, `changes --since ${r.id} --site ${site}`).toEqual(expectedIds(after.filter((c) => c.site === site)));
    }
    stats.sinceRows += since.ids.length;
    const csv = await exported(h, parseSince(r.id), 'csv');
    expect(csv.ids, `changes --since ${r.id} --format csv`).toEqual(since.ids);
  }
  // --since <time>: at each commit's time cut to the millisecond, and a millisecond later.
  const times = await h.t.query<{ id: string; us: string }>(
    `SELECT id::text, (extract(epoch FROM committed_at) * 1000000)::bigint::text AS us FROM cpq.sync_runs WHERE commit_seq IS NOT NULL`,
  );
  const usOf = new Map(times.map((t) => [t.id, BigInt(t.us)]));
  for (const t of times) {
    const ms = BigInt(t.us) / 1000n;
    for (const at of [ms, ms + 1n, ms - 1n]) {
      const iso = new Date(Number(at)).toISOString();
      const got = await exported(h, parseSince(iso), 'jsonl');
      const want = committed.filter((c) => usOf.get(c.id)! >= at * 1000n);
      expect(got.ids, `changes --since ${iso}`).toEqual(expectedIds(want));
    }
  }
}

const company = fc.constantFrom(...COMPANIES);
const site = fc.constantFrom<0 | 1>(0, 1);
const commands: fc.Arbitrary<Cmd>[] = [
  fc.integer({ min: 0, max: 5000 }).map((ms) => new MoveClock(ms)),
  fc
    .tuple(site, company, fc.nat(), fc.constantFrom<'add' | 'update' | 'delete'>('add', 'update', 'update', 'delete'), fc.string())
    .map(([s, c, n, k, t]) => new Edit(s, c, n, k, t)),
  fc.tuple(site, fc.boolean(), fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined })).map(([s, f, at]) => new Run(s, f, at)),
  fc.tuple(site, fc.boolean(), fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined })).map(([s, f, at]) => new Run(s, f, at)),
];

describe('changes --since / --after / --site against a model of the runs (property)', () => {
  it(
    'each export lists exactly the changes of the runs the model says, in commit order',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, commandSettings(14)), async (cmds) => {
          const { clock, options, h } = await startCaseHarness();
          const simB = new CpqSimulator(options);
          const b = { sim: simB, config: siteBConfig(h, await simB.start()) };
          const model: Model = { runs: [], seq: 0, clock };
          try {
            await fc.asyncModelRun(() => ({ model, real: { h, b } }), [new Run(0, true, undefined), ...cmds, new Run(1, false, undefined)]);
          } finally {
            await simB.stop();
            await h.close();
          }
        }),
        runs(6, propertyTimeout(240_000)),
      );
      console.log(`changes-since: ${JSON.stringify(stats)}`);
    },
    propertyTimeout(240_000),
  );
});
