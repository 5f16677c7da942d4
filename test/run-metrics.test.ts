import { describe, expect } from 'vitest';
import type { RunResult } from '../src/sync/run-types.js';
import { WorkerMetrics } from '../src/worker/metrics.js';
import { it } from './helpers/harness.js';

/** What the worker records of a successful run (src/worker/sync-worker.ts does the same). */
function record(metrics: WorkerMetrics, r: RunResult) {
  metrics.recordRun({
    site: r.site,
    status: 'succeeded',
    durationSeconds: r.seconds,
    users: { inserted: r.inserted, updated: r.updated, unchanged: r.unchanged, deleted: r.deleted, restored: r.restored },
    streams: r.streams,
  });
}

const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);

describe('metrics of deletions, restores, deletion-guard refusals and short reads', () => {
  it('count what the runs did, from zero', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '4' });
    const metrics = new WorkerMetrics({ sites: ['default'], processMetrics: false });
    const zero = await metrics.registry.metrics();
    for (const series of [
      'cpq_sync_users_synced_total{site="default",change="deleted"}',
      'cpq_sync_users_synced_total{site="default",change="restored"}',
      'cpq_sync_short_reads_total{site="default"}',
      'cpq_sync_deletion_guard_refusals_total{site="default"}',
    ])
      expect(value(zero, series)).toBe(0);

    record(metrics, await h.sync());
    const logins = h.sim.users('_host').map((u) => String(u.login));
    // One deleted (10%): applied. Then three more (33%): refused by the guard.
    h.sim.deleteUser('_host', logins[0]!);
    record(metrics, await h.sync({ full: true }));
    for (const login of logins.slice(1, 4)) h.sim.deleteUser('_host', login);
    record(metrics, await h.sync({ full: true }));
    // The first one back: restored.
    h.sim.addUser('_host', { login: logins[0] });
    record(metrics, await h.sync());
    // A read cut short after its first page.
    let n = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++n === 2) h.sim.addFault({ match: { path: req.path }, times: 1, status: 200, body: '{"items":[],"hasMore":false}' });
    };
    record(metrics, await h.sync({ full: true }));

    const text = await metrics.registry.metrics();
    expect(value(text, 'cpq_sync_users_synced_total{site="default",change="deleted"}')).toBe(1);
    expect(value(text, 'cpq_sync_users_synced_total{site="default",change="restored"}')).toBe(1);
    expect(value(text, 'cpq_sync_deletion_guard_refusals_total{site="default"}')).toBe(1);
    expect(value(text, 'cpq_sync_short_reads_total{site="default"}')).toBe(1);
  });
});
