import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect } from 'vitest';
import { loadConfig } from '../src/config.js';
import { MIGRATIONS_DIR } from '../src/db/migrate.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { it } from './helpers/fixtures.js';
import type { TestDatabase } from './helpers/database.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step();
});

/*
 * Migration 0030 moved cpq.admin_rights_as_of's body into cpq.admin_rights_as_of_site_or_all, with
 * the site filtered in every table it reads, on the premise that a user's versions and memberships
 * are all of the user's site. A database that a release before it filled with the history of two
 * sites (the same logins at both, rights given, taken back, and given again) answers, once
 * migrated, with the same rows and the same `since` from either form, at every run and between
 * them; and a NULL site still gives no rows (review FA).
 */

/** Every row of both forms at `at`, as text, in one order: the one-argument form's, then each site's, then a NULL site's. */
async function rightsAt(t: TestDatabase, at: string): Promise<Record<string, string[]>> {
  const line = `site || ' ' || login || ' ' || admin_right || ' ' || coalesce(group_variable_name, '-') || ' ' || since::text`;
  const all = await t.query<{ l: string }>(`SELECT ${line} AS l FROM cpq.admin_rights_as_of($1::timestamptz) ORDER BY 1`, [at]);
  const out: Record<string, string[]> = { all: all.map((r) => r.l) };
  // And a NULL site: no rows, before as after (an unset site must not read as every site).
  for (const site of ['north', 'south', null]) {
    const rows = await t.query<{ l: string }>(`SELECT ${line} AS l FROM cpq.admin_rights_as_of($1::timestamptz, $2::text) ORDER BY 1`, [at, site]);
    out[site ?? 'null site'] = rows.map((r) => r.l);
  }
  return out;
}

describe('cpq.admin_rights_as_of, upgraded to migration 0030', () => {
  it("gives the same rows and since of a two-site history as 0029's functions did, from either form", async ({ createDatabase, writeSitesFile }) => {
    const t = await createDatabase();
    const sims = [0, 1].map(() => new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }));
    for (const sim of sims) cleanups.push(() => sim.stop());
    const urls = await Promise.all(sims.map((s) => s.start()));
    const config = loadConfig({
      CPQ_SITES_FILE: writeSitesFile([
        { name: 'north', baseUrl: urls[0] },
        { name: 'south', baseUrl: urls[1] },
      ]),
      DATABASE_URL: t.url,
    });
    const times: string[] = [];
    const runBoth = async () => {
      for (const site of ['north', 'south']) {
        const run = await runSync({ pool: t.pool, db: t.db, config, log: pino({ level: 'silent' }) }, { site, full: true });
        expect(run.status).toBe('succeeded');
        const [e] = await t.query<{ e: string; before: string }>(
          `SELECT effective_at::text AS e, (effective_at - interval '1 microsecond')::text AS before FROM cpq.sync_runs WHERE id = $1`,
          [run.runId],
        );
        times.push(e!.e, e!.before);
      }
    };
    const group = { variableName: 'siteAdmins', label: 'Site admins', type: 'Administrator' };
    const [north, south] = sims as [CpqSimulator, CpqSimulator];
    const [a, b, c] = north.users('_host').map((u) => String(u.login)) as [string, string, string];
    const [d, e] = south.users('_host').map((u) => String(u.login)) as [string, string];

    // Each site's rights start and stop at different runs, so that a stretch read from the other
    // site's versions or memberships would move a since.
    north.updateUser('_host', a, { isUserAdminPermEnabled: true });
    north.addGroup('_host', b, group);
    south.addGroup('_host', d, group);
    south.updateUser('_host', e, { isProxyPermEnabled: true });
    await runBoth();
    north.updateUser('_host', a, { lastName: 'Renamed' });
    south.addGroup('_host', d, { ...group, type: 'User' });
    south.updateUser('_host', e, { isProxyPermEnabled: false });
    await runBoth();
    north.removeGroup('_host', b, group.variableName);
    north.updateUser('_host', c, { isAccessAdminPermEnabled: true });
    south.addGroup('_host', d, group);
    south.updateUser('_host', e, { isProxyPermEnabled: true });
    await runBoth();
    north.addGroup('_host', b, group);
    const record = south.user('_host', e)!;
    south.deleteUser('_host', e);
    await runBoth();
    south.addUser('_host', { ...record, dateModified: new Date().toISOString() }, { exact: true });
    await runBoth();
    times.push(new Date().toISOString());

    // The functions as 0029 left them (0023's body, 0029's setting, 0022's two-argument form): what
    // a database of the release before holds. Only these functions: the tables of later migrations
    // do not change their answers, and taking those migrations back would have to follow each.
    await t.query(readFileSync(join(MIGRATIONS_DIR, '0023_admin_rights_new_person_across_nulls.sql'), 'utf8'));
    await t.query(readFileSync(join(MIGRATIONS_DIR, '0029_admin_rights_without_nested_loops.sql'), 'utf8'));
    await t.query(`CREATE OR REPLACE FUNCTION cpq.admin_rights_as_of(ts timestamptz, p_site text)
      RETURNS TABLE (site text, company_login text, login text, user_id bigint, admin_right text, group_variable_name text, since timestamptz)
      LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
      AS $$ SELECT * FROM cpq.admin_rights_as_of(ts) a WHERE a.site = p_site $$`);
    const before = [];
    for (const at of times) before.push(await rightsAt(t, at));
    expect(before.at(-1)!.north!.length).toBeGreaterThan(0);
    expect(before.at(-1)!.south!.length).toBeGreaterThan(0);
    expect(before.at(-1)!['null site']).toEqual([]);

    // What migrating that database applies (0030 holds only CREATE OR REPLACE).
    await t.query(readFileSync(join(MIGRATIONS_DIR, '0030_admin_rights_of_one_site.sql'), 'utf8'));
    const after = [];
    for (const at of times) after.push(await rightsAt(t, at));
    expect(after).toEqual(before);
  });
});
