import { Writable } from 'node:stream';
import { describe, expect } from 'vitest';
import { exportChanges, parseAfter } from '../src/history/export.js';
import { plansOf } from './helpers/auto-explain.js';
import { collectJsonLines } from './helpers/export-output.js';
import { it } from './helpers/harness.js';

/*
 * `changes` reads the change log with jit off: an insert's diff is built from history as it is
 * read, and a server built with JIT compiled a read of 32,000 inserts for 3.1 s first, with nothing
 * gained (src/db/sql/evaluate-without-jit.ts). Postgres without LLVM (as the embedded one may be)
 * never compiles, so the test reads the setting the read was planned with, through auto_explain.
 */
describe('changes reads the change log', () => {
  it('with jit off, and the setting ends with its transaction', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    let lines = 0;
    const plans = await plansOf(h.t.url, async (pool) => {
      lines = (await collectJsonLines((out) => exportChanges(pool, parseAfter('0'), 'jsonl', out))).length;
      // The same pooled connection afterwards: SET LOCAL ended with the export's transaction.
      await pool.query(`SELECT 'after the export' AS probe FROM cpq.user_change_log`);
    });
    expect(lines).toBe(3);
    const read = plans.filter((p) => p.query.includes('cpq.user_changes'));
    expect(read.length).toBeGreaterThan(0);
    for (const p of read) expect(p.settings).toMatchObject({ jit: 'off' });
    const after = plans.filter((p) => p.query.includes('after the export'));
    expect(after).toHaveLength(1);
    expect(after[0]!.settings).not.toHaveProperty('jit');
  });
});

/*
 * An export asks Postgres for its next batch of rows (2000) before it writes the batch it holds,
 * so that the two work at once (src/history/export.ts, streamRows). These read more than two
 * batches: every row arrives once and in order across the batch boundaries, and an output that
 * fails while the next batch is being read ends the export with that failure and leaves the
 * connection clean, its transaction ended.
 */
describe('an export reading its next batch while it writes', () => {
  it('writes every change once, in commit order, across batches', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4100, integrationUsers: 0 }, { SYNC_MERGE_BATCH_USERS: '5000' });
    await h.sync();
    const lines = await collectJsonLines((out) => exportChanges(h.t.pool, parseAfter('0'), 'jsonl', out));
    const ids = await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.user_change_log ORDER BY user_change_log.id`);
    expect(ids.length).toBeGreaterThan(4000);
    expect(lines.map((l) => l.change_id)).toEqual(ids.map((r) => r.id));
    expect(lines.every((l) => l.change === 'insert' && typeof l.diff === 'object' && l.diff !== null)).toBe(true);
  });

  it('an output that fails while the next batch is read: the export fails with it, and its connection is left clean', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4100, integrationUsers: 0 }, { SYNC_MERGE_BATCH_USERS: '5000' });
    await h.sync();
    let written = 0;
    const failing = new Writable({
      write(chunk: Buffer, _enc, done) {
        written += chunk.length;
        done(new Error('no space left on the test device'));
      },
    });
    await expect(exportChanges(h.t.pool, parseAfter('0'), 'jsonl', failing)).rejects.toThrow(/no space left on the test device/);
    expect(written).toBeGreaterThan(0);
    // Every client is back in the pool, none in a transaction or reading: the next export works.
    expect(h.t.pool.totalCount - h.t.pool.idleCount).toBe(0);
    // Client sessions only: an autovacuum worker of the 4,100 users just written is 'active' too.
    const open = await h.t.query<{ state: string }>(
      `SELECT state FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'`,
    );
    expect(open).toEqual([]);
    const again = await collectJsonLines((out) => exportChanges(h.t.pool, parseAfter('0'), 'jsonl', out));
    expect(again.length).toBeGreaterThan(4000);
  });
});
