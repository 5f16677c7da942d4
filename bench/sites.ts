/**
 * Many sites on several workers: N simulated sites of one company each, and P `cpq-sync schedule`
 * processes sharing one fresh database, every site's cron due at the same second. Measures
 *   - the wall time from that tick until every site has a succeeded run, against N times the
 *     time one site of the same size takes when it is synced alone (`cpq-sync run --site`);
 *   - the peak RSS of each schedule process, with N sites and, for comparison, with 1 and 5, so
 *     that memory per process can be seen to stay flat as the sites grow;
 *   - how the sites were split between the processes (claimed ticks per worker).
 *
 *   npm run bench:sites -- --sites 20 --users 20000 --processes 2 --concurrency 2
 *
 * Every process is the built CLI (`bin/cpq-sync.js`) under bench/measure-child.mjs, which reports
 * the process's peak RSS (VmHWM) as it exits, with the Docker image's memory settings unless
 * --heap-mb / --malloc-mmap-threshold say otherwise, and the CLI's SYNC_HEAP_GROWING_PERCENT
 * unless --heap-growing-percent does.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { freePort } from '../test/helpers/free-port.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * How long after the schedule processes are spawned their common tick is due: long enough for
 * each to start Node, connect and find the schema up to date on a busy 2-core machine. A process
 * not started by then makes the benchmark fail rather than measure a late start.
 */
const TICK_LEAD_MS = 10_000;
/** How often the database is asked whether every site has synced. (Peak RSS needs no sampling: the kernel keeps VmHWM.) */
const POLL_MS = 200;

interface Args {
  sites: number;
  users: number;
  processes: number;
  /** SYNC_SITE_CONCURRENCY of each process. */
  concurrency: number;
  /** V8 old-space cap of each sync process, as the Docker image sets it (0 = Node's default). */
  heapMb: number;
  /** glibc's MALLOC_MMAP_THRESHOLD_ of each sync process, as the Docker image sets it (0 = glibc's default). */
  mallocMmapThreshold: number;
  /** SYNC_HEAP_GROWING_PERCENT of each sync process (undefined = the CLI's default). */
  heapGrowingPercent: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sites: 20, users: 20_000, processes: 2, concurrency: 2, heapMb: 192, mallocMmapThreshold: 131072, heapGrowingPercent: undefined };
  const whole = (flag: string, text: string | undefined, min: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) throw new Error(`${flag} needs a whole number of at least ${min}, got "${text ?? ''}"`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    if (flag === '--sites') args.sites = whole(flag, value, 1);
    else if (flag === '--users') args.users = whole(flag, value, 1);
    else if (flag === '--processes') args.processes = whole(flag, value, 1);
    else if (flag === '--concurrency') args.concurrency = whole(flag, value, 1);
    else if (flag === '--heap-mb') args.heapMb = whole(flag, value, 0);
    else if (flag === '--malloc-mmap-threshold') args.mallocMmapThreshold = whole(flag, value, 0);
    else if (flag === '--heap-growing-percent') args.heapGrowingPercent = whole(flag, value, 0);
    else
      throw new Error(`unknown argument ${flag} (known: --sites --users --processes --concurrency --heap-mb --malloc-mmap-threshold --heap-growing-percent)`);
  }
  return args;
}

/** A CLI process under measure-child.mjs: its pid, whether it logged `worker started`, and how it ended. */
interface CliProcess {
  pid: number;
  started: () => boolean;
  /** Resolves when it exits, whatever the code; exitCode and peak RSS (MB, NaN when not reported) then. */
  exited: Promise<{ code: number | null; seconds: number; peakRssMb: number; stderr: string }>;
  kill: (signal: NodeJS.Signals) => void;
}

function spawnCli(args: string[], env: Record<string, string>): CliProcess {
  const startedAt = performance.now();
  const child = spawn(process.execPath, [join(ROOT, 'bench/measure-child.mjs'), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
  if (child.pid === undefined) throw new Error(`cpq-sync ${args.join(' ')}: could not start`);
  let workerStarted = false;
  let pending = '';
  // Only the `worker started` line matters here; the rest of the JSON log is read and dropped.
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.includes('"worker started"')) workerStarted = true;
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; seconds: number; peakRssMb: number; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      const rss = /BENCH_MAX_RSS_KB=(\d+)/.exec(stderr);
      resolve({
        code,
        seconds: (performance.now() - startedAt) / 1000,
        peakRssMb: rss ? Number(rss[1]) / 1024 : NaN,
        stderr: stderr.replace(/BENCH_\w+=.*/g, '').trim(),
      });
    });
  });
  return { pid: child.pid, started: () => workerStarted, exited, kill: (signal) => child.kill(signal) };
}

/** Runs a CLI command to its end; throws with its stderr when it fails. */
async function runCli(args: string[], env: Record<string, string>): Promise<{ seconds: number; peakRssMb: number }> {
  const ended = await spawnCli(args, env).exited;
  if (ended.code !== 0) throw new Error(`cpq-sync ${args.join(' ')} exited ${ended.code}: ${ended.stderr.slice(-2000)}`);
  return ended;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

interface SiteEntry {
  name: string;
  baseUrl: string;
  companies: string;
  integrationUsers: 'off';
  cron?: string;
  timezone?: string;
}

/** One scenario of the schedule processes: how long the sites took from their tick, and what each process used. */
interface ScheduleResult {
  sites: number;
  /** From the tick to the last site's run finishing (the database's clock, which the ticks are named by too). */
  seconds: number;
  /** The runs' own durations, summed: what the same runs took one after the other, contention included. */
  runSeconds: number;
  processes: { pid: number; peakRssMb: number; ticks: number }[];
}

/** A fresh database in the benchmark's cluster, with the schema applied (so a process's start does not race the tick). */
type FreshDatabase = (name: string, sitesFile: string) => Promise<{ url: string; client: pg.Client; drop: () => Promise<void> }>;

async function scheduleScenario(
  args: Args,
  sites: SiteEntry[],
  dir: string,
  freshDatabase: FreshDatabase,
  childEnv: Record<string, string>,
): Promise<ScheduleResult> {
  const sitesFile = join(dir, `sites-${sites.length}.json`);
  await writeFile(sitesFile, JSON.stringify(sites));
  const database = await freshDatabase(`bench_sites_${sites.length}`, sitesFile);
  // Every site's cron names the same second, a little ahead: one tick of each, all due together.
  // Chosen once the database is ready, so the lead is all the processes' own.
  const tick = new Date(Math.ceil((Date.now() + TICK_LEAD_MS) / 1000) * 1000);
  const cron = `${tick.getUTCSeconds()} ${tick.getUTCMinutes()} ${tick.getUTCHours()} * * *`;
  await writeFile(sitesFile, JSON.stringify(sites.map((s) => ({ ...s, cron, timezone: 'UTC' }))));
  const env = { ...childEnv, CPQ_SITES_FILE: sitesFile, DATABASE_URL: database.url, SYNC_SITE_CONCURRENCY: String(args.concurrency), LOG_LEVEL: 'info' };
  const workers = Array.from({ length: args.processes }, () => spawnCli(['schedule'], env));
  try {
    // A process that ends early (a configuration error) fails the scenario at once instead of at the timeout.
    const early = Promise.race(workers.map((w) => w.exited)).then((e) => {
      throw new Error(`a schedule process exited ${e.code} before the benchmark stopped it: ${e.stderr.slice(-2000)}`);
    });
    early.catch(() => undefined);
    const check = <T>(work: Promise<T>) => Promise.race([work, early]);
    await check(until('every schedule process started', () => Promise.resolve(workers.every((w) => w.started())), TICK_LEAD_MS * 3));
    if (Date.now() >= tick.getTime())
      throw new Error(
        `the schedule processes took more than ${TICK_LEAD_MS / 1000} s to start (machine load ${loadavg()[0]!.toFixed(1)}): run again when it is quieter`,
      );
    const failedRuns = async () =>
      (
        await database.client.query<{ site: string; error: string }>(
          `SELECT site, coalesce(error, status) AS error FROM cpq.sync_runs WHERE status IN ('failed', 'abandoned')`,
        )
      ).rows;
    await check(
      until(
        `a succeeded run of each of the ${sites.length} sites`,
        async () => {
          const failed = await failedRuns();
          if (failed.length > 0) throw new Error(`site ${failed[0]!.site} failed: ${failed[0]!.error}`);
          const done = await database.client.query<{ n: number }>(`SELECT count(DISTINCT site)::int AS n FROM cpq.sync_runs WHERE status = 'succeeded'`);
          return done.rows[0]!.n === sites.length;
        },
        60 * 60_000,
      ),
    );
    const runs = await database.client.query<{ last: Date; run_seconds: number }>(
      `SELECT max(finished_at) AS last, sum(extract(epoch FROM finished_at - started_at))::float8 AS run_seconds FROM cpq.sync_runs WHERE status = 'succeeded'`,
    );
    // claimed_by is host:pid:random; the pid says which of our processes claimed the tick.
    const ticks = await database.client.query<{ claimed_by: string; n: number }>(
      `SELECT claimed_by, count(*)::int AS n FROM cpq.scheduled_ticks GROUP BY claimed_by`,
    );
    const ticksOf = (pid: number) => ticks.rows.find((r) => r.claimed_by.split(':').at(-2) === String(pid))?.n ?? 0;
    for (const w of workers) w.kill('SIGTERM');
    const ended = await Promise.all(workers.map((w) => w.exited));
    ended.forEach((e, i) => {
      if (e.code !== 0) throw new Error(`schedule process ${workers[i]!.pid} exited ${e.code} on SIGTERM: ${e.stderr.slice(-2000)}`);
    });
    return {
      sites: sites.length,
      seconds: (runs.rows[0]!.last.getTime() - tick.getTime()) / 1000,
      runSeconds: runs.rows[0]!.run_seconds,
      processes: workers.map((w, i) => ({ pid: w.pid, peakRssMb: ended[i]!.peakRssMb, ticks: ticksOf(w.pid) })),
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL'); // after a failure; a process already gone ignores it
    await Promise.all(workers.map((w) => w.exited));
    await database.drop();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const childEnv: Record<string, string> = {
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'warn',
    ...(args.heapMb > 0 ? { NODE_OPTIONS: `--max-old-space-size=${args.heapMb}` } : {}),
    ...(args.mallocMmapThreshold > 0 ? { MALLOC_MMAP_THRESHOLD_: String(args.mallocMmapThreshold) } : {}),
    ...(args.heapGrowingPercent === undefined ? {} : { SYNC_HEAP_GROWING_PERCENT: String(args.heapGrowingPercent) }),
  };
  const dir = await mkdtemp(join(tmpdir(), 'cpq-bench-sites-'));
  await chmod(dir, 0o755); // the embedded Postgres runs as another user
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `${args.sites} sites x 1 company x ${args.users} users; ${args.processes} schedule processes, SYNC_SITE_CONCURRENCY=${args.concurrency}; ${
      [
        childEnv.NODE_OPTIONS,
        childEnv.MALLOC_MMAP_THRESHOLD_ && `MALLOC_MMAP_THRESHOLD_=${childEnv.MALLOC_MMAP_THRESHOLD_}`,
        childEnv.SYNC_HEAP_GROWING_PERCENT && `SYNC_HEAP_GROWING_PERCENT=${childEnv.SYNC_HEAP_GROWING_PERCENT}`,
      ]
        .filter(Boolean)
        .join(' ') || 'no memory settings'
    }`,
  );

  const simulators: CpqSimulator[] = [];
  let database: { url: string; stop: () => Promise<void> } | undefined;
  let admin: pg.Client | undefined;
  try {
    // cachePages: the warm-up sync below has each simulator render its pages once; the measured
    // syncs are then served kept bytes, as from a remote CPQ whose work costs this machine nothing
    // (the same data gives the same requests, so every later sync finds its pages kept).
    const sites: SiteEntry[] = [];
    for (let i = 0; i < args.sites; i++) {
      const sim = new CpqSimulator({ seed: i + 1, partnerCompanies: 0, usersPerCompany: args.users, integrationUsers: 0, cachePages: true });
      simulators.push(sim);
      const baseUrl = await sim.start(await freePort());
      sites.push({ name: `site${String(i + 1).padStart(2, '0')}`, baseUrl, companies: sim.companyLogins().join(','), integrationUsers: 'off' });
    }
    const rendered = () => simulators.reduce((n, s) => n + s.pagesRendered, 0);

    const external = process.env.BENCH_DATABASE_URL;
    database = external
      ? { url: external, stop: async () => undefined }
      : await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: await freePort(), database: 'bench', persistent: false });
    const cluster = database.url;
    admin = new pg.Client({ connectionString: cluster });
    await admin.connect();
    const adminClient = admin;
    // Before each measured phase: the previous phase's dirty pages written out now, so that no
    // phase pays for the checkpoint of the gigabytes the one before it wrote (the warm-up above all).
    const settle = () => adminClient.query('CHECKPOINT');
    const freshDatabase: FreshDatabase = async (name, sitesFile) => {
      await adminClient.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await adminClient.query(`CREATE DATABASE ${name}`);
      const u = new URL(cluster);
      u.pathname = `/${name}`;
      const url = u.toString();
      await runCli(['migrate'], { ...childEnv, CPQ_SITES_FILE: sitesFile, DATABASE_URL: url });
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return {
        url,
        client,
        drop: async () => {
          await client.end();
          await adminClient.query(`DROP DATABASE ${name} WITH (FORCE)`);
        },
      };
    };

    const allSitesFile = join(dir, 'sites.json');
    await writeFile(allSitesFile, JSON.stringify(sites));
    const warm = await freshDatabase('bench_sites_warm_up', allSitesFile);
    const warmUp = await runCli(['run'], {
      ...childEnv,
      CPQ_SITES_FILE: allSitesFile,
      DATABASE_URL: warm.url,
      SYNC_SITE_CONCURRENCY: String(args.concurrency),
    });
    await warm.drop();
    console.log(`warm-up: every site once by one \`cpq-sync run\` (simulators rendering): ${warmUp.seconds.toFixed(1)} s, ${rendered()} responses rendered`);

    // One site alone, twice (each into a fresh database): the run's own duration, as cpq.sync_runs has it.
    const alone: { runSeconds: number; wallSeconds: number; peakRssMb: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const db = await freshDatabase('bench_sites_alone', allSitesFile);
      await settle();
      try {
        const wall = await runCli(['run', '--site', sites[0]!.name], { ...childEnv, CPQ_SITES_FILE: allSitesFile, DATABASE_URL: db.url });
        const run = await db.client.query<{ s: number }>(
          `SELECT extract(epoch FROM finished_at - started_at)::float8 AS s FROM cpq.sync_runs WHERE status = 'succeeded'`,
        );
        alone.push({ runSeconds: run.rows[0]!.s, wallSeconds: wall.seconds, peakRssMb: wall.peakRssMb });
      } finally {
        await db.drop();
      }
    }
    const oneSite = alone.reduce((s, a) => s + a.runSeconds, 0) / alone.length;
    console.log(
      `one site alone (\`cpq-sync run --site ${sites[0]!.name}\`): ${alone.map((a) => `run ${a.runSeconds.toFixed(2)} s (process ${a.wallSeconds.toFixed(1)} s, peak RSS ${a.peakRssMb.toFixed(0)} MB)`).join('; ')}`,
    );

    // The comparisons first, smallest first; the full count last.
    const counts = [...new Set([1, 5, args.sites].filter((n) => n <= args.sites))].sort((a, b) => a - b);
    const results: ScheduleResult[] = [];
    for (const count of counts) {
      await settle();
      const before = rendered();
      const result = await scheduleScenario(args, sites.slice(0, count), dir, freshDatabase, childEnv);
      results.push(result);
      console.log(
        `${count} site(s) on ${args.processes} schedule processes: ${result.seconds.toFixed(1)} s from the tick to the last run's end; ` +
          `peak RSS ${result.processes.map((p) => p.peakRssMb.toFixed(0)).join(' / ')} MB; ticks claimed ${result.processes.map((p) => p.ticks).join(' / ')}; ` +
          `${rendered() - before} responses rendered`,
      );
    }

    const header = ['sites', 'users', 'tick → all done s', 'sites x one-site s', 'ratio', 'sum of run times s', 'peak RSS MB per process', 'ticks per process'];
    const body = results.map((r) => [
      String(r.sites),
      String(r.sites * args.users),
      r.seconds.toFixed(1),
      (r.sites * oneSite).toFixed(1),
      (r.seconds / (r.sites * oneSite)).toFixed(2),
      r.runSeconds.toFixed(1),
      r.processes.map((p) => p.peakRssMb.toFixed(0)).join(' / '),
      r.processes.map((p) => p.ticks).join(' / '),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(`\none site alone: ${oneSite.toFixed(2)} s (mean of ${alone.length} runs)\n`);
    console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n'));
    console.log(
      `\nload average at end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await admin?.end();
    for (const sim of simulators) await sim.stop();
    await database?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
