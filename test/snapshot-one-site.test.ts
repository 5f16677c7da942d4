import pino from 'pino';
import { afterEach, describe, expect } from 'vitest';
import { loadConfig } from '../src/config.js';
import { exportSnapshot } from '../src/history/export.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { planNodes, plansOf, type PlanNode } from './helpers/auto-explain.js';
import { collectJsonLines } from './helpers/export-output.js';
import { it } from './helpers/fixtures.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step();
});

/*
 * A snapshot joins each user to their groups and permissions aggregated per user. Those aggregates
 * were made of every site's memberships, whatever sites the snapshot was of: a snapshot of a site of
 * 100 users beside one of 64,000 took 3 s, 0.2 s once they were of its sites only. Checked on the
 * rows the plan's scans of cpq.user_groups and cpq.user_access_permissions returned (auto_explain,
 * with actual rows), and on the rows the snapshot wrote. So for its --admin-rights form:
 * cpq.admin_rights_as_of(ts, site) filtered the rights of every site (0.7 s for 100 users beside
 * 64,000), and reads that site's users and versions only since migrations/0030.
 */
/** The rows the scans of `relation` in `plan` returned (auto_explain with actual rows). */
function rowsRead(plan: PlanNode, relation: string): number {
  return planNodes(plan)
    .filter((n) => n['Relation Name'] === relation)
    .reduce((sum, n) => sum + (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 1), 0);
}

describe('a snapshot of one site', () => {
  it("aggregates that site's memberships and permissions only, not those of the others; its admin rights read that site's users only", async ({
    createDatabase,
    writeSitesFile,
  }) => {
    const t = await createDatabase();
    const sims = [300, 20].map((users) => new CpqSimulator({ partnerCompanies: 0, usersPerCompany: users, integrationUsers: 0 }));
    for (const sim of sims) cleanups.push(() => sim.stop());
    const urls = await Promise.all(sims.map((s) => s.start()));
    const sitesFile = writeSitesFile([
      { name: 'large', baseUrl: urls[0] },
      { name: 'small', baseUrl: urls[1] },
    ]);
    const config = loadConfig({ CPQ_SITES_FILE: sitesFile, DATABASE_URL: t.url });
    for (const site of ['large', 'small']) {
      const run = await runSync({ pool: t.pool, db: t.db, config, log: pino({ level: 'silent' }) }, { site });
      expect(run.status).toBe('succeeded');
    }
    const asOf = new Date();
    const count = async (table: string, site: string) =>
      Number((await t.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.${table} WHERE site = $1`, [site]))[0]!.n);
    const small = { groups: await count('user_groups', 'small'), permissions: await count('user_access_permissions', 'small') };
    expect(small.groups).toBeGreaterThan(0);
    expect(small.permissions).toBeGreaterThan(0);
    expect(await count('user_groups', 'large')).toBeGreaterThan(10 * small.groups);

    let lines: Record<string, unknown>[] = [];
    const plans = (
      await plansOf(t.url, async (pool) => (lines = await collectJsonLines((out) => exportSnapshot(pool, asOf, 'jsonl', out, { sites: ['small'] }))), {
        analyze: true,
      })
    ).filter((p) => p.query.includes('cpq.user_groups_as_of'));
    expect(plans).toHaveLength(1);
    expect({ groups: rowsRead(plans[0]!.plan, 'user_groups'), permissions: rowsRead(plans[0]!.plan, 'user_access_permissions') }).toEqual(small);

    expect(lines).toHaveLength(20);
    expect(new Set(lines.map((l) => l.site))).toEqual(new Set(['small']));
    const written = lines.reduce<{ groups: number; permissions: number }>(
      (sum, l) => ({ groups: sum.groups + (l.groups as unknown[]).length, permissions: sum.permissions + (l.access_permissions as unknown[]).length }),
      { groups: 0, permissions: 0 },
    );
    expect(written).toEqual(small);

    // Its --admin-rights form: cpq.admin_rights_as_of(ts, site) reads the site's users only, and
    // gives the rows of that site that the function of every site gives.
    let rights: Record<string, unknown>[] = [];
    const body = (
      await plansOf(
        t.url,
        async (pool) => (rights = await collectJsonLines((out) => exportSnapshot(pool, asOf, 'jsonl', out, { sites: ['small'], adminRights: true }))),
        { analyze: true },
      )
    ).filter((p) => p.query.includes('WITH present AS'));
    expect(body).toHaveLength(1);
    expect(rowsRead(body[0]!.plan, 'users')).toBe(await count('users', 'small'));
    // since: to the millisecond, as a Date holds it (the export writes microseconds where there are any).
    const key = (r: Record<string, unknown>) =>
      JSON.stringify([r.site, r.company_login, r.login, r.admin_right, r.group_variable_name, new Date(r.since as string | Date).toISOString()]);
    const everySite = await t.query(
      `SELECT site, company_login, login, admin_right, group_variable_name, since FROM cpq.admin_rights_as_of($1::timestamptz) WHERE site = 'small'`,
      [asOf],
    );
    expect(everySite.length).toBeGreaterThan(0);
    expect(rights.map(key).sort()).toEqual(everySite.map(key).sort());
  });
});
