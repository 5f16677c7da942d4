import { afterEach, describe, expect, it } from 'vitest';
import { Cleanups, cli } from './helpers/cli-process.js';
import { freePort } from './helpers/free-port.js';

/* `cpq-sync simulate`, as a user runs it to try the tool: it serves, stops on SIGTERM, and a bad command line is one line, exit code 2. */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

const small = ['--users', '2', '--partners', '0', '--integration-users', '0'];

describe('simulate', () => {
  it('serves until SIGTERM (exit 0); a port another process listens on is one line naming it, exit code 2, not a stack (review DY)', async () => {
    const port = await freePort();
    const serving = cleanups.spawn(['simulate', '--port', String(port), ...small], {});
    const listening = await serving.waitForLine((l) => l.msg === 'CPQ simulator listening (Ctrl-C to stop)');
    expect(listening.url).toBe(`http://127.0.0.1:${port}`);
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
