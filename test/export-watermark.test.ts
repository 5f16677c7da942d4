import { Writable } from 'node:stream';
import type pg from 'pg';
import { describe, expect } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import { createRun } from '../src/db/sql/create-run.js';
import { exportChanges, parseAfter, parseSince, type ChangesExport } from '../src/history/export.js';
import { cli } from './helpers/cli-process.js';
import { migrateBefore, untilWaitingForLock } from './helpers/database.js';
import { collectJsonLines } from './helpers/export-output.js';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

interface Poll extends ChangesExport {
  changeIds: string[];
}

/** One poll as a warehouse makes it: the changes after the watermark, and the next watermark. */
async function poll(h: Harness, from: string | { since: string }): Promise<Poll> {
  let result!: ChangesExport;
  const lines = await collectJsonLines(async (out) => {
    result = await exportChanges(h.t.pool, typeof from === 'string' ? parseAfter(from) : parseSince(from.since), 'jsonl', out);
  });
  return { ...result, changeIds: lines.map((l) => String(l.change_id)) };
}

/**
 * A sync run as the sync writes one, in a transaction of its own: its run row, one change row,
 * and (finish) the final statement of src/sync/run.ts that marks it succeeded, then COMMIT. Its run
 * row is inserted as a worker of a release before migration 0044 inserted it (commit_seq_at_start
 * from the column's default).
 */
async function openRun(client: pg.Client, login: string) {
  await client.query('BEGIN');
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO cpq.sync_runs (site, status, mode) VALUES ('default', 'running', 'incremental') RETURNING id`,
  );
  const runId = rows[0]!.id;
  const { rows: change } = await client.query<{ id: string }>(
    `INSERT INTO cpq.user_change_log (site, run_id, change, user_id, company_login, login, detected_at, diff)
     SELECT site, $1, 'update', id, company_login, login, now(), '{"last_name":{"old":"a","new":"b"}}' FROM cpq.users WHERE login = $2
     RETURNING id`,
    [runId, login],
  );
  return {
    runId,
    changeId: change[0]!.id,
    client,
    markSucceeded: () =>
      client.query(`UPDATE cpq.sync_runs SET status = 'succeeded', finished_at = $2, effective_at = $3 WHERE id = $1`, [runId, new Date(), new Date()]),
    markFailed: () => client.query(`UPDATE cpq.sync_runs SET status = 'failed', finished_at = now() WHERE id = $1`, [runId]),
    commit: () => client.query('COMMIT'),
  };
}

describe('changes --after <watermark>: no change missed or repeated, however runs commit', () => {
  it('a run that started first and commits last is read by the next poll, not skipped', async ({ startHarness, connectClient }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    const first = await poll(h, '0');
    expect(first.changeIds).toHaveLength(3);

    const early = await openRun(await connectClient(h.t.url), a!); // starts first: lower run id, change id and effective time
    const late = await openRun(await connectClient(h.t.url), b!);
    await late.markSucceeded();
    await late.commit();
    const second = await poll(h, first.watermark);
    expect(second.changeIds).toEqual([late.changeId]);

    // Polling by run id from what the second poll saw finds the early run too: it committed after that run.
    await early.markSucceeded();
    await early.commit();
    expect((await poll(h, { since: late.runId })).changeIds).toEqual([early.changeId]);
    const third = await poll(h, second.watermark);
    expect(third.changeIds).toEqual([early.changeId]);
    expect(BigInt(third.watermark)).toBeGreaterThan(BigInt(second.watermark));

    const idle = await poll(h, third.watermark);
    expect(idle).toEqual({ changes: 0, watermark: third.watermark, changeIds: [] });
    // Exactly once: the polls together hold every change of the log, each once.
    const all = await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.user_change_log ORDER BY user_change_log.id`);
    expect([...first.changeIds, ...second.changeIds, ...third.changeIds].sort()).toEqual(all.map((r) => r.id).sort());
  });

  it('--since <a run that never committed (failed)> gives the runs that committed after it began, one with a lower id among them', async ({
    startHarness,
    connectClient,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    const early = await openRun(await connectClient(h.t.url), a!);
    const failed = await openRun(await connectClient(h.t.url), b!);
    await failed.markFailed();
    await failed.commit();
    await early.markSucceeded();
    await early.commit();
    expect((await poll(h, { since: failed.runId })).changeIds).toEqual([early.changeId]);
    // A run recorded before migration 0044 (no commit_seq_at_start): read from committed_at, as before.
    await h.t.query(`UPDATE cpq.sync_runs SET commit_seq_at_start = NULL WHERE id = $1`, [failed.runId]);
    expect((await poll(h, { since: failed.runId })).changeIds).toEqual([early.changeId]);
  });

  it('--since <a run that never committed> includes a run whose COMMIT was still going on when it began (its committed_at is earlier)', async ({
    startHarness,
    connectClient,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    const slow = await openRun(await connectClient(h.t.url), a!);
    await slow.markSucceeded(); // its commit_seq and committed_at taken, its COMMIT not done yet (a slow disk)
    // Opened as the sync opens its run record, outside any transaction; then it fails.
    const failedId = await createRun(h.t.pool, 'default', 'incremental');
    // An older worker's run record, opened as it was (the column's default fills it in).
    const { rows: older } = await (
      await connectClient(h.t.url)
    ).query<{ id: string }>(`INSERT INTO cpq.sync_runs (site, status, mode) VALUES ('default', 'failed', 'incremental') RETURNING id`);
    await h.t.query(`UPDATE cpq.sync_runs SET status = 'failed', finished_at = now() WHERE id = $1`, [failedId]);
    await slow.commit();
    const [slowRun, failedRun] = await h.t.query<{ committed_at: Date | null; started_at: Date }>(
      `SELECT committed_at, started_at FROM cpq.sync_runs WHERE id = ANY($1::bigint[]) ORDER BY id`,
      [[slow.runId, failedId]],
    );
    expect(slowRun!.committed_at!.getTime()).toBeLessThanOrEqual(failedRun!.started_at.getTime()); // the case: committed_at says "before"
    expect((await poll(h, { since: failedId })).changeIds).toEqual([slow.changeId]);
    expect((await poll(h, { since: older[0]!.id })).changeIds).toEqual([slow.changeId]);
  });

  it('runs take their numbers in commit order: a second run finishing waits for the first to commit; a rolled-back run leaves no gap', async ({
    startHarness,
    connectClient,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const [a, b, c] = h.sim.users('_host').map((u) => String(u.login));
    const start = await poll(h, '0');

    const rolledBack = await openRun(await connectClient(h.t.url), c!);
    await rolledBack.markSucceeded();
    await rolledBack.client.query('ROLLBACK');

    const one = await openRun(await connectClient(h.t.url), a!);
    const two = await openRun(await connectClient(h.t.url), b!);
    await one.markSucceeded(); // took its number; not committed yet
    const twoFinishing = two.markSucceeded();
    await untilWaitingForLock(h.t);
    expect(await poll(h, start.watermark)).toEqual({ changes: 0, watermark: start.watermark, changeIds: [] });
    await one.commit();
    await twoFinishing;
    const afterOne = await poll(h, start.watermark);
    expect(afterOne.changeIds).toEqual([one.changeId]);
    await two.commit();
    const afterTwo = await poll(h, afterOne.watermark);
    expect(afterTwo.changeIds).toEqual([two.changeId]);

    const seqs = await h.t.query<{ id: string; commit_seq: string }>(
      `SELECT id::text, commit_seq::text FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY sync_runs.commit_seq`,
    );
    expect(seqs.map((r) => r.commit_seq)).toEqual(['1', '2', '3']);
    expect(seqs.map((r) => r.id).slice(1)).toEqual([one.runId, two.runId]);
  });

  it('rows and watermark come from one snapshot: a run committing while the export streams is left whole to the next poll', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const [login] = h.sim.users('_host').map((u) => String(u.login));

    // An output that takes the first chunk and then holds the export until released.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let firstChunk!: () => void;
    const gotFirstChunk = new Promise<void>((resolve) => (firstChunk = resolve));
    let text = '';
    const out = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, done) {
        text += chunk.toString('utf8');
        firstChunk();
        void released.then(() => done());
      },
    });
    const exporting = exportChanges(h.t.pool, parseAfter('0'), 'jsonl', out);
    await gotFirstChunk;
    h.sim.updateUser('_host', login!, { lastName: 'Committed-Meanwhile' });
    const meanwhile = await h.sync();
    release();
    const held = await exporting;
    expect(held.changes).toBe(3);
    expect(text).not.toContain('Committed-Meanwhile');

    const next = await poll(h, held.watermark);
    const [change] = await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.user_change_log WHERE run_id = $1`, [meanwhile.runId]);
    expect(next.changeIds).toEqual([change!.id]);
  });

  it('the CLI prints the next watermark on stderr, and refuses a watermark this database never printed', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const env = { DATABASE_URL: h.t.url };
    const all = await cli(['changes', '--after', '0'], env);
    expect(all.code).toBe(0);
    expect(all.stdout.trim().split('\n')).toHaveLength(2);
    expect(all.stderr).toMatch(/^watermark: 1$/m);
    const none = await cli(['changes', '--after', '1'], env);
    expect(none).toMatchObject({ code: 0, stdout: '' });
    expect(none.stderr).toMatch(/^watermark: 1$/m);
    const ahead = await cli(['changes', '--after', '7'], env);
    expect(ahead.code).toBe(2);
    expect(ahead.stderr).toMatch(/--after 7 is past the newest watermark of this database \(1\)/);
    const both = await cli(['changes', '--after', '1', '--since', '1'], env);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --after <watermark> and --since/);
  });
});

describe('migration 0009 on a database of an earlier release', () => {
  it('numbers the successful runs it finds in id order (the sync lock kept that commit order), and the next run after them', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await migrateBefore(h.t, '0009');
    // Runs of that release: succeeded, failed, succeeded, each succeeded one with a change row.
    await h.t.query(
      `INSERT INTO cpq.sync_runs (status, mode, finished_at, effective_at, error)
       VALUES ('succeeded', 'full', now(), now(), NULL), ('failed', 'full', now(), NULL, 'boom'), ('succeeded', 'incremental', now(), now(), NULL)`,
    );
    await h.t.query(
      `INSERT INTO cpq.user_change_log (run_id, change, user_id, company_login, login, detected_at, diff)
       VALUES (1, 'update', 1, '_host', 'a', now(), '{}'), (3, 'update', 1, '_host', 'a', now(), '{}')`,
    );

    expect(await migrate(h.t.db)).toContain('0009_commit_order');
    const runs = await h.t.query<{ id: string; commit_seq: string | null; same: boolean }>(
      `SELECT id::text, commit_seq::text, committed_at = finished_at AS same FROM cpq.sync_runs ORDER BY sync_runs.id`,
    );
    expect(runs).toEqual([
      { id: '1', commit_seq: '1', same: true },
      { id: '2', commit_seq: null, same: null }, // a failed run committed nothing: no committed_at
      { id: '3', commit_seq: '2', same: true },
    ]);
    const all = await poll(h, '0');
    expect(all.watermark).toBe('2');
    expect(all.changeIds).toEqual(['1', '2']);
    const next = await h.sync();
    expect(await h.t.query(`SELECT commit_seq::text FROM cpq.sync_runs WHERE id = $1`, [next.runId])).toEqual([{ commit_seq: '3' }]);
    expect((await poll(h, all.watermark)).changeIds).toHaveLength(2); // the first load of the two users
  });
});
