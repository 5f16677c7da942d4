import { spawn } from 'node:child_process';
import { describe, expect } from 'vitest';
import { BIN } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/*
 * Standard output closed before the first log line (review CO): the warnings every start logs
 * (here an unknown variable) met the closed pipe before a run took EPIPE as SIGPIPE, and the
 * unhandled 'error' ended the process with a stack trace and exit code 1.
 */
describe('cpq-sync run with its reader gone before the first log line', () => {
  it('stops as on SIGPIPE: one line on stderr, exit 130, no stack trace, no run recorded', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const child = spawn(process.execPath, [BIN, 'run'], {
      env: { PATH: process.env.PATH, CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_SOMETHING_ELSE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect({ code, stderr }).toEqual({ code: 130, stderr: expect.stringMatching(/^cpq-sync: [^\n]*interrupted[^\n]*\n$/) as unknown });
    expect(await h.t.query(`SELECT status FROM cpq.sync_runs WHERE status = 'succeeded'`)).toEqual([]);
  });
});
