import { assert, describe, expect } from 'vitest';
import { finishRun } from '../src/db/sql/finish-run.js';
import { SyncError } from '../src/errors.js';
import { it } from './helpers/harness.js';
import { holdSyncLock } from './helpers/database.js';
import { cli } from './helpers/cli-process.js';

/*
 * A run's result and its error carry what the run record says (run id, HTTP counts), so the
 * worker reads neither back from cpq.sync_runs; the error says where it happened (HTTP status,
 * stream).
 */

const HOST_USERS = '/rest/v16/companies/_host/users';

interface RunRow {
  id: string;
  status: string;
  http_requests: number;
  http_retries: Record<string, number>;
}

describe('run result and error', () => {
  it('a failed run throws an error with its run id, the HTTP status and stream, and the HTTP counts its row records', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 31, integrationUsers: 0 },
      { CPQ_PAGE_SIZE: '10', CPQ_MAX_RETRIES: '2', CPQ_RETRY_BASE_DELAY: '1ms', CPQ_RETRY_MAX_DELAY: '1ms' },
    );
    await h.sync();
    let page = 0;
    h.sim.onRequest = (req) => {
      if (req.path === HOST_USERS && page++ === 1) h.sim.addFault({ match: { path: HOST_USERS }, times: Infinity, status: 503 });
    };
    const err = await h.syncError({ full: true });
    expect(err).toBeInstanceOf(SyncError);
    assert.instanceOf(err, SyncError); // narrows; the line above has already failed otherwise
    const error = err;
    const [row] = await h.t.query<RunRow>(`SELECT id::text, status, http_requests, http_retries FROM cpq.sync_runs ORDER BY sync_runs.id DESC LIMIT 1`);
    expect(row!.status).toBe('failed');
    expect(error).toMatchObject({ kind: 'source', status: 503, stream: 'companies/_host', runId: row!.id });
    expect(error.http).toEqual({ requests: row!.http_requests, retries: row!.http_retries });
    expect(error.http).toEqual({ requests: 1 + 3, retries: { '503': 2 } });
    expect(error.seconds).toBeGreaterThan(0);
  });

  it('a failed first run is recorded as the full read it was, with the pages it read', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 31, integrationUsers: 0 },
      { CPQ_PAGE_SIZE: '10', CPQ_MAX_RETRIES: '0', CPQ_KEY_RANGES: '1' },
    );
    let page = 0;
    h.sim.onRequest = (req) => {
      if (req.path === HOST_USERS && page++ === 2) h.sim.addFault({ match: { path: HOST_USERS }, times: Infinity, status: 503 });
    };
    await h.syncError();
    const [row] = await h.t.query<{ status: string; mode: string; pages: number }>(`SELECT status, mode, pages FROM cpq.sync_runs`);
    expect(row).toEqual({ status: 'failed', mode: 'full', pages: 2 });
  });

  it('a first run that fails before any stream starts (the company list refused) is recorded as full too; a later one as incremental', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '*', CPQ_MAX_RETRIES: '0' });
    const records = () => h.t.query<{ status: string; mode: string; pages: number }>(`SELECT status, mode, pages FROM cpq.sync_runs ORDER BY id`);
    h.sim.addFault({ match: { path: /\/companies$/ }, times: 1, status: 500 });
    await h.syncError();
    expect(await records()).toEqual([{ status: 'failed', mode: 'full', pages: 0 }]);
    await h.sync();
    h.sim.addFault({ match: { path: /\/companies$/ }, times: 1, status: 500 });
    await h.syncError();
    expect((await records()).map((r) => [r.status, r.mode])).toEqual([
      ['failed', 'full'],
      ['succeeded', 'full'],
      ['failed', 'incremental'],
    ]);
  });

  it('a succeeded run returns its run id and the HTTP counts its row records', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 25, integrationUsers: 0 },
      { CPQ_PAGE_SIZE: '10', CPQ_RETRY_BASE_DELAY: '1ms', CPQ_RETRY_MAX_DELAY: '1ms' },
    );
    h.sim.addFault({ match: { path: HOST_USERS }, times: 1, status: 502 });
    const result = await h.sync();
    const [row] = await h.t.query<RunRow>(`SELECT id::text, status, http_requests, http_retries FROM cpq.sync_runs ORDER BY sync_runs.id DESC LIMIT 1`);
    expect(row).toMatchObject({ id: result.runId, status: 'succeeded' });
    expect(result.http).toEqual({ requests: row!.http_requests, retries: row!.http_retries });
    expect(result.http).toEqual({ requests: 3 + 1, retries: { '502': 1 } });
  });

  it("a failure recorded after the run's COMMIT went through (the connection failed before saying so) leaves the committed record as it is", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const result = await h.sync();
    const failed = {
      status: 'failed' as const,
      error: 'Connection terminated unexpectedly',
      mode: 'full' as const,
      pages: 0,
      streams: [],
      warnings: [],
      http: { requests: 0, retries: {} },
      progress: null,
    };
    expect(await finishRun(h.t.pool, result.runId, failed)).toBe(false);
    expect(await h.t.query(`SELECT status, error FROM cpq.sync_runs WHERE id = $1`, [result.runId])).toEqual([{ status: 'succeeded', error: null }]);
    // A run still running, or one another worker took for dead (abandoned), is recorded as failed, with its error.
    for (const status of ['running', 'abandoned']) {
      const [run] = await h.t.query<{ id: string }>(`INSERT INTO cpq.sync_runs (site, status, mode) VALUES ('default', $1, 'full') RETURNING id::text`, [
        status,
      ]);
      expect(await finishRun(h.t.pool, run!.id, failed)).toBe(true);
      expect(await h.t.query(`SELECT status, error FROM cpq.sync_runs WHERE id = $1`, [run!.id])).toEqual([
        { status: 'failed', error: 'Connection terminated unexpectedly' },
      ]);
    }
  });

  it('a run that found the lock held fails before it has a run id', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const holder = await h.t.pool.connect();
    const release = await holdSyncLock(holder);
    try {
      const err = await h.syncError();
      expect(err).toMatchObject({ kind: 'lock', runId: undefined, http: undefined });
    } finally {
      await release();
      holder.release();
    }
  });
});

describe('a port fetch refuses', () => {
  it('fails the run at once, not retried, exit code 2, naming the port (review CC: "fetch failed", retried, no hint)', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    // No server needs to listen there: fetch refuses the port before it connects.
    const out = await cli(['run'], { CPQ_BASE_URL: 'http://127.0.0.1:6000', DATABASE_URL: h.t.url, CPQ_MAX_RETRIES: '5', CPQ_RETRY_BASE_DELAY: '5s' });
    expect({ code: out.code, stderr: out.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(
        /^cpq-sync: GET http:\/\/127\.0\.0\.1:6000\/\S+: Node's fetch refuses port 6000 \(one of the ports browsers block, WHATWG "bad ports"\): serve the site, or a proxy in front of it, on another port\n$/,
      ) as unknown,
    });
  });
});
