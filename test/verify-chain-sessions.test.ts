import { describe, expect } from 'vitest';
import { createPool } from '../src/db/database.js';
import { sealRun } from '../src/db/sql/seal-run.js';
import { verifyChain } from '../src/sync/verify.js';
import { CliProcess, until } from './helpers/cli-process.js';
import { admin, untilWaitingForLock } from './helpers/database.js';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

/*
 * verify --chain recomputes the runs' content hashes on several sessions at once, all of one
 * snapshot (the first exports it, the others import it), and reads the seals and its other checks
 * in that snapshot too: what runs commit while it works is neither checked nor seen in part, as
 * when one statement read it all. The tests hold verify's statements up with a lock another session
 * takes, commit meanwhile, then let it go on.
 */

/** Three sealed runs, each with change-log rows, the second and third ending versions. */
async function history(h: Harness): Promise<string[]> {
  await h.sync();
  const [a, b, c] = h.sim.users('_host').map((u) => String(u.login));
  h.sim.updateUser('_host', a!, { lastName: 'Second' });
  h.sim.updateUser('partner1', String(h.sim.users('partner1')[0]!.login), { lastName: 'Second' });
  await h.sync();
  h.sim.deleteUser('_host', c!);
  h.sim.updateUser('_host', b!, { lastName: 'Third' });
  await h.sync({ full: true });
  return (await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY sync_runs.id`)).map((r) => r.id);
}

describe('verify --chain on several sessions of one snapshot', () => {
  it('computes the content hashes on one backend per run, and a run committed meanwhile is not checked nor makes it fail', async ({
    startHarness,
    connectClient,
  }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
    const runs = await history(h);
    const [last] = await h.t.query<{ chain_sha256: string }>(`SELECT chain_sha256 FROM cpq.run_seals WHERE run_id = $1`, [runs[2]]);
    // verify's own pool: the test's (h.t) stays free for its own statements.
    const pool = createPool(h.t.url);
    const holder = await connectClient(h.t.url);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE cpq.user_versions IN ACCESS EXCLUSIVE MODE');
    try {
      const verifying = verifyChain(pool);
      // Each run's hash reads cpq.user_versions: three runs, three sessions waiting at once.
      const waiting = await untilWaitingForLock(h.t, 3);
      const sessions = await h.t.query<{ pids: number; snapshots: number; hashing: number }>(
        `SELECT count(DISTINCT pid)::int AS pids, count(DISTINCT backend_xmin::text)::int AS snapshots,
                count(*) FILTER (WHERE query LIKE '%run_content_sha256%')::int AS hashing
         FROM pg_stat_activity WHERE pid = ANY($1::int[]) AND application_name = 'cpq-user-sync'`,
        [waiting.map((w) => w.pid)],
      );
      expect(sessions).toEqual([{ pids: 3, snapshots: 1, hashing: 3 }]);
      // A run committed now, sealed and chained as a run seals itself, its lock released with it.
      const [added] = (
        await holder.query<{ id: string }>(
          `INSERT INTO cpq.sync_runs (site, mode, status, finished_at) VALUES ('default', 'incremental', 'succeeded', now()) RETURNING id::text`,
        )
      ).rows;
      const [user] = (await holder.query<{ id: string; login: string }>(`SELECT id::text, login FROM cpq.users ORDER BY users.id LIMIT 1`)).rows;
      await holder.query(
        `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
         VALUES ($1, $2, '_host', $3, 'update', '{"last_name": {"old": "A", "new": "B"}}', 'default', now())`,
        [added!.id, user!.id, user!.login],
      );
      await sealRun(holder, 'default', added!.id);
      await holder.query('COMMIT');
      const report = await verifying;
      expect(report).toEqual({ sites: [{ site: 'default', runs: 3, head: last!.chain_sha256 }], breaks: [] });
      // Every session given back, and the run committed meanwhile checked by the next verify.
      expect(pool.totalCount - pool.idleCount).toBe(0);
      const next = await verifyChain(pool);
      expect(next.breaks).toEqual([]);
      expect(next.sites.map((s) => s.runs)).toEqual([4]);
    } finally {
      // Let go of verify's sessions before the pool is ended, should they still wait.
      await holder.query('ROLLBACK');
      await pool.end();
    }
  });

  it('does not see rows altered after it began, on any session: each run is hashed as it was when verify began', async ({ startHarness, connectClient }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
    const runs = await history(h);
    const pool = createPool(h.t.url);
    // The seals are read after every session has its snapshot, and before any hash: held up there.
    const holder = await connectClient(h.t.url);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE cpq.run_seals IN ACCESS EXCLUSIVE MODE');
    try {
      const verifying = verifyChain(pool);
      await untilWaitingForLock(h.t);
      // A change row of every run altered, committed before any session has begun hashing.
      await holder.query(
        `UPDATE cpq.user_change_log SET diff = coalesce(diff, '{}') || '{"forged": true}'::jsonb
         WHERE id IN (SELECT min(id) FROM cpq.user_change_log GROUP BY run_id)`,
      );
      await holder.query('COMMIT');
      expect((await verifying).breaks).toEqual([]);
      // A verify begun after it finds it, at every run.
      expect((await verifyChain(pool)).breaks.map((b) => [b.runId, b.problem.includes('no longer matches its seal')])).toEqual(runs.map((r) => [r, true]));
    } finally {
      // Let go of verify's sessions before the pool is ended, should they still wait.
      await holder.query('ROLLBACK');
      await pool.end();
    }
  });

  for (const { what, stop, code, stderr } of [
    {
      what: 'SIGINT while the hashes are computed: exit code 130',
      stop: (verify: CliProcess) => verify.child.kill('SIGINT'),
      code: 130,
      // The log line of the signal says what verify does, not what a run does.
      stderr:
        /shutdown requested: the seals being recomputed are cancelled, and nothing is reported[\s\S]*\ncpq-sync: verify --chain interrupted: no seal was reported\n$/,
    },
    {
      what: 'one of its sessions terminated while it hashes: exit code 6',
      stop: async (_verify: CliProcess, h: Harness, pid: number) =>
        expect(await h.t.query(`SELECT pg_terminate_backend($1) AS ended`, [pid])).toEqual([{ ended: true }]),
      code: 6,
      stderr: /^cpq-sync: database error: [^\n]*\n$/,
    },
  ]) {
    it(`${what}, one line, nothing on standard output, every session cancelled and ended`, async ({ startHarness, connectClient }) => {
      const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
      await history(h);
      const holder = await connectClient(h.t.url);
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE cpq.user_versions IN ACCESS EXCLUSIVE MODE');
      const verify = new CliProcess(['verify', '--chain'], { DATABASE_URL: h.t.url });
      try {
        const waiting = (await untilWaitingForLock(h.t, 3)).map((w) => w.pid);
        await stop(verify, h, waiting[0]!);
        const out = await verify.exited;
        expect(out.code).toBe(code);
        expect(out.stdout).toBe('');
        expect(out.stderr).toMatch(stderr);
        // Cancelled, not left waiting for the lock the holder still has: their sessions end as the
        // process closes them, a moment after it exits.
        const left = () => h.t.query(`SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [waiting]);
        await until('no session of verify left', async () => (await left()).length === 0, 5_000).catch(() => undefined);
        expect(await left()).toEqual([]);
      } finally {
        verify.kill('SIGKILL');
        await holder.query('ROLLBACK');
      }
    });
  }

  it('a login allowed one connection (CONNECTION LIMIT 1) verifies on that one session: the sessions more are done without', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
    const runs = await history(h);
    const role = `cpq_verify_${process.pid}`;
    await admin((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'one-session' CONNECTION LIMIT 1 IN ROLE cpq_reader`));
    const url = new URL(h.t.url);
    url.username = role;
    url.password = 'one-session';
    const pool = createPool(url.href);
    try {
      const report = await verifyChain(pool);
      expect(report.breaks).toEqual([]);
      expect(report.sites.map((s) => s.runs)).toEqual([runs.length]);
      expect(pool.totalCount).toBe(1);
    } finally {
      await pool.end();
      await admin((c) => c.query(`DROP ROLE ${role}`));
    }
  });
});
