import { afterEach, describe, expect } from 'vitest';
import { Cleanups, cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';
import { connectReaderLogin } from './helpers/reader-login.js';

/*
 * The commands that write (run, forget, alerts retry) and the worker (schedule), pointed at a
 * reporting login (README "Read-only access": a member of cpq_reader) on a database that needs no
 * migration: they failed at their first write with Postgres's bare `permission denied for table
 * sync_runs`, and schedule started, answered /readyz ready and skipped every tick. Each now fails
 * at its start with check's line for that role, exit code 6.
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

const NEVER_SOON = '0 0 1 1 *';

/** check's failure for a role that may not write the cpq tables, as one line on stderr. */
const READER_LINE =
  /^cpq-sync: role cpq_rr_[0-9a-f]+ may not write the cpq tables \(a reporting role\?\): run cpq-sync as the role that owns schema cpq \(the one that migrated it\)\n$/;

describe('a writing command run as a reporting login', () => {
  it('run, forget and alerts retry exit 6 with one line naming the role problem and the fix', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const { url, end } = await connectReaderLogin(h.t.url);
    cleanups.push(end);
    // A webhook alerts retry never reaches: it stops before delivering.
    const env = {
      CPQ_BASE_URL: h.sim.baseUrl,
      DATABASE_URL: url,
      ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook',
      ALERT_WEBHOOK_SECRET: 'a-secret-of-32-characters-or-so!',
    };
    for (const command of [['run'], ['forget', '--company', '_host', '--login', 'nosuch', '--reason', 'ticket 7', '--by', 'test'], ['alerts', 'retry']]) {
      const outcome = await cli(command, env);
      expect({ command, code: outcome.code }).toEqual({ command, code: 6 });
      expect(outcome.stderr, command.join(' ')).toMatch(READER_LINE);
    }
    // Nothing was written: the one run is the harness's.
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs`)).toEqual([{ n: 1 }]);
  });

  it('schedule exits 6 with that line and never answers /readyz ready', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const { url, end } = await connectReaderLogin(h.t.url);
    cleanups.push(end);
    const worker = cleanups.spawn(['schedule'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url, SYNC_CRON: NEVER_SOON, HTTP_PORT: '0' });
    const listening = await worker.waitForLine((l) => l.msg === 'health and metrics listening (/healthz, /readyz, /metrics)');
    const readyz = `http://127.0.0.1:${String(listening.port)}/readyz`;
    // Asked until the process ends (the old worker never did: 20 s, then its answers are judged).
    const answers: unknown[] = [];
    const running = () => worker.child.exitCode === null && worker.child.signalCode === null;
    for (const deadline = Date.now() + 20_000; running() && Date.now() < deadline;) {
      const answer = await fetch(readyz).then(
        (r): Promise<unknown> => r.json(),
        () => undefined,
      );
      if (answer !== undefined) answers.push(answer);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(answers).not.toContainEqual(expect.objectContaining({ ready: true }));
    const outcome = await worker.exited;
    expect(outcome.code).toBe(6);
    expect(outcome.stderr).toMatch(READER_LINE);
  });
});
