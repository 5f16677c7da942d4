import { describe, expect } from 'vitest';
import { exportSnapshot } from '../src/history/export.js';
import { planNodes, plansOf } from './helpers/auto-explain.js';
import { collectJsonLines } from './helpers/export-output.js';
import { it } from './helpers/harness.js';

/*
 * A snapshot and cpq.admin_rights_as_of read every user of a site with all their memberships (and
 * the ended versions of all of them) and join them by user: a nested loop is never the cheaper join
 * there. The planner cannot estimate those joins (an as-of function is a UNION ALL, whose columns
 * have no statistics: the join on the run's site keeps 1 row in 200 in its eyes, each grouping by
 * user makes 200 groups), and without statistics (a restore before its ANALYZE; the versions tables
 * and groups, which runs do not analyze) it believes a site has a user or two. Believing that, it
 * joined each user to a rescan of every user's aggregated groups: quadratic, 36 s for a snapshot of
 * 16,000 users after five runs, over a minute for one of a past time, 24 s for their admin rights
 * after a restore, where hash joins take under a second (review EX). The snapshot's transaction
 * and the function plan without nested loops but those no other join can do (the function's
 * LATERAL VALUES lists); checked here on the plans auto_explain writes to the reading session, with
 * the statistics gone as a restore leaves them.
 */
describe('whole reads of a site', () => {
  it('a snapshot and cpq.admin_rights_as_of are planned without a nested loop that filters a join, also where the planner believes the site has one user (no statistics, as after a restore)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 200, integrationUsers: 0 });
    await h.sync();
    const asOf = new Date();
    await h.t.query(`DELETE FROM pg_statistic WHERE starelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'cpq'::regnamespace)`);
    const [estimate] = await h.t.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
      `EXPLAIN (FORMAT JSON) SELECT 1 FROM cpq.users_as_of(now()) WHERE deleted_at IS NULL`,
    );
    expect(estimate!['QUERY PLAN'][0].Plan['Plan Rows']).toBeLessThan(10);

    let lines: unknown[] = [];
    const snapshot = (await plansOf(h.t.url, async (pool) => (lines = await collectJsonLines((out) => exportSnapshot(pool, asOf, 'jsonl', out))))).filter((p) =>
      p.query.includes('cpq.user_groups_as_of'),
    );
    expect(lines).toHaveLength(200);
    expect(snapshot).toHaveLength(1);
    const snapshotJoins = planNodes(snapshot[0]!.plan).map((n) => n['Node Type']);
    expect(snapshotJoins).toContain('Hash Join');
    expect(snapshotJoins).not.toContain('Nested Loop');

    let rights = 0;
    const body = (
      await plansOf(h.t.url, async (pool) => {
        const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.admin_rights_as_of($1::timestamptz, 'default')`, [asOf]);
        rights = Number(rows[0]!.n);
      })
    ).filter((p) => p.query.includes('WITH present AS'));
    expect(rights).toBeGreaterThan(50);
    expect(body).toHaveLength(1);
    const filtering = planNodes(body[0]!.plan).filter((n) => n['Node Type'] === 'Nested Loop' && n['Join Filter'] !== undefined);
    expect(filtering.map((n) => n['Join Filter'])).toEqual([]);
  });
});
