/**
 * The benchmark: a simulated site on loopback and a fresh Postgres, then
 *   1. full sync (JSON path), 2. full sync (zip path), 3. incremental after 1% changed,
 *   4. a no-op incremental, 5. a full re-sync that finds nothing changed, and three floors on the same data: fetch (read every page and discard
 *   it), load (COPY of the same normalized rows into empty copies of the tables) and land (COPY of
 *   each user's raw JSON into one unindexed table, what a general ELT tool does).
 * Each sync runs as its own process (`cpq-sync run`), so its wall time, CPU time and peak RSS are
 * its own; beside them, the CPU time of the Postgres server's processes, when it runs on this
 * machine (bench/postgres-cpu.ts).
 *
 *   npm run bench -- --users 100000
 *
 * With --profile, one more full JSON sync after the first, into a database of its own, under V8's
 * CPU profiler: its top functions by self time are printed (its times are not in the table).
 *
 * With --latency, a slow remote CPQ instead: one company (250,000 users unless --users says
 * otherwise) whose pages of 1000 users take that long each (a tenth fixed, the rest per user,
 * unless --latency-fixed says otherwise), one full sync with the default settings (or those
 * given with --set NAME=VALUE), against pages x latency, and the most requests the simulator
 * ever had in flight against CPQ_MAX_IN_FLIGHT.
 *
 *   npm run bench -- --latency 1s
 *
 * With --latency and --profile, one more such sync under the profiler, summarized the same way.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { parseDuration } from '../src/config-env.js';
import { loadConfig } from '../src/config.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { freePort } from '../test/helpers/free-port.js';
import { PostgresCpu } from './postgres-cpu.js';
import { summarizeProfile } from './profile-summary.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Args {
  users: number;
  companies: number;
  skipZip: boolean;
  /** V8 old-space cap of the sync process, as the Docker image sets it (0 = Node's default). */
  heapMb: number;
  /** glibc's MALLOC_MMAP_THRESHOLD_ of the sync process, as the Docker image sets it (0 = glibc's default). */
  mallocMmapThreshold: number;
  /** Where each sync's debug log goes (one JSON file per run), for profiling; none when unset. */
  logDir?: string;
  /** With --latency: the time a page of 1000 users takes (ms); 0 = the local benchmark. */
  latencyMs: number;
  /** The part of latencyMs every request takes, whatever its size (default a tenth). */
  latencyFixedMs?: number;
  /** Settings for the sync process (--set NAME=VALUE). */
  settings: Record<string, string>;
  /** One more full sync under V8's CPU profiler, summarized (--profile). */
  profile: boolean;
}

function duration(flag: string, text: string | undefined): number {
  const ms = text === undefined ? undefined : parseDuration(text);
  if (ms === undefined) throw new Error(`${flag} needs a duration such as 1s or 800ms`);
  return ms;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { users: 100_000, companies: 4, skipZip: false, heapMb: 192, mallocMmapThreshold: 131072, latencyMs: 0, settings: {}, profile: false };
  let users: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--users') users = Number(argv[++i]);
    else if (flag === '--companies') args.companies = Number(argv[++i]);
    else if (flag === '--skip-zip') args.skipZip = true;
    else if (flag === '--profile') args.profile = true;
    else if (flag === '--heap-mb') args.heapMb = Number(argv[++i]);
    else if (flag === '--malloc-mmap-threshold') args.mallocMmapThreshold = Number(argv[++i]);
    else if (flag === '--log-dir') args.logDir = argv[++i];
    else if (flag === '--latency') args.latencyMs = duration(flag, argv[++i]);
    else if (flag === '--latency-fixed') args.latencyFixedMs = duration(flag, argv[++i]);
    else if (flag === '--set') {
      const [name = '', ...value] = (argv[++i] ?? '').split('=');
      if (!/^[A-Z][A-Z0-9_]*$/.test(name) || value.length === 0) throw new Error('--set needs NAME=VALUE');
      args.settings[name] = value.join('=');
    } else throw new Error(`unknown argument ${flag}`);
  }
  args.users = users ?? (args.latencyMs > 0 ? 250_000 : 100_000);
  if (!Number.isInteger(args.users) || args.users < args.companies) throw new Error('--users must be a whole number of at least --companies');
  return args;
}

interface Measured {
  name: string;
  seconds: number;
  users: number;
  maxRssMb?: number;
  /** User and system CPU time of the sync process. */
  cpuSeconds?: number;
  /** CPU time of the Postgres server's processes meanwhile, when it runs on this machine. */
  postgresCpuSeconds?: number;
  /** CPU time of the sync's busiest backend (the one it writes through), sampled (see PostgresCpu.sampleBackends). */
  backendCpuSeconds?: number;
  /** What made up the sync process's memory at its largest sampled RSS (printed, not tabled). */
  rssParts?: string;
  note?: string;
}

/** What the Docker image sets for the process's memory, as the sync process gets it here. */
let childMemoryEnv: Record<string, string> = {};
let logDir: string | undefined;
let runNumber = 0;
/** The benchmark's Postgres, when its processes can be measured here (see PostgresCpu). */
let postgresCpu: PostgresCpu | undefined;

/** The server's CPU seconds so far (see PostgresCpu); undefined when not measured or its processes cannot be read. */
function postgresCpuNow(): number | undefined {
  try {
    return postgresCpu?.total();
  } catch {
    return undefined;
  }
}

/** The server's CPU seconds since `before` (from postgresCpuNow). */
function postgresCpuSince(before: number | undefined): number | undefined {
  if (before === undefined) return undefined;
  const now = postgresCpuNow();
  return now === undefined ? undefined : now - before;
}

/**
 * A floor's timed step: its wall time and what it cost Postgres, started after a CHECKPOINT, as
 * the first load starts on a fresh server, with no dirty buffers left by an earlier step to write.
 */
async function timedFloor(client: pg.Client, step: () => Promise<void>): Promise<{ seconds: number; postgresCpuSeconds?: number }> {
  await client.query('CHECKPOINT');
  const postgresBefore = postgresCpuNow();
  const started = performance.now();
  await step();
  return { seconds: (performance.now() - started) / 1000, postgresCpuSeconds: postgresCpuSince(postgresBefore) };
}

/** `nodeArgs` go to node itself, before the script (Node 20 refuses --cpu-prof in NODE_OPTIONS). */
async function runCli(
  args: string[],
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<{
  seconds: number;
  maxRssMb: number;
  rssParts?: string;
  cpuSeconds: number;
  postgresCpuSeconds?: number;
  backendCpuSeconds?: number;
  stdout: string;
}> {
  const postgresBefore = postgresCpuNow();
  const backends = postgresCpu?.sampleBackends('cpq-user-sync');
  const started = performance.now();
  const log = logDir === undefined ? undefined : createWriteStream(join(logDir, `sync-${++runNumber}.jsonl`));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bench/measure-child.mjs'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', LOG_LEVEL: log ? 'debug' : 'warn', ...childMemoryEnv, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      log?.write(d);
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      log?.write(d);
      stderr += d.toString();
    });
    child.on('close', (code) => {
      log?.end();
      const seconds = (performance.now() - started) / 1000;
      const postgresCpuSeconds = postgresCpuSince(postgresBefore);
      const rss = /BENCH_MAX_RSS_KB=(\d+)/.exec(stderr);
      const parts = /BENCH_RSS_PARTS=(.*)/.exec(stderr);
      const cpu = /BENCH_CPU_S=([\d.]+)/.exec(stderr);
      void (backends?.stop() ?? Promise.resolve(undefined))
        .catch(() => undefined)
        .then((backendCpuSeconds) => {
          if (code !== 0) reject(new Error(`cpq-sync ${args.join(' ')} exited ${code}: ${stderr.replace(/BENCH_\w+=.*/g, '').trim()}`));
          else
            resolve({
              seconds,
              maxRssMb: rss ? Number(rss[1]) / 1024 : NaN,
              rssParts: parts?.[1],
              cpuSeconds: cpu ? Number(cpu[1]) : NaN,
              postgresCpuSeconds,
              backendCpuSeconds,
              stdout,
            });
        });
    });
  });
}

/** Fetch floor: every page of every company by keyset, read and discarded (the last login is all we look at). */
async function fetchFloor(baseUrl: string, companies: string[], format: 'json' | 'zip'): Promise<number> {
  const started = performance.now();
  await Promise.all(
    companies.map(async (company) => {
      const path = `${baseUrl}/rest/v16/companies/${company}/users`;
      if (format === 'zip') {
        const response = await fetch(path, { headers: { accept: 'application/zip' } });
        if (!response.ok || !response.body) throw new Error(`zip export of ${company}: ${response.status}`);
        for await (const _chunk of response.body) {
          // read and discarded
        }
        return;
      }
      let after: string | undefined;
      for (;;) {
        const url = new URL(path);
        url.searchParams.set('expand', 'groups,accessPermissions');
        url.searchParams.set('orderby', 'login:asc');
        url.searchParams.set('limit', '1000');
        url.searchParams.set('offset', '0');
        if (after !== undefined) url.searchParams.set('q', JSON.stringify({ login: { $gt: after } }));
        else url.searchParams.set('totalResults', 'true'); // as the sync asks: the same pages
        // The same Accept as the sync sends: the simulator keeps pages per request, Accept included.
        const text = await (await fetch(url, { headers: { accept: 'application/json' } })).text();
        const logins = [...text.slice(-200_000).matchAll(/"login":"((?:[^"\\]|\\.)*)"/g)];
        if (!/"hasMore":true/.test(text.slice(-4000)) || logins.length === 0) return;
        after = JSON.parse(`"${logins.at(-1)![1]}"`) as string;
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

/**
 * Load floor: COPY the synced rows (dumped to files first) into empty copies of the tables, in
 * COPY's text format (the floor the goals of issue 18 were set against) or its binary format (as
 * the sync writes them since session 7: cheaper for Postgres). The change log's rows, which the
 * sync also writes, are left out: the floor is on the low side.
 */
async function loadFloor(url: string, dir: string, format: 'text' | 'binary'): Promise<{ seconds: number; bytes: number; postgresCpuSeconds?: number }> {
  const options = format === 'binary' ? ' (FORMAT binary)' : '';
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const tables = ['users', 'user_groups', 'user_access_permissions'];
  let bytes = 0;
  try {
    for (const table of tables) {
      await pipeline(client.query(copyTo(`COPY cpq.${table} TO STDOUT${options}`)), createWriteStream(join(dir, `${table}.copy`)));
      bytes += (await stat(join(dir, `${table}.copy`))).size;
      await client.query(`DROP TABLE IF EXISTS public.floor_${table}; CREATE TABLE public.floor_${table} (LIKE cpq.${table} INCLUDING ALL)`);
    }
    const timed = await timedFloor(client, async () => {
      for (const table of tables) {
        await pipeline(createReadStream(join(dir, `${table}.copy`)), client.query(copyFrom(`COPY public.floor_${table} FROM STDIN${options}`)));
      }
    });
    for (const table of tables) await client.query(`DROP TABLE public.floor_${table}`);
    return { ...timed, bytes };
  } finally {
    await client.end();
  }
}

/**
 * Land floor: what a general ELT tool does with the same pages, a COPY of each user's raw JSON,
 * one row per user, into a table without indexes or constraints. The rows are the synced users'
 * own raw records, dumped to a file first as for the load floor; only the COPY into the table is timed.
 */
async function landFloor(url: string, dir: string): Promise<{ seconds: number; bytes: number; postgresCpuSeconds?: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const file = join(dir, 'landed.copy');
  try {
    await pipeline(client.query(copyTo('COPY (SELECT company_login, login, raw FROM cpq.users) TO STDOUT')), createWriteStream(file));
    const bytes = (await stat(file)).size;
    await client.query('DROP TABLE IF EXISTS public.floor_landed; CREATE TABLE public.floor_landed (company text, login text, raw jsonb)');
    const timed = await timedFloor(client, () => pipeline(createReadStream(file), client.query(copyFrom('COPY public.floor_landed FROM STDIN'))));
    await client.query('DROP TABLE public.floor_landed');
    return { ...timed, bytes };
  } finally {
    await client.end();
    await rm(file, { force: true });
  }
}

/** CPU ms per 1000 users of a sync that handled some (undefined for a no-op run or a floor). */
function cpuPer1000(m: Measured): number | undefined {
  return m.cpuSeconds === undefined || m.users === 0 ? undefined : (1e6 * m.cpuSeconds) / m.users;
}

/**
 * One more sync under V8's CPU profiler (into its own database), then the top functions by self
 * time of each thread's profile. The profiler's sampling slows the sync down, so its times are
 * printed against the measured run's only to show by how much, and stay out of the table.
 */
async function profiledSync(
  cliArgs: string[],
  env: Record<string, string>,
  profileDir: string,
  measured: { seconds: number; cpuSeconds: number },
): Promise<void> {
  await mkdir(profileDir, { recursive: true });
  const run = await runCli(cliArgs, env, ['--cpu-prof', '--cpu-prof-dir', profileDir]);
  console.log(
    [
      `\nCPU profile of one more sync (cpq-sync ${cliArgs.join(' ')}), not in the table: the profiler's overhead makes it slower`,
      `  (${run.seconds.toFixed(1)} s wall, ${run.cpuSeconds.toFixed(1)} s CPU; the measured run: ${measured.seconds.toFixed(1)} s, ${measured.cpuSeconds.toFixed(1)} s CPU)`,
      `  profiles: ${profileDir}${logDir === undefined ? ' (removed at the end; keep them with --log-dir)' : ''}`,
    ].join('\n'),
  );
  const files = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile')).sort();
  if (files.length === 0) throw new Error(`the profiled sync wrote no .cpuprofile in ${profileDir}`);
  for (const file of files) {
    // node names them CPU.<date>.<time>.<pid>.<thread id>.<sequence>.cpuprofile; thread 0 is the main one.
    const thread = /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(file)?.[1];
    const summary = await summarizeProfile(join(profileDir, file), { root: ROOT, top: 15 });
    console.log(
      `  ${thread === undefined ? file : thread === '0' ? 'main thread' : `worker thread ${thread}`}: ${summary.busySamples} busy samples (${(summary.busyMs / 1000).toFixed(1)} s of wall time not idle), ${summary.idleSamples} idle; top ${summary.entries.length} functions by self time, share of the busy samples:`,
    );
    for (const line of summary.lines) console.log(`    ${line}`);
  }
}

function table(rows: Measured[], floor: number, eltFloor: number): string {
  const header = ['run', 'users', 'wall s', 'users/s', 'CPU ms/1000 users', 'Postgres CPU s', 'peak RSS MB', 'ratio to floor', 'ratio to ELT floor', 'note'];
  // Floors first, then the runs by number, whatever order they ran in.
  const order = (r: Measured) => (r.name.startsWith('floor') ? 0 : Number.parseInt(r.name, 10));
  const body = [...rows]
    .sort((a, b) => order(a) - order(b))
    .map((r) => [
      r.name,
      String(r.users),
      r.seconds.toFixed(2),
      r.seconds > 0 ? Math.round(r.users / r.seconds).toString() : '',
      cpuPer1000(r)?.toFixed(0) ?? '',
      r.postgresCpuSeconds?.toFixed(2) ?? '',
      r.maxRssMb === undefined ? '' : r.maxRssMb.toFixed(0),
      r.name.startsWith('floor') || r.name.includes('export:') ? '' : (r.seconds / floor).toFixed(2),
      r.name.startsWith('floor') || r.name.includes('export:') ? '' : (r.seconds / eltFloor).toFixed(2),
      r.note ?? '',
    ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/**
 * One full sync of a single company from a simulator whose pages take `latencyMs` each, with the
 * default settings unless --set changes them. Prints the wall time against pages x latency (the
 * time a read of one page at a time would take at least) and the most requests in flight. A
 * first sync without latency, into another database, renders every page the measured one asks
 * for (the same data gives the same probes, ranges and requests): the measured sync is then
 * served kept bytes after the latency, as from a remote CPQ whose rendering costs this machine
 * nothing.
 */
async function slowSite(args: Args, dir: string): Promise<void> {
  const pageSize = 1000;
  const fixedMs = args.latencyFixedMs ?? args.latencyMs / 10;
  if (fixedMs > args.latencyMs) throw new Error('--latency-fixed must not exceed --latency');
  const sim = new CpqSimulator({
    seed: 1,
    partnerCompanies: 0,
    usersPerCompany: args.users,
    integrationUsers: 0,
    drift: true,
    cachePages: true,
  });
  const baseUrl = await sim.start(await freePort());
  const database = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: await freePort(), database: 'bench', persistent: false });
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  const urlFor = async (name: string) => {
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(database.url);
    u.pathname = `/${name}`;
    return u.toString();
  };
  try {
    const settings = { CPQ_BASE_URL: baseUrl, CPQ_COMPANIES: '_host', CPQ_INTEGRATION_USERS: 'off', ...args.settings };
    const cpq = loadConfig(settings).cpq!;
    const pages = Math.ceil(args.users / cpq.pageSize);
    const sequential = (pages * args.latencyMs) / 1000;
    console.log(`slow CPQ: 1 company x ${args.users} users, ${pages} pages of ${cpq.pageSize} at ${args.latencyMs} ms per 1000 users (${fixedMs} ms fixed)`);
    console.log(`settings: CPQ_MAX_IN_FLIGHT=${cpq.maxInFlight} CPQ_KEY_RANGES=${cpq.keyRanges} CPQ_CONCURRENCY=${cpq.concurrency}`);
    const warmUp = await runCli(['run', '--full'], { ...settings, DATABASE_URL: await urlFor('bench_warm_up') });
    console.log(
      `  warm-up sync without latency: ${warmUp.seconds.toFixed(1)} s, ${warmUp.cpuSeconds.toFixed(1)} s CPU (${sim.pagesRendered} responses rendered)`,
    );
    await admin.query('DROP DATABASE bench_warm_up WITH (FORCE)');
    sim.setLatency({ fixedMs, perUserMs: (args.latencyMs - fixedMs) / pageSize });
    sim.requests.length = 0;
    sim.maxInFlightSeen = 0;
    const rendered = sim.pagesRendered;
    const env = { ...settings, DATABASE_URL: await urlFor('bench_slow') };
    const full = await runCli(['run', '--full'], env);
    const requests = sim.requests.length;
    console.log(
      [
        `  full sync: ${full.seconds.toFixed(1)} s, ${full.cpuSeconds.toFixed(1)} s CPU, peak RSS ${full.maxRssMb.toFixed(0)} MB, ${requests} requests (${sim.throttled} answered 429, ${sim.pagesRendered - rendered} rendered)`,
        `  pages x latency = ${sequential.toFixed(1)} s; wall / (pages x latency) = ${(full.seconds / sequential).toFixed(2)} (goal: at most 0.30)`,
        `  most requests in flight at the simulator: ${sim.maxInFlightSeen} (CPQ_MAX_IN_FLIGHT=${cpq.maxInFlight})`,
      ].join('\n'),
    );
    if (sim.maxInFlightSeen > cpq.maxInFlight) throw new Error('the simulator had more requests in flight than CPQ_MAX_IN_FLIGHT allows');
    if (args.profile) {
      // The same latency and kept pages as the measured sync.
      const profileEnv = { ...settings, DATABASE_URL: await urlFor('bench_slow_profile') };
      await profiledSync(['run', '--full'], profileEnv, await mkdtemp(join(args.logDir ?? dir, 'cpu-profile-')), full);
    }
  } finally {
    await admin.end();
    await sim.stop();
    await database.stop();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  childMemoryEnv = {
    ...(args.heapMb > 0 ? { NODE_OPTIONS: `--max-old-space-size=${args.heapMb}` } : {}),
    ...(args.mallocMmapThreshold > 0 ? { MALLOC_MMAP_THRESHOLD_: String(args.mallocMmapThreshold) } : {}),
  };
  logDir = args.logDir;
  const perCompany = Math.ceil(args.users / args.companies);
  const dir = await mkdtemp(join(tmpdir(), 'cpq-bench-'));
  await chmod(dir, 0o755); // the embedded Postgres runs as another user
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  if (args.latencyMs > 0) {
    try {
      await slowSite(args, dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return;
  }
  console.log(`data: ${args.companies} companies x ${perCompany} users, ~3 groups and ~2 access permissions each`);
  // The --set values too, those that may be secrets as (set) only: this output goes into bench/RESULTS.md.
  const shown = (name: string, value: string) => (/PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL|URL/.test(name) ? `${name}=(set)` : `${name}=${value}`);
  console.log(
    `sync process: ${
      [...Object.entries(childMemoryEnv), ...Object.entries(args.settings)].map(([k, v]) => shown(k, v)).join(' ') || 'no memory settings, no --set'
    }`,
  );

  const started = performance.now();
  // cachePages: the warm-up below renders every page once; the syncs are then served bytes, as
  // from a remote CPQ whose rendering costs this machine nothing.
  const sim = new CpqSimulator({
    seed: 1,
    partnerCompanies: args.companies - 1,
    usersPerCompany: perCompany,
    integrationUsers: 0,
    drift: true,
    zipExport: {},
    cachePages: true,
  });
  const baseUrl = await sim.start(await freePort());
  console.log(`simulator ready in ${((performance.now() - started) / 1000).toFixed(1)} s at ${baseUrl}`);
  const companies = sim.companyLogins();
  const total = perCompany * companies.length;

  const external = process.env.BENCH_DATABASE_URL;
  const database = external
    ? { url: external, stop: async () => undefined }
    : await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: await freePort(), database: 'bench', persistent: false });
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  postgresCpu = await PostgresCpu.find(admin);
  const urlFor = async (name: string) => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(database.url);
    u.pathname = `/${name}`;
    return u.toString();
  };
  /** What autovacuum and checkpoints do between two runs, done now: VACUUM (ANALYZE) of a database, then a CHECKPOINT. */
  const settle = async (url: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('VACUUM (ANALYZE)').finally(() => client.end());
    await admin.query('CHECKPOINT');
  };
  const env = (databaseUrl: string, format: 'json' | 'zip') => ({
    CPQ_BASE_URL: baseUrl,
    CPQ_COMPANIES: companies.join(','),
    CPQ_INTEGRATION_USERS: 'off',
    CPQ_EXPORT_FORMAT: format,
    DATABASE_URL: databaseUrl,
    ...args.settings,
  });

  const results: Measured[] = [];
  const record = (m: Measured) => {
    results.push(m);
    const cpu = cpuPer1000(m);
    console.log(
      `  ${m.name}: ${m.seconds.toFixed(2)} s${cpu === undefined ? '' : `, cpu ${m.cpuSeconds!.toFixed(1)} s = ${cpu.toFixed(0)} ms per 1000 users`}` +
        `${m.postgresCpuSeconds === undefined ? '' : `, Postgres cpu ${m.postgresCpuSeconds.toFixed(1)} s${m.backendCpuSeconds === undefined ? '' : ` (busiest backend ${m.backendCpuSeconds.toFixed(1)} s)`}`}${m.maxRssMb === undefined ? '' : `, peak RSS ${m.maxRssMb.toFixed(0)} MB`}${m.note ? ` (${m.note})` : ''}`,
    );
    if (m.rssParts) console.log(`    memory: ${m.rssParts}`);
  };
  try {
    // Warm the simulator's caches so the floor and the sync see the same server.
    await fetchFloor(baseUrl, companies, 'json');
    const fetchJson = await fetchFloor(baseUrl, companies, 'json');
    record({ name: 'floor: fetch (JSON pages)', seconds: fetchJson, users: total });

    const jsonDb = await urlFor('bench_json');
    // How many responses the simulator had to render during a sync (0: all served as bytes).
    const rendered = (before: number) => `simulator rendered ${sim.pagesRendered - before} responses`;
    /** A sync's row; `memory`: with what made up its largest RSS (printed under it). */
    const recordSync = (name: string, run: Awaited<ReturnType<typeof runCli>>, users: number, note: string, memory = false) =>
      record({
        name,
        seconds: run.seconds,
        users,
        cpuSeconds: run.cpuSeconds,
        postgresCpuSeconds: run.postgresCpuSeconds,
        backendCpuSeconds: run.backendCpuSeconds,
        maxRssMb: run.maxRssMb,
        rssParts: memory ? run.rssParts : undefined,
        note,
      });
    let renderedBefore = sim.pagesRendered;
    const full = await runCli(['run', '--full'], env(jsonDb, 'json'));
    recordSync('1. full sync, JSON', full, total, rendered(renderedBefore), true);
    if (args.profile) {
      // Served the same kept pages as run 1, before the edits below drop them.
      const profileDb = await urlFor('bench_profile');
      await profiledSync(['run', '--full'], env(profileDb, 'json'), await mkdtemp(join(args.logDir ?? dir, 'cpu-profile-')), full);
      await admin.query('DROP DATABASE bench_profile WITH (FORCE)');
    }

    const changed = Math.max(1, Math.round(total / 100));
    // sim.users() copies a whole company: read each once.
    const logins = new Map(companies.map((c) => [c, sim.users(c).map((u) => String(u.login))]));
    for (let i = 0; i < changed; i++) {
      const company = companies[i % companies.length]!;
      const users = logins.get(company)!;
      sim.updateUser(company, users[Math.floor((i / companies.length) * 97) % users.length]!, { lastName: `Changed ${i}` });
    }
    // A nightly incremental run comes hours after the last one. By then autovacuum has made its
    // first pass over what the full sync wrote, and checkpoints have written the dirty buffers
    // out: both are done here before measuring, instead of running during the incremental run on
    // the same two cores. The incremental runs also come before the benchmark writes gigabytes of
    // other data (the load floor, the zip database), which a sync target would not see between runs.
    const settled = performance.now();
    await settle(jsonDb);
    console.log(`  (VACUUM (ANALYZE) and CHECKPOINT before the incremental runs: ${((performance.now() - settled) / 1000).toFixed(1)} s)`);
    // The edits dropped the simulator's kept pages: it renders these runs' pages as they ask.
    renderedBefore = sim.pagesRendered;
    const incremental = await runCli(['run'], env(jsonDb, 'json'));
    recordSync('3. incremental, 1% changed', incremental, changed, rendered(renderedBefore));
    renderedBefore = sim.pagesRendered;
    const noop = await runCli(['run'], env(jsonDb, 'json'));
    recordSync('4. no-op incremental', noop, 0, `${rendered(renderedBefore)}, cpu ${noop.cpuSeconds.toFixed(2)} s`);

    // A full re-read of a database that holds every user already (the weekly full sync that finds
    // deletions): each row is staged and merged, nothing changes. The simulator renders its pages
    // once first, unmeasured, as for the first load.
    await fetchFloor(baseUrl, companies, 'json');
    renderedBefore = sim.pagesRendered;
    const resync = await runCli(['run', '--full'], env(jsonDb, 'json'));
    recordSync('5. full re-sync, nothing changed', resync, total, rendered(renderedBefore));
    // Its update of every user's last_synced_at leaves as many dead rows: cleaned up, unmeasured,
    // before the floors and the zip sync, as before the incremental runs.
    await settle(jsonDb);

    // What a warehouse and an auditor read back: the whole change log (a warehouse's first poll,
    // whose insert diffs are built from history as they are read) and a snapshot of every user,
    // each to a file. Their rows (from the file's manifest) stand in the users column.
    for (const [name, command] of [
      ['6. export: changes --after 0', ['changes', '--after', '0']],
      ['7. export: snapshot', ['snapshot']],
    ] as const) {
      const file = join(dir, 'export.out');
      const exported = await runCli([...command, '--out', file], { DATABASE_URL: jsonDb });
      const { rows } = JSON.parse(await readFile(`${file}.manifest.json`, 'utf8')) as { rows: number };
      recordSync(name, exported, rows, `${rows} rows, ${((await stat(file)).size / 2 ** 20).toFixed(0)} MB`);
      await rm(file);
      await rm(`${file}.manifest.json`);
    }

    const load = await loadFloor(jsonDb, dir, 'text');
    record({
      name: 'floor: load (COPY)',
      seconds: load.seconds,
      users: total,
      postgresCpuSeconds: load.postgresCpuSeconds,
      note: `${(load.bytes / 2 ** 20).toFixed(0)} MB of rows, text format`,
    });
    const loadBinary = await loadFloor(jsonDb, dir, 'binary');
    record({
      name: 'floor: load (binary COPY)',
      seconds: loadBinary.seconds,
      users: total,
      postgresCpuSeconds: loadBinary.postgresCpuSeconds,
      note: `${(loadBinary.bytes / 2 ** 20).toFixed(0)} MB of rows, as the sync writes them`,
    });
    const land = await landFloor(jsonDb, dir);
    record({
      name: 'floor: land raw JSON (COPY)',
      seconds: land.seconds,
      users: total,
      postgresCpuSeconds: land.postgresCpuSeconds,
      note: `${(land.bytes / 2 ** 20).toFixed(0)} MB of rows`,
    });

    if (!args.skipZip) {
      try {
        await fetchFloor(baseUrl, companies, 'zip'); // warm-up, as for JSON
        const fetchZip = await fetchFloor(baseUrl, companies, 'zip');
        record({ name: 'floor: fetch (zip)', seconds: fetchZip, users: total });
        const zipDb = await urlFor('bench_zip');
        renderedBefore = sim.pagesRendered;
        const zip = await runCli(['run', '--full'], env(zipDb, 'zip'));
        recordSync('2. full sync, zip', zip, total, rendered(renderedBefore), true);
      } catch (err) {
        record({ name: '2. full sync, zip', seconds: 0, users: total, note: `not run: ${(err as Error).message.slice(0, 120)}` });
      }
    }

    const floor = Math.max(fetchJson, load.seconds);
    const eltFloor = Math.max(fetchJson, land.seconds);
    console.log(
      [
        `\nN = ${total}; floor = max(fetch ${fetchJson.toFixed(2)} s, load ${load.seconds.toFixed(2)} s) = ${floor.toFixed(2)} s` +
          ` (with the binary load floor: ${Math.max(fetchJson, loadBinary.seconds).toFixed(2)} s, full first load / it = ${(full.seconds / Math.max(fetchJson, loadBinary.seconds)).toFixed(2)})`,
        `ELT floor = max(fetch JSON pages ${fetchJson.toFixed(2)} s, land raw JSON ${land.seconds.toFixed(2)} s) = ${eltFloor.toFixed(2)} s;` +
          ` full first load / ELT floor = ${(full.seconds / eltFloor).toFixed(2)} (goal: at most 1.5 at 100,000 users)`,
        full.postgresCpuSeconds === undefined || loadBinary.postgresCpuSeconds === undefined
          ? "(Postgres CPU: not measured: the server's processes are not found in this machine's /proc)\n"
          : `Postgres CPU (every process of the server): ${full.postgresCpuSeconds.toFixed(2)} s during the full first load, ${loadBinary.postgresCpuSeconds.toFixed(2)} s for the binary load floor, ` +
            `${land.postgresCpuSeconds?.toFixed(2) ?? '-'} s to land raw JSON. The first load's busiest backend (the one it writes through, sampled every 100 ms): ` +
            `${full.backendCpuSeconds?.toFixed(2) ?? '-'} s; it works on one core, so its CPU time bounds the first load's wall time\n`,
      ].join('\n'),
    );
    console.log(table(results, floor, eltFloor));
    console.log(`\nincremental/full = ${((100 * incremental.seconds) / full.seconds).toFixed(1)}%`);
  } finally {
    await admin.end();
    await sim.stop();
    await database.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
