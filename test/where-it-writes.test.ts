import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { processRuns } from '../src/process-runs.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { Cleanups, cli, type LogLine } from './helpers/cli-process.js';
import { freePort } from './helpers/free-port.js';
import { it } from './helpers/harness.js';

/*
 * Run from another folder than meant, a command read its relative paths from there and said only
 * ENOENT, and `run` or `schedule` made a new embedded cluster under that folder's ./.data and
 * synced every user into it, with no line saying which database it wrote to (review IL).
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

/** A folder of its own, world-readable (as root, the embedded server runs as user postgres), removed after the test. */
function folder(prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  chmodSync(dir, 0o755);
  cleanups.push(() => {
    // An embedded server this test started, if its command left it running.
    const pid = Number(readPid(join(dir, 'here', '.data', 'pg', 'postmaster.pid')));
    if (pid > 0 && processRuns(pid)) process.kill(pid, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function readPid(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').split('\n')[0];
  } catch {
    return undefined;
  }
}

const logLines = (stdout: string): LogLine[] =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

describe('where a command reads and writes, said', () => {
  it('a relative sites file, passwordFile or CPQ_PASSWORD_FILE that is not there names the working directory it was read from, never the secret path', async () => {
    const dir = folder('cpq-relative-');
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const sites = join(dir, 'sites.yaml');
    writeFileSync(sites, '- name: a\n  baseUrl: https://a.example.com\n  username: u\n  passwordFile: pw-S3cret.txt\n', { mode: 0o600 });
    const relative = `, relative to the working directory ${elsewhere})`;

    const sitesFile = await cli(['run'], { CPQ_SITES_FILE: 'sites.yaml' }, { cwd: elsewhere });
    expect({ code: sitesFile.code, stderr: sitesFile.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: invalid configuration: CPQ_SITES_FILE: cannot read sites.yaml (ENOENT${relative}\n`,
    });

    const passwordFile = await cli(['run'], { CPQ_SITES_FILE: sites }, { cwd: elsewhere });
    expect(passwordFile.code).toBe(2);
    expect(passwordFile.stderr).toContain(
      `CPQ_SITES_FILE: site "a", passwordFile: cannot read the file it names (not printed: it may be the secret itself) (ENOENT${relative}`,
    );
    expect(passwordFile.stderr).not.toContain('S3cret');

    const variable = await cli(['run'], { CPQ_BASE_URL: 'https://a.example.com', CPQ_USERNAME: 'u', CPQ_PASSWORD_FILE: 'pw-S3cret.txt' }, { cwd: elsewhere });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toContain(`CPQ_PASSWORD_FILE: cannot read the file it names (not printed: it may be the secret itself) (ENOENT${relative}`);
    expect(variable.stderr).not.toContain('S3cret');

    // An absolute path names itself: nothing is added.
    const absolute = await cli(['run'], { CPQ_SITES_FILE: join(elsewhere, 'none.yaml') }, { cwd: elsewhere });
    expect(absolute.stderr).toBe(`cpq-sync: invalid configuration: CPQ_SITES_FILE: cannot read ${join(elsewhere, 'none.yaml')} (ENOENT)\n`);
  });

  it("run's 'sync run started' and schedule's 'worker started' name the database, DATABASE_URL without its password", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const url = new URL(h.t.url);
    const password = decodeURIComponent(url.password);
    expect(password).not.toBe('');
    url.password = '***';

    const run = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(logLines(run.stdout).find((l) => l.msg === 'sync run started')).toMatchObject({ database: url.toString() });
    expect(run.stdout).not.toContain(password);

    const worker = cleanups.spawn(['schedule'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, SYNC_CRON: '0 0 1 1 *' });
    expect(await worker.waitForLine((l) => l.msg === 'worker started')).toMatchObject({ database: url.toString() });
    worker.kill('SIGTERM');
    const out = await worker.exited;
    expect(out.code).toBe(0);
    expect(out.stdout).not.toContain(password);
  });

  it('run with a relative DATA_DIR: a new embedded cluster is said with its folder in full, and the start line names that folder', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await sim.start();
    cleanups.push(() => sim.stop());
    const here = join(folder('cpq-embedded-where-'), 'here');
    mkdirSync(here, { mode: 0o755 });
    const env = { CPQ_BASE_URL: sim.baseUrl, DATA_DIR: '.data', EMBEDDED_PG_PORT: String(await freePort()) };

    const first = await cli(['run'], env, { cwd: here });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = logLines(first.stdout);
    expect(lines.find((l) => l.msg === 'no embedded Postgres was in DATA_DIR: made a new one')).toMatchObject({
      level: 30,
      dataDir: join(here, '.data', 'pg'),
    });
    expect(lines.find((l) => l.msg === 'sync run started')).toMatchObject({ database: `embedded Postgres in ${join(here, '.data')}` });

    // The cluster is there now: the next run makes none, and says nothing of it.
    const second = await cli(['run'], env, { cwd: here });
    expect(second.code).toBe(0);
    expect(logLines(second.stdout).some((l) => l.msg === 'no embedded Postgres was in DATA_DIR: made a new one')).toBe(false);
  });
});
