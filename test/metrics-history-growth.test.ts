import { describe, expect } from 'vitest';
import type { Queryable } from '../src/db/compiled-query.js';
import { METRICS_COMPANIES_PER_SITE, readLatestCompanyCounts } from '../src/db/sql/read-proofs.js';
import { readRunOutcomes } from '../src/db/sql/read-run-outcomes.js';
import { WorkerMetrics } from '../src/worker/metrics.js';
import { HealthConnection } from '../src/worker/readiness.js';
import { it } from './helpers/fixtures.js';

/*
 * What /metrics reads at every scrape must not grow with the runs a worker has made.
 * cpq.run_company_counts gains a row per run and company and is never pruned; the per-company
 * counts read from it looked at every row once per row, so a `schedule` soak (3 sites every
 * 5-7 s) took 0.5 s per scrape after 14 minutes (1,242 rows) and the health connection's 2 s
 * statement timeout soon after: cpq_sync_company_users froze, and /readyz waited behind it. So
 * must what /readyz reads from cpq.sync_runs, which keeps every run too.
 */
describe('per-company counts of /metrics after many runs', () => {
  it('answer within the health connection timeout, with the companies of each site’s last run, over 10,000 rows', async ({ createDatabase }) => {
    const t = await createDatabase();
    const runsPerSite = 3500;
    const lastFull = 3480; // the last multiple of 60
    await t.query(`INSERT INTO cpq.sites (name) VALUES ('emea'), ('us')`);
    // Runs of the two sites interleaved, as a worker's are: emea's is the odd id, us's the even one.
    await t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at)
       SELECT CASE WHEN g % 2 = 1 THEN 'emea' ELSE 'us' END, 'succeeded', 'incremental',
              now() - interval '1 day' + g * interval '1 second', now() - interval '1 day' + g * interval '1 second'
       FROM generate_series(1, $1::int) g ORDER BY g`,
      [runsPerSite * 2],
    );
    const runs = await t.query<{ id: string; site: string; n: string }>(
      `SELECT id::text, site, (row_number() OVER (PARTITION BY site ORDER BY sync_runs.id))::text AS n FROM cpq.sync_runs ORDER BY sync_runs.id`,
    );
    expect(runs).toHaveLength(runsPerSite * 2);
    // emea: _host and acme every run, read in full every 60th (the last, run 3480); us: _host every run (never in
    // full: no CPQ count), and beta only in its first 100 runs (a partner no longer read).
    await t.query(
      `INSERT INTO cpq.run_company_counts (run_id, company_login, site, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
       SELECT r.id, c.company, r.site, CASE WHEN r.site = 'emea' AND r.n % 60 = 0 THEN 'full' ELSE 'incremental' END,
              r.n + 1000, 0, '', r.n, '', 'table'
       FROM (SELECT id, site, row_number() OVER (PARTITION BY site ORDER BY id) AS n FROM cpq.sync_runs) r
       CROSS JOIN LATERAL (VALUES ('_host'), (CASE WHEN r.site = 'emea' THEN 'acme' WHEN r.n <= 100 THEN 'beta' END)) c(company)
       WHERE c.company IS NOT NULL`,
    );
    const [counted] = await t.query<{ rows: string }>(`SELECT count(*)::text AS rows FROM cpq.run_company_counts`);
    expect(Number(counted?.rows)).toBeGreaterThan(10_000);
    await t.query(`ANALYZE cpq.run_company_counts`);

    // The connection /metrics reads through, with its 2 s statement timeout.
    const health = HealthConnection.forPool(t.pool);
    try {
      // us's beta, read in its first 100 runs only, is no company of its last run: not exported.
      const expected = [
        { site: 'emea', company: '_host', cpq: 1000 + lastFull, database: runsPerSite },
        { site: 'emea', company: 'acme', cpq: 1000 + lastFull, database: runsPerSite },
        { site: 'us', company: '_host', cpq: null, database: runsPerSite },
      ];
      expect(await readLatestCompanyCounts(health)).toEqual({
        counts: expected,
        companiesRead: [
          { site: 'emea', companies: 2 },
          { site: 'us', companies: 1 },
        ],
      });
      const metrics = new WorkerMetrics({ sites: ['emea', 'us'], processMetrics: false, companyCounts: () => readLatestCompanyCounts(health) });
      const text = await metrics.text();
      expect(text).toContain(`cpq_sync_company_users{site="emea",company="acme",source="cpq"} ${1000 + lastFull}`);
      expect(text).toContain(`cpq_sync_company_users{site="us",company="_host",source="database"} ${runsPerSite}`);
      expect(text).not.toContain('company="beta"');
      expect(text).toContain('cpq_sync_company_users_omitted{site="us"} 0');
    } finally {
      await health.close();
    }
  }, 60_000);

  it("a CPQ listing new companies at every run: a scrape exports those of each site's last run, at most METRICS_COMPANIES_PER_SITE, and counts the rest (review HE)", async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    await t.query(`INSERT INTO cpq.sites (name) VALUES ('hostile'), ('other')`);
    // hostile: 30 runs of 10,000 companies each, none read twice (300,000 rows: a scrape that
    // exported every company ever read ran a 192 MB worker out of memory); other: one run of two.
    const runsOfHostile = 30;
    const perRun = 10_000;
    await t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at)
       SELECT CASE WHEN g <= $1 THEN 'hostile' ELSE 'other' END, 'succeeded', 'full', now(), now() FROM generate_series(1, $1 + 1) g ORDER BY g`,
      [runsOfHostile],
    );
    await t.query(
      `INSERT INTO cpq.run_company_counts (run_id, company_login, site, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
       SELECT r.id, 'c' || lpad((r.n * $1 + g)::text, 7, '0'), r.site, 'full', 1, 1, '', 1, '', 'table'
       FROM (SELECT id, site, row_number() OVER (ORDER BY id) - 1 AS n FROM cpq.sync_runs WHERE site = 'hostile') r
       CROSS JOIN generate_series(1, $1) g`,
      [perRun],
    );
    await t.query(
      `INSERT INTO cpq.run_company_counts (run_id, company_login, site, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
       SELECT id, c, site, 'incremental', NULL, 0, '', 7, '', 'table' FROM cpq.sync_runs, unnest(ARRAY['_host', 'acme']) c WHERE site = 'other'`,
    );
    await t.query(`ANALYZE cpq.run_company_counts`);
    const health = HealthConnection.forPool(t.pool);
    try {
      const firstOfLastRun = (runsOfHostile - 1) * perRun + 1;
      const limited = await readLatestCompanyCounts(health, undefined, 3);
      expect(limited).toEqual({
        counts: [
          ...[0, 1, 2].map((i) => ({ site: 'hostile', company: `c${String(firstOfLastRun + i).padStart(7, '0')}`, cpq: 1, database: 1 })),
          { site: 'other', company: '_host', cpq: null, database: 7 },
          { site: 'other', company: 'acme', cpq: null, database: 7 },
        ],
        companiesRead: [
          { site: 'hostile', companies: perRun },
          { site: 'other', companies: 2 },
        ],
      });
      // A worker reads the sites it syncs only: one of many sites' workers keeps at most the limit of each of its own.
      expect((await readLatestCompanyCounts(health, ['other'])).counts.map((c) => c.company)).toEqual(['_host', 'acme']);
      // Through the worker's metrics, at the default limit: the last run's 10,000 companies (two series each), none of the runs before.
      const metrics = new WorkerMetrics({ sites: ['hostile', 'other'], processMetrics: false, companyCounts: () => readLatestCompanyCounts(health) });
      const text = await metrics.text();
      const series = text.split('\n').filter((l) => l.startsWith('cpq_sync_company_users{site="hostile"'));
      expect(series).toHaveLength(2 * Math.min(perRun, METRICS_COMPANIES_PER_SITE));
      expect(text).not.toContain(`company="c${String(firstOfLastRun - 1).padStart(7, '0')}"`);
      expect(text).toContain(`cpq_sync_company_users_omitted{site="hostile"} ${Math.max(0, perRun - METRICS_COMPANIES_PER_SITE)}`);
    } finally {
      await health.close();
    }
  }, 120_000);

  it('a scrape reads what the last runs read: a company no longer read, or past the limit, leaves no series behind', async ({ createDatabase }) => {
    const t = await createDatabase();
    await t.query(`INSERT INTO cpq.sites (name) VALUES ('emea')`);
    const run = async (companies: string[]) => {
      const [made] = await t.query<{ id: string }>(
        `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at) VALUES ('emea', 'succeeded', 'full', now(), now()) RETURNING id::text`,
      );
      await t.query(
        `INSERT INTO cpq.run_company_counts (run_id, company_login, site, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
         SELECT $1, c, 'emea', 'full', 5, 5, '', 5, '', 'table' FROM unnest($2::text[]) c`,
        [made!.id, companies],
      );
    };
    await run(['_host', 'acme', 'beta']);
    const metrics = new WorkerMetrics({ sites: ['emea'], processMetrics: false, companyCounts: () => readLatestCompanyCounts(t.pool, undefined, 2) });
    const first = await metrics.text();
    expect(first).toContain('cpq_sync_company_users{site="emea",company="acme",source="database"} 5');
    expect(first).not.toContain('company="beta"');
    expect(first).toContain('cpq_sync_company_users_omitted{site="emea"} 1');
    await run(['_host', 'beta']);
    const second = await metrics.text();
    expect(second).toContain('cpq_sync_company_users{site="emea",company="beta",source="database"} 5');
    expect(second).not.toContain('company="acme"');
    expect(second).toContain('cpq_sync_company_users_omitted{site="emea"} 0');
  });

  it("each site's last success and first run are found without reading every run of the site (/readyz, /metrics, status)", async ({ createDatabase }) => {
    const t = await createDatabase();
    await t.query(`INSERT INTO cpq.sites (name) VALUES ('emea'), ('us')`);
    // 20,000 runs, the two sites' interleaved; every 10th failed; us's last one still running.
    await t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at)
       SELECT CASE WHEN g % 2 = 1 THEN 'emea' ELSE 'us' END, CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 'incremental',
              timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', timestamptz '2026-01-01 00:00:30+00' + g * interval '1 minute'
       FROM generate_series(1, 20000) g ORDER BY g`,
    );
    await t.query(`INSERT INTO cpq.sync_runs (site, status, mode, started_at) VALUES ('us', 'running', 'incremental', timestamptz '2026-02-01 00:00:00+00')`);
    await t.query(`ANALYZE cpq.sync_runs`);

    const outcomes = await readRunOutcomes(t.pool, 'emea');
    expect({ lastSuccess: outcomes.lastSuccess?.toISOString(), firstStarted: outcomes.firstStarted?.toISOString() }).toEqual({
      lastSuccess: new Date(Date.parse('2026-01-01T00:00:30Z') + 19999 * 60_000).toISOString(),
      firstStarted: new Date(Date.parse('2026-01-01T00:00:00Z') + 60_000).toISOString(),
    });
    const us = await readRunOutcomes(t.pool, 'us');
    // us's last run (20,000) failed: its last success is run 19,998.
    expect(us.lastSuccess?.toISOString()).toBe(new Date(Date.parse('2026-01-01T00:00:30Z') + 19998 * 60_000).toISOString());
    expect(us.runningSince?.toISOString()).toBe('2026-02-01T00:00:00.000Z');

    // How Postgres reads it: the plan of the very query, with its parameters.
    const plans: string[] = [];
    const explaining: Queryable = {
      query: async (text, values) => {
        const rows = await t.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, values);
        plans.push(rows.map((r) => r['QUERY PLAN']).join('\n'));
        return { rows: await t.query(text, values) };
      },
    };
    await readRunOutcomes(explaining, 'emea');
    expect(plans).toHaveLength(1);
    expect(plans[0]).toContain('sync_runs');
    expect(plans[0]).not.toMatch(/Seq Scan on sync_runs/);
  }, 60_000);
});
