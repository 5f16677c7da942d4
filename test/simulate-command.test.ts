import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { Cleanups, cli, type CliProcess } from './helpers/cli-process.js';
import { it } from './helpers/fixtures.js';

/* `cpq-sync simulate`, as a user runs it to try the tool: it serves, stops on SIGTERM, and a bad command line is one line, exit code 2. */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

const small = ['--users', '2', '--partners', '0', '--integration-users', '0'];

describe('simulate', () => {
  it('serves until SIGTERM (exit 0); a port another process listens on is one line naming it, exit code 2, not a stack (review DY)', async () => {
    // Port 0: the simulator binds a port of its own and logs it. One picked free by the test and
    // bound by the child later could be taken by another process meanwhile (a loaded CI runs test
    // files side by side), and the test then failed on EADDRINUSE before it had checked anything.
    const serving = cleanups.spawn(['simulate', '--port', '0', ...small], {});
    const listening = await serving.waitForLine((l) => l.msg === 'CPQ simulator listening (Ctrl-C to stop)');
    expect(listening.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const port = Number(new URL(String(listening.url)).port);
    expect(port).toBeGreaterThan(0);
    // It answers HTTP there (a CPQ path: whatever its answer, it is the simulator's).
    const answer = await fetch(`http://127.0.0.1:${port}/rest/v16/companies`);
    expect(answer.status).toBeLessThan(500);

    const taken = await cli(['simulate', '--port', String(port), ...small], {});
    expect({ code: taken.code, stderr: taken.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: --port/--host: cannot listen on 127.0.0.1 port ${port} (EADDRINUSE): another process listens there; choose another --port\n`,
    });
    const prefix = await cli(['simulate', '--prefix', '/x', ...small], {});
    expect({ code: prefix.code, stderr: prefix.stderr }).toEqual({ code: 2, stderr: 'cpq-sync: --prefix must be "" or /cpq\n' });

    serving.kill('SIGTERM');
    expect((await serving.exited).code).toBe(0);
  }, 60_000);
});

/** `simulate` with these options on a port of its own, once it listens: the process and its URL. */
async function serve(options: string[]): Promise<{ serving: CliProcess; url: string }> {
  const serving = cleanups.spawn(['simulate', '--port', '0', ...small, ...options], {});
  const listening = await serving.waitForLine((l) => l.msg === 'CPQ simulator listening (Ctrl-C to stop)');
  return { serving, url: String(listening.url) };
}

describe('simulate: rehearsing outages (review JB: no latency, server errors or refused login could be asked for)', () => {
  it('--password: a run with another password exits 4 (CPQ refused the credentials), with it 0, any user name; from --password-file too; never logged', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    const password = 'rehearsal-pw-4711';
    const { serving, url } = await serve(['--password', password]);
    const env = { CPQ_BASE_URL: url, CPQ_PATH_PREFIX: '/cpq', DATABASE_URL: t.url, CPQ_USERNAME: 'anyone' };

    const refused = await cli(['run'], { ...env, CPQ_PASSWORD: 'not-the-password' });
    expect(refused.code, refused.stderr).toBe(4);
    const none = await fetch(`${url}/cpq/rest/v16/companies`);
    expect({ status: none.status, challenge: none.headers.get('www-authenticate') }).toEqual({ status: 401, challenge: 'Basic realm="CPQ"' });

    const accepted = await cli(['run'], { ...env, CPQ_PASSWORD: password });
    expect({ code: accepted.code, stderr: accepted.stderr }).toEqual({ code: 0, stderr: '' });

    // The file form keeps the password off the command line; any user name goes with it.
    const dir = await mkdtemp(join(tmpdir(), 'simulate-pw-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'password');
    await writeFile(file, `${password}\n`, { mode: 0o600 });
    const fromFile = await serve(['--password-file', file]);
    const basic = (user: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}` });
    const answers = [];
    for (const [user, secret] of [
      ['someone-else', password],
      ['someone-else', 'wrong'],
    ] as const) {
      answers.push((await fetch(`${fromFile.url}/cpq/rest/v16/companies`, { headers: basic(user, secret) })).status);
    }
    expect(answers).toEqual([200, 401]);

    for (const p of [serving, fromFile.serving]) {
      p.kill('SIGTERM');
      const out = await p.exited;
      expect(out.code).toBe(0);
      expect(out.stdout + out.stderr).not.toContain(password);
    }
  }, 120_000);

  it('--fail-rate 1: every page of users is answered 503, and a run fails with exit code 3 (CPQ answering errors) after its retries', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    const { url } = await serve(['--fail-rate', '1']);
    const page = await fetch(`${url}/cpq/rest/v16/companies/_host/users`);
    expect(page.status).toBe(503);
    // Pages of users only: the company list still answers.
    expect((await fetch(`${url}/cpq/rest/v16/companies`)).status).toBe(200);
    const run = await cli(['run'], {
      CPQ_BASE_URL: url,
      CPQ_PATH_PREFIX: '/cpq',
      DATABASE_URL: t.url,
      CPQ_MAX_RETRIES: '2',
      CPQ_RETRY_BASE_DELAY: '5ms',
      CPQ_RETRY_MAX_DELAY: '20ms',
    });
    expect(run.code, run.stderr).toBe(3);
    // CPQ_MAX_RETRIES=2: the first attempt and two retries, each answered 503.
    expect(run.stderr).toContain('CPQ still answered 503 after 3 attempts');
  }, 120_000);

  it('--fail-rate 0.5: about half the requests for pages of users answered 503, the rest served', async () => {
    const { url } = await serve(['--fail-rate', '0.5']);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await fetch(`${url}/cpq/rest/v16/companies/_host/users?offset=${i}`)).status);
    const failed = statuses.filter((s) => s === 503).length;
    expect(statuses.filter((s) => s !== 503).every((s) => s === 200)).toBe(true);
    // Drawn by the seeded generator, so the same every time: far from none and from all.
    expect(failed).toBeGreaterThanOrEqual(10);
    expect(failed).toBeLessThanOrEqual(30);
  }, 60_000);

  it('--latency: an answer takes at least that long', async () => {
    const { url } = await serve(['--latency', '1500ms']);
    const started = performance.now();
    const answer = await fetch(`${url}/cpq/rest/v16/companies`);
    await answer.arrayBuffer();
    expect(answer.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1500);
  }, 60_000);

  it('--latency: Ctrl-C stops it at once while an answer waits out its latency (it waited the whole latency out; review JJ)', async () => {
    const { serving, url } = await serve(['--latency', '1h']);
    const waiting = fetch(`${url}/cpq/rest/v16/companies`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const signalled = performance.now();
    serving.kill('SIGINT');
    expect((await serving.exited).code).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(10_000);
    await waiting;
  }, 60_000);

  it('a bad --latency, --fail-rate or --password is one line, exit code 2', async () => {
    const cases: [string[], string][] = [
      [['--latency', 'soon'], '--latency must be a duration such as 250ms or 2s, got "soon"'],
      [['--fail-rate', '1.5'], '--fail-rate must be a number from 0 to 1, got "1.5"'],
      [['--fail-rate', 'half'], '--fail-rate must be a number from 0 to 1, got "half"'],
      [['--password', ''], '--password must not be empty'],
      [['--password', 'x', '--password-file', '/nonexistent/pw'], '--password and --password-file are both set: use one'],
    ];
    for (const [args, line] of cases) {
      const out = await cli(['simulate', '--port', '0', ...small, ...args], {});
      expect({ args, code: out.code, stderr: out.stderr }).toEqual({ args, code: 2, stderr: `cpq-sync: ${line}\n` });
    }
  }, 60_000);
});
