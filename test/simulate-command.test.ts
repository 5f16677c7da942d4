import { afterEach, describe, expect, it } from 'vitest';
import { Cleanups, cli } from './helpers/cli-process.js';

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
