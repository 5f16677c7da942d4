import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterEach, describe, expect } from 'vitest';
import { exportSnapshot } from '../src/history/export.js';
import { type Harness, it } from './helpers/harness.js';
import { untilWaitingForLock } from './helpers/database.js';

let h: Harness | undefined;
let holder: pg.Client | undefined;
afterEach(async () => {
  await holder?.end().catch(() => undefined);
  holder = undefined;
});

async function snapshotLines(asOf: Date): Promise<Record<string, unknown>[]> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await exportSnapshot(h!.t.pool, asOf, 'jsonl', out);
  out.end();
  return Buffer.concat(chunks)
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('snapshot: the run it names is exactly the state it contains', () => {
  it('a run that commits after the snapshot chose its run, before it read the users, is not in it', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const first = await h.sync();
    const later = new Date(Date.now() + 3_600_000);

    // Hold the snapshot between its two reads: the run it names (cpq.sync_runs) is free to read,
    // the users (cpq.users) are locked by a transaction that then commits a run adding a user.
    holder = new pg.Client({ connectionString: h.t.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE cpq.users IN ACCESS EXCLUSIVE MODE');
    const exporting = snapshotLines(later);
    await untilWaitingForLock(h.t);
    const { rows } = await holder.query<{ id: string; effective_at: Date }>(
      `INSERT INTO cpq.sync_runs (status, mode, finished_at, effective_at) VALUES ('succeeded', 'incremental', now(), now()) RETURNING id, effective_at`,
    );
    const second = rows[0]!;
    await holder.query(`CREATE TEMP TABLE late AS SELECT * FROM cpq.users ORDER BY login LIMIT 1`);
    await holder.query(
      `UPDATE late SET id = (SELECT max(id) + 1 FROM cpq.users), login = 'zz-late', valid_from = $2, first_seen_run_id = $1, last_changed_run_id = $1`,
      [second.id, second.effective_at],
    );
    await holder.query(`INSERT INTO cpq.users SELECT * FROM late`);
    await holder.query('COMMIT');

    const held = await exporting;
    expect(new Set(held.map((r) => r.snapshot_run_id))).toEqual(new Set([first.runId]));
    expect(held.map((r) => r.login)).toEqual(h.sim.users('_host').map((u) => u.login));

    // Asked again, the snapshot names the later run and holds its user.
    const now = await snapshotLines(later);
    expect(new Set(now.map((r) => r.snapshot_run_id))).toEqual(new Set([second.id]));
    expect(now.map((r) => r.login)).toContain('zz-late');
  });
});
