import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { cli } from './helpers/cli-process.js';
import { ALL_MIGRATIONS, holdSyncLock } from './helpers/database.js';
import { it } from './helpers/harness.js';

describe('cpq-sync CLI', () => {
  it('run: syncs and exits 0, logging JSON lines with a page line and a summary', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 0 });
    const out = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const lines = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l.msg === 'page read' && l.stream === 'companies/_host')).toBe(true);
    expect(lines.find((l) => l.msg === 'sync run succeeded')).toMatchObject({ inserted: 7 });
    // The last line, the one a cron log keeps, counts every kind of change (it had no deleted or restored: review EG).
    expect(lines.at(-1)).toMatchObject({ msg: 'done', inserted: 7, updated: 0, unchanged: 0, deleted: 0, restored: 0 });
    // Each key once in a line (the summary said "site" twice: review CK).
    for (const line of out.stdout.trim().split('\n')) expect(line.match(/"site":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
    const rows = await h.t.query(`SELECT 1 FROM cpq.users`);
    expect(rows).toHaveLength(7);
  });

  it('LOG_LEVEL=debug logs the merge, step by step, after the pages: what a run that prints nothing at info is doing (README: Slow, stuck or failed)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 0 });
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    expect((await cli(['run'], env)).code).toBe(0);
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { lastName: 'Edited' });
    const out = await cli(['run', '--full'], { ...env, LOG_LEVEL: 'debug' });
    expect(out.code).toBe(0);
    const lines = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const lastPage = lines.findLastIndex((l) => l.msg === 'page read');
    const steps = lines.flatMap((l, i) => (l.msg === 'merge step' ? [i] : []));
    expect(steps.length).toBeGreaterThan(1);
    expect(steps[0]!).toBeGreaterThan(lastPage);
    const first = lines[steps[0]!]!;
    expect([typeof first.step, typeof first.ms]).toEqual(['string', 'number']);
  });

  it("--version (-V) prints the release, package.json's version, with the commit of a build made in a checkout, and exits 0 (review CM: unknown option)", async () => {
    const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    // This checkout's build, or CI's copy without .git (test/build-version.test.ts builds both).
    const printed = new RegExp(`^${version.replace(/\./g, '\\.')}( \\(commit [0-9a-f]{7}\\))?\n$`);
    for (const flag of ['--version', '-V'])
      expect(await cli([flag], {})).toEqual({ code: 0, signal: null, stdout: expect.stringMatching(printed) as unknown, stderr: '' });
  });

  it("--help of a command says what the README's Commands table says of it (status exited 1 for stale sites unsaid, demo had one site, run read in full only the first time)", async () => {
    const help = async (command: string) => {
      const out = await cli([command, '--help'], {});
      expect({ code: out.code, stderr: out.stderr }, command).toEqual({ code: 0, stderr: '' });
      // commander wraps the description at 80 columns.
      return out.stdout.replace(/\s+/g, ' ');
    };
    expect(await help('status')).toContain(
      'exit code 1 when the last run of a site failed or was abandoned (it ended without recording how), or when a site is stale',
    );
    expect(await help('demo')).toContain('two simulated sites');
    expect(await help('schedule')).toContain('each site synced on its schedule');
    expect(await help('run')).toContain('full the first time (per stream) and every SYNC_FULL_EVERY, incremental otherwise');
  });

  it('exit code 2 and one line naming the variable for bad configuration', async () => {
    const out = await cli(['run'], { CPQ_BASE_URL: 'https://x.example.com', CPQ_PAGE_SIZE: 'lots', DATABASE_URL: 'postgres://127.0.0.1:1/none' });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/^cpq-sync: invalid configuration: CPQ_PAGE_SIZE: "lots" is not a whole number from 1 to 1000\n$/);
  });

  it('exit code 2 and one line: a misspelt DATABASE_URL without DATABASE_URL is asked about once, not twice (review DB)', async () => {
    const misspelt = await cli(['status'], { DATABSE_URL: 'postgres://127.0.0.1:1/none' });
    expect({ code: misspelt.code, stderr: misspelt.stderr }).toEqual({
      code: 2,
      stderr:
        'cpq-sync: invalid configuration: DATABSE_URL is set but DATABASE_URL is not: did you mean DATABASE_URL? Without it cpq-sync uses an embedded Postgres in DATA_DIR (./.data), not your database; rename the variable, or unset DATABSE_URL to use the embedded one\n',
    });
    // Another typo is still named after it.
    const two = await cli(['status'], { DATABSE_URL: 'postgres://127.0.0.1:1/none', SYNC_CRONN: '* * * * *' });
    expect(two.stderr).toMatch(/did you mean DATABASE_URL\?.*; SYNC_CRONN is not a variable cpq-sync reads: did you mean SYNC_CRON\?\n$/);
    expect(two.stderr.match(/did you mean DATABASE_URL/g)).toHaveLength(1);
  });

  it('exit code 2 and one line: two CPQ auth methods are an invalid configuration naming the variables set (review DB)', async () => {
    const auth = await cli(['run'], {
      CPQ_BASE_URL: 'https://x.example.com',
      CPQ_TOKEN: 'not-shown-token',
      CPQ_USERNAME: 'u',
      CPQ_PASSWORD: 'not-shown-password',
      DATABASE_URL: 'postgres://127.0.0.1:1/none',
    });
    expect({ code: auth.code, stderr: auth.stderr }).toEqual({
      code: 2,
      stderr:
        'cpq-sync: invalid configuration: more than one CPQ auth method is configured (basic by CPQ_USERNAME and CPQ_PASSWORD, bearer by CPQ_TOKEN): set exactly one\n',
    });
  });

  it('exit code 2 and one line for a mistyped command line: an unknown option, a missing argument, a bad choice, an unknown command', async () => {
    const cases: [string[], string][] = [
      [['status', '--lmit', '3'], "unknown option '--lmit' (Did you mean --limit?)"],
      [['status', '--limit'], "option '--limit <n>' argument missing"],
      [['snapshot', '--format', 'xml'], "option '--format <format>' argument 'xml' is invalid. Allowed choices are csv, jsonl."],
      [['bogus'], "unknown command 'bogus'"],
      [['help', 'bogus'], "unknown command 'bogus'"],
      [['snapshot', '--out', '-'], `option '--out <file>' argument '-' is invalid. "-" names no file; leave out --out to write to standard output`],
      [['changes', '--after', '0', '--out', ''], `option '--out <file>' argument '' is invalid. "" names no file; leave out --out to write to standard output`],
    ];
    for (const [args, message] of cases) {
      const out = await cli(args, {});
      expect({ code: out.code, stderr: out.stderr, stdout: out.stdout }, args.join(' ')).toEqual({
        code: 2,
        stderr: `cpq-sync: ${message} (see --help)\n`,
        stdout: '',
      });
    }
    // help of help is the help, as help alone gives it (commander's own answer is the help as an error).
    // So is help with an option after it (review Z).
    for (const args of [
      ['help', 'help'],
      ['help', '--help'],
    ]) {
      const helpOfHelp = await cli(args, {});
      expect({ code: helpOfHelp.code, stderr: helpOfHelp.stderr }, args.join(' ')).toEqual({ code: 0, stderr: '' });
      expect(helpOfHelp.stdout).toMatch(/^Usage: cpq-sync \[options\] \[command\]\n/);
    }
    // A .env path holding a line break is shown on one line, its control characters escaped.
    const out = await cli(['status'], { DOTENV_CONFIG_PATH: '/nonexistent\ncpq-sync: all good\u001b[2J' });
    expect(out.code).toBe(2);
    expect(out.stderr).not.toContain('\u001b');
    expect(out.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('exit code 4 when CPQ refuses the credentials, without printing them', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, auth: { basic: { username: 'u', password: 'right' } } });
    const out = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_USERNAME: 'u', CPQ_PASSWORD: 'wrong-secret-value' });
    expect(out.code).toBe(4);
    expect(out.stderr).toMatch(/^cpq-sync: GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?\S+: CPQ refused the credentials \(401\)/);
    expect(out.stdout + out.stderr).not.toContain('wrong-secret-value');
  });

  it('exit code 6 when the database is unreachable', async () => {
    const out = await cli(['run'], { CPQ_BASE_URL: 'http://127.0.0.1:9', DATABASE_URL: 'postgres://sync:pw-not-shown@127.0.0.1:1/none' });
    expect(out.code).toBe(6);
    expect(out.stderr).toMatch(/cannot connect to Postgres at postgres:\/\/sync:\*\*\*@127\.0\.0\.1:1\/none/);
    expect(out.stderr).not.toContain('pw-not-shown');
  });

  it('migrate: applies migrations to an empty database and reports it', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    await h.t.query('DROP SCHEMA cpq CASCADE');
    const out = await cli(['migrate'], { DATABASE_URL: h.t.url });
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`"applied":${JSON.stringify(ALL_MIGRATIONS)}`);
  });
});

describe('cpq-sync changes and snapshot', () => {
  it('changes --since prints JSON lines or CSV on stdout, logs kept off it', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const first = await h.sync();
    h.sim.updateUser('_host', String(h.sim.users('_host')[0]!.login), { lastName: 'Cli' });
    await h.sync();
    const env = { DATABASE_URL: h.t.url, LOG_LEVEL: 'debug' };
    const jsonl = await cli(['changes', '--since', first.runId], env);
    expect(jsonl.code).toBe(0);
    const lines = jsonl.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ change: 'update', diff: { last_name: { new: 'Cli' } } });
    const csv = await cli(['changes', '--since', '2000-01-01T00:00:00Z', '--format', 'csv'], env);
    expect(csv.code).toBe(0);
    expect(csv.stdout.split('\n')[0]).toBe('change_id,run_id,change,company_login,login,party_number,date_modified,detected_at,diff,commit_seq,site');
    expect(csv.stdout.trim().split('\n')).toHaveLength(1 + 4);
    const bad = await cli(['changes', '--since', 'yesterday'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--since must be a run id or an ISO date-time/);
    // A run id this database has no run of: a typo, not "nothing changed" (review CC).
    const unknown = await cli(['changes', '--since', '999999'], env);
    expect({ code: unknown.code, stdout: unknown.stdout, stderr: unknown.stderr }).toEqual({
      code: 2,
      stdout: '',
      stderr: 'cpq-sync: --since 999999: this database has no run 999999 (cpq.sync_runs): is this the database it was read from?\n',
    });
  });

  it('snapshot --out writes the file and names the run it reflects', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const run = await h.sync();
    const file = join(await mkdtemp(join(tmpdir(), 'snap-')), 'snapshot.csv');
    const out = await cli(['snapshot', '--out', file], { DATABASE_URL: h.t.url });
    expect(out.code).toBe(0);
    const text = await readFile(file, 'utf8');
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(4);
    // Personal data: the owner alone reads it, whatever the group.
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(lines[1]).toContain(`,${run.runId},`);
    expect(out.stdout).toMatch(/"msg":"snapshot written"/);
  });

  it('snapshot refuses a time not yet past, and says when a run going on may take effect before its time (review AC)', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    // A time before the first run has no state: a question without an answer (2), not bad data from CPQ (5) (review CC).
    const before = await cli(['snapshot', '--as-of', '2000-01-01T00:00:00Z'], { DATABASE_URL: h.t.url });
    expect(before.code).toBe(2);
    const hint =
      /^cpq-sync: no successful sync run took effect at or before 2000-01-01T00:00:00\.000Z: there is no state to report \(an --as-of at or after (\S+) has one\)\n$/.exec(
        before.stderr,
      );
    expect(hint, before.stderr).not.toBeNull();
    // The time it names has one (review DB): the earliest a millisecond after the first run took effect.
    expect((await cli(['snapshot', '--as-of', hint![1]!], { DATABASE_URL: h.t.url })).code).toBe(0);
    const future = await cli(['snapshot', '--as-of', '2099-01-01T00:00:00Z'], { DATABASE_URL: h.t.url });
    expect(future.code).toBe(2);
    expect(future.stderr).toMatch(
      /^cpq-sync: --as-of 2099-01-01T00:00:00\.000Z is after the database's now \(\S+\): a snapshot of a time not yet past would change as runs commit/,
    );
    expect(future.stdout).toBe('');
    // A run of the site in progress (its record running), started before the snapshot's time.
    const [running] = await h.t.query<{ id: string }>(
      `INSERT INTO cpq.sync_runs (site, status, mode) VALUES ('default', 'running', 'full') RETURNING id::text`,
    );
    // Its site's lock held, as by the run going on.
    const client = await h.t.pool.connect();
    const release = await holdSyncLock(client);
    try {
      const now = await cli(['snapshot', '--format', 'jsonl'], { DATABASE_URL: h.t.url });
      expect(now.code).toBe(0);
      expect(now.stdout.trim().split('\n')).toHaveLength(2);
      expect(now.stderr).toContain(`run ${running!.id} of site default`);
      expect(now.stderr).toMatch(/is in progress: once committed, its changes take effect from its first write, which may be before this snapshot's time/);
    } finally {
      await release();
      client.release();
    }
    // The lock free: the run is dead and will never commit (review CB).
    const dead = await cli(['snapshot', '--format', 'jsonl'], { DATABASE_URL: h.t.url });
    expect(dead.code).toBe(0);
    expect(dead.stdout.trim().split('\n')).toHaveLength(2);
    expect(dead.stderr).not.toContain('is in progress');
  });
});
