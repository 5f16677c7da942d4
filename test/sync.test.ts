import type { CpqSimulator } from '../src/simulator/server.js';
import { inspect } from 'node:util';
import { isLosslessNumber } from 'lossless-json';
import { describe, expect } from 'vitest';
import { type Harness, it, snapshotTables } from './helpers/harness.js';
import { withCpq } from '../src/config.js';
import { runSync } from '../src/sync/run.js';
import { verifySite } from '../src/sync/verify.js';
import { editPage, scriptRequests } from './helpers/scripted-pages.js';
import { parseExactJson, stringifyExactJson } from '../src/exact-json.js';
import { claimScheduledTick } from '../src/db/sql/claim-scheduled-tick.js';

type Raw = Record<string, unknown>;
/** A numeric field as its digits: partyId is a LosslessNumber, the other ids plain numbers. */
function digits(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (isLosslessNumber(v)) return v.toString();
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string') return String(v);
  throw new Error(`not a number: ${inspect(v)}`);
}
const groupNames = (u: Raw) => ((u.groups as { items?: { variableName: string }[] } | undefined)?.items ?? []).map((g) => g.variableName).sort();

async function usersIn(h: Harness, company: string) {
  return h.t.query<{ login: string }>(`SELECT login FROM cpq.users WHERE company_login = $1 ORDER BY login COLLATE "C"`, [company]);
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Makes the simulator's integration-user feed answer exactly `items`, in one page (any earlier fault cleared). */
function serveIntegrationUsers(sim: CpqSimulator, items: object[]): void {
  sim.clearFaults();
  sim.addFault({
    match: { path: '/cpq/rest/v19/integrationUsers' },
    times: Infinity,
    status: 200,
    body: JSON.stringify({ items, hasMore: false, totalResults: items.length }),
  });
}
describe('full sync', () => {
  it("a site takes one number of cpq.sites' lock_id identity, once: later runs and tick claims take none (2^31 of them made every run fail)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const lastValue = async () => (await h.t.query<{ n: string }>(`SELECT last_value::text AS n FROM cpq.sites_lock_id_seq`))[0]!.n;
    await h.sync();
    const taken = await lastValue();
    const [site] = await h.t.query<{ lock_id: number }>(`SELECT lock_id FROM cpq.sites WHERE name = 'default'`);
    expect(String(site!.lock_id)).toBe(taken);
    await h.sync();
    for (let i = 0; i < 3; i++) await claimScheduledTick(h.t.pool, 'default', new Date(Date.UTC(2026, 0, 1, 0, i)), 'worker-a');
    expect(await lastValue()).toBe(taken);
    // A new site still gets the next one.
    await claimScheduledTick(h.t.pool, 'another', new Date(Date.UTC(2026, 0, 1)), 'worker-a');
    expect(BigInt(await lastValue())).toBe(BigInt(taken) + 1n);
  });

  it('a load of 10,000 users leaves the statistics the as-of functions plan by: a snapshot right after one planned a loop over every user’s groups (review DB)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10_000, integrationUsers: 0 });
    expect((await h.sync()).inserted).toBeGreaterThanOrEqual(10_000);
    const stats = await h.t.query<{ column: string }>(
      `SELECT tablename || '.' || attname AS column FROM pg_stats
        WHERE schemaname = 'cpq' AND (tablename, attname) IN (('users', 'valid_from'), ('users', 'deleted_at'), ('sync_runs', 'site'), ('user_groups', 'user_id'))
        ORDER BY 1`,
    );
    expect(stats.map((s) => s.column)).toEqual(['sync_runs.site', 'user_groups.user_id', 'users.deleted_at', 'users.valid_from']);
  });

  it('reads every page of a company with keyset paging on login', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 53, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    const result = await h.sync();
    expect(result.status).toBe('succeeded');
    expect(result.mode).toBe('full');
    expect(result.pages).toBe(6);
    expect(result.inserted).toBe(53);
    const expected = h.sim
      .users('_host')
      .map((u) => String(u.login))
      .sort(byCodeUnit);
    expect((await usersIn(h, '_host')).map((r) => r.login)).toEqual(expected);

    const pages = h.sim.requests.filter((r) => r.path.endsWith('/users'));
    expect(pages).toHaveLength(6);
    for (const page of pages) {
      expect(page.query).toMatchObject({ orderby: 'login:asc', offset: '0', limit: '10', expand: 'groups,accessPermissions' });
    }
    expect(pages[0]!.query.totalResults).toBe('true');
    expect(pages[0]!.query.q).toBeUndefined();
    expect(JSON.parse(pages[1]!.query.q!)).toEqual({ login: { $gt: expected[9] } });
  });

  it('a page of users that does not say hasMore is followed when it is full: taken for the last, it ended a read after one page, the users after it never loaded', async ({
    startHarness,
  }) => {
    for (const users of [25, 20]) {
      const h = await startHarness({ partnerCompanies: 1, usersPerCompany: users, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10', CPQ_COMPANIES: '*' });
      // No hasMore, on the company list (read whole) and the user pages alike.
      scriptRequests(h.sim, async (req) => {
        if (req.path.endsWith('/users') || req.path.endsWith('/companies'))
          req.reply(editPage(await req.real(), (page) => delete (page as { hasMore?: boolean }).hasMore));
      });
      const run = await h.sync();
      expect(run).toMatchObject({ inserted: 2 * users, warnings: [] });
      expect(await h.t.query(`SELECT company_login, count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 1`)).toEqual([
        { company_login: '_host', n: users },
        { company_login: 'partner1', n: users },
      ]);
    }
  });

  it('a full JSON read without totalResults deletes nothing: where sort and $gt disagree on login order (a collation), its pages skip users unseen', async ({
    startHarness,
  }) => {
    // Out of order within a page (alice, Bob), or in order throughout (Mallory after kate, filtered out): either way skipped unseen.
    for (const logins of [
      ['alice', 'Bob', 'carol', 'Dave', 'erin', 'Frank'],
      ['adam', 'bob', 'carol', 'dave', 'eve', 'frank', 'kate', 'Mallory', 'paul'],
    ]) {
      const h = await startHarness(
        { partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 },
        { CPQ_PAGE_SIZE: logins.length === 6 ? '2' : '5', SYNC_MAX_DELETE_FRACTION: '1' },
      );
      for (const login of logins) h.sim.addUser('_host', { login });
      await h.sync();
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: logins.length }]);
      // Sorted without case, filtered by code unit, no totalResults: some capitalised users are never returned.
      scriptRequests(h.sim, async (req) => {
        if (!req.path.endsWith('/users')) return;
        const all = (
          parseExactJson((await req.realAnswer({ ...req.query, q: '', limit: '1000', totalResults: 'false' })).body) as { items: { login: string }[] }
        ).items;
        const after = req.query.q ? (JSON.parse(req.query.q) as { login: { $gt: string } }).login.$gt : undefined;
        const rest = all.filter((u) => after === undefined || u.login > after).sort((a, b) => a.login.toLowerCase().localeCompare(b.login.toLowerCase()));
        const limit = Number(req.query.limit);
        req.reply(stringifyExactJson({ items: rest.slice(0, limit), hasMore: rest.length > limit }));
      });
      const run = await h.sync({ full: true });
      expect(run.deleted).toBe(0);
      expect(run.warnings).toContain(
        'deletion skipped for companies/_host: CPQ sent no totalResults, so the read cannot show that its pages returned every user; nothing was marked deleted',
      );
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL`)).toEqual([{ n: logins.length }]);
    }
  });

  it('syncs every company of the site with CPQ_COMPANIES=*', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 2, usersPerCompany: 15, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    const result = await h.sync();
    expect(result.inserted).toBe(45);
    const rows = await h.t.query<{ company_login: string; n: string }>(`SELECT company_login, count(*) AS n FROM cpq.users GROUP BY 1 ORDER BY 1`);
    expect(rows).toEqual([
      { company_login: '_host', n: '15' },
      { company_login: 'partner1', n: '15' },
      { company_login: 'partner2', n: '15' },
    ]);
    expect(result.streams.map((s) => s.stream).sort()).toEqual(['companies/_host', 'companies/partner1', 'companies/partner2']);
  });

  it('with CPQ_COMPANIES=*, a partner organization removed from CPQ (gone from the list, its users 404) has its users marked deleted, within the deletion guard', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 2, usersPerCompany: 4, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    await h.sync();
    const [gone, stays] = h.sim.companyLogins().filter((c) => c !== '_host') as [string, string];
    const removed = [gone];
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/companies'))
        req.reply(editPage(await req.real(), (p) => (p.items = p.items.filter((c) => !removed.includes(String(c.loginName))))));
      else if (removed.some((c) => req.path.includes(`/companies/${c}/`))) req.reply(JSON.stringify({ title: 'Not Found', status: 404 }), { status: 404 });
    });
    const present = async () => h.t.query<Raw>(`SELECT company_login, count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 1`);
    // All 4 of its users would go: more than SYNC_MASS_DELETE_MIN (1).
    const refused = await h.sync({ full: true });
    expect(refused.warnings).toEqual([
      `company "${gone}" is gone from CPQ (not in the company list; its users answer 404): its 4 users are kept as present, more than SYNC_MASS_DELETE_MIN=1 and SYNC_MAX_DELETE_FRACTION=0.2 allow; nothing was marked deleted (if the company is gone for good: cpq-sync run --full --allow-mass-delete)`,
    ]);
    expect(refused.deleted).toBe(0);
    // verify names it: CPQ holds none of its users now.
    const checks = await verifySite(h.config.sites[0]!, h.t.pool, h.log);
    expect(checks.filter((c) => !c.ok).map((c) => ({ company: c.company, cpq: c.cpq, database: c.database }))).toEqual([
      { company: gone, cpq: 0, database: 4 },
    ]);
    // An incremental run does not look.
    expect((await h.sync()).warnings).toEqual([]);
    const allowed = await h.sync({ full: true, allowMassDelete: true });
    expect(allowed.warnings).toEqual([`company "${gone}" is gone from CPQ (not in the company list; its users answer 404): its 4 users are marked deleted`]);
    expect(allowed.deleted).toBe(4);
    expect(
      await h.t.query(`SELECT count(*)::int AS n FROM cpq.user_changes WHERE run_id = $1 AND company_login = $2 AND change = 'delete'`, [allowed.runId, gone]),
    ).toEqual([{ n: 4 }]);
    expect(await present()).toEqual([
      { company_login: '_host', n: 4 },
      { company_login: stays, n: 4 },
    ]);
    // Left out of the list but still answering: kept, and said.
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/companies'))
        req.reply(editPage(await req.real(), (p) => (p.items = p.items.filter((c) => c.loginName !== stays && c.loginName !== gone))));
    });
    const kept = await h.sync({ full: true });
    expect(kept.warnings).toEqual([
      `company "${stays}" is not in the company list, but CPQ still answers for its users: its 4 users are kept as they are, not read`,
    ]);
    expect(await present()).toHaveLength(2);
  });

  it('with CPQ_COMPANIES=*, the integration users of a company the list lacks but CPQ still answers for are deleted once a complete integration read leaves them out', async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    const integrationFeed = (items: object[]) =>
      h.sim.addFault({
        match: { path: '/cpq/rest/v19/integrationUsers' },
        times: Infinity,
        status: 200,
        body: JSON.stringify({ items, hasMore: false, totalResults: items.length }),
      });
    // Company ext is no company of the list, yet answers for its users (empty).
    h.sim.addFault({
      match: { path: '/cpq/rest/v16/companies/ext/users' },
      times: Infinity,
      status: 200,
      body: '{"items":[],"hasMore":false,"totalResults":0}',
    });
    integrationFeed([{ login: 'svcA', partyNumber: '901', company: { loginName: 'ext' }, groups: { items: [] } }]);
    await h.sync();
    const svcA = async () => (await h.t.query<Raw>(`SELECT company_login, deleted_at IS NOT NULL AS deleted FROM cpq.users WHERE login = 'svcA'`))[0];
    expect(await svcA()).toEqual({ company_login: 'ext', deleted: false });
    h.sim.clearFaults();
    h.sim.addFault({
      match: { path: '/cpq/rest/v16/companies/ext/users' },
      times: Infinity,
      status: 200,
      body: '{"items":[],"hasMore":false,"totalResults":0}',
    });
    integrationFeed([]);
    const run = await h.sync({ full: true });
    expect(run.deleted).toBe(1);
    expect(run.warnings).toEqual([
      'company "ext" is not in the company list, but CPQ still answers for its users: its users are not read; its integration users follow the integration feed',
    ]);
    expect(await svcA()).toEqual({ company_login: 'ext', deleted: true });
  });

  it("with CPQ_COMPANIES=*, integration users of a company the list lacks are not taken for a removed company's when the integration feed was not read in full", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 3 }, { CPQ_COMPANIES: '*' });
    let integration404 = false;
    scriptRequests(h.sim, async (req) => {
      if (!req.path.includes('/integrationUsers')) return;
      if (integration404) req.reply(JSON.stringify({ title: 'Not Found', status: 404 }), { status: 404 });
      else if (req.path.endsWith('/integrationUsers')) req.reply(editPage(await req.real(), (p) => ((p.items[0]!.company as Raw).loginName = 'vendorX')));
    });
    await h.sync();
    const vendorX = async () => h.t.query(`SELECT count(*) FILTER (WHERE deleted_at IS NULL)::int AS present FROM cpq.users WHERE company_login = 'vendorX'`);
    expect(await vendorX()).toEqual([{ present: 1 }]);
    // The endpoint answers 404 this once (CPQ_INTEGRATION_USERS=auto: a warning); vendorX's users collection always does.
    integration404 = true;
    const run = await h.sync({ full: true });
    expect(run.deleted).toBe(0);
    expect(run.warnings.filter((w) => w.includes('vendorX'))).toEqual([
      'company "vendorX" is not in the company list; it holds integration users, and the integration feed was not read in full this run: its users are kept as they are, not read',
    ]);
    expect(await vendorX()).toEqual([{ present: 1 }]);
    // verify leaves a company of integration users alone: CPQ need not list it.
    integration404 = false;
    await h.sync();
    expect((await verifySite(h.config.sites[0]!, h.t.pool, h.log)).filter((c) => !c.ok)).toEqual([]);
  });

  it('a company list that repeats itself with hasMore on every page, or whose names grow past CPQ_MAX_PAGE_BYTES, fails the run instead of filling memory', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 2, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '*', CPQ_MAX_PAGE_BYTES: '65536' });
    let listRequests = 0;
    let names: (page: number) => string[] = () => [];
    scriptRequests(h.sim, async (req) => {
      if (!req.path.endsWith('/companies')) return;
      const page = listRequests++;
      req.reply(
        editPage(await req.real(), (p) => {
          p.items = names(page).map((loginName) => ({ loginName, name: loginName }));
          p.hasMore = true;
        }),
      );
    });
    names = () => ['_host_twin', 'partner1'];
    expect((await h.syncError()).message).toMatch(/the company list names "_host_twin" twice: it moved while it was read, so companies may be missing/);
    expect(listRequests).toBe(2);
    // New names on every page, 10,000 characters each.
    listRequests = 0;
    names = (page) => [`p${page}-${'x'.repeat(10_000)}`];
    expect((await h.syncError()).message).toMatch(
      /the company list's 7 companies take more than CPQ_MAX_PAGE_BYTES \(65536\) to hold \(their login names' characters and 32 a company\); refused/,
    );
    expect(listRequests).toBe(7);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: 0 }]);
  });

  it('stores each user with its typed columns, groups and access permissions exactly as CPQ holds them', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 40, integrationUsers: 0 }, { CPQ_COMPANIES: '_host,partner1' });
    await h.sync();
    for (const company of ['_host', 'partner1']) {
      for (const u of h.sim.users(company)) {
        const [row] = await h.t.query<Raw>(`SELECT * FROM cpq.users WHERE company_login = $1 AND login = $2`, [company, u.login]);
        expect(row, `${company}/${u.login as string}`).toBeDefined();
        expect(row).toMatchObject({
          first_name: u.firstName ?? null,
          last_name: u.lastName ?? null,
          email: u.email ?? null,
          is_user_admin_perm_enabled: u.isUserAdminPermEnabled ?? null,
          status: (u.status as Raw | undefined)?.value ?? null,
          status_display: (u.status as Raw | undefined)?.displayValue ?? null,
          type: (u.type as Raw | undefined)?.value ?? null,
          time_zone: (u.timeZone as Raw | undefined)?.value ?? null,
          bill_city: u.billCity ?? null,
          ship_zip: u.shipZip ?? null,
          is_integration_user: false,
          deleted_at: null,
        });
        expect((row!.date_modified as Date).toISOString()).toBe(u.dateModified);
        const groups = await h.t.query<{ g: string }>(`SELECT group_variable_name AS g FROM cpq.user_groups WHERE user_id = $1 ORDER BY 1`, [row!.id]);
        expect(groups.map((g) => g.g).sort()).toEqual(groupNames(u));
        const perms = await h.t.query<Raw>(`SELECT type, variable_name, name, has_access FROM cpq.user_access_permissions WHERE user_id = $1`, [row!.id]);
        const expected = ((u.accessPermissions as { items?: Raw[] } | undefined)?.items ?? []).map((p) => ({
          type: p.type,
          variable_name: p.variableName,
          name: p.name ?? null,
          has_access: p.hasAccess ?? null,
        }));
        const key = (p: Raw) => `${p.type as string}/${p.variable_name as string}`;
        expect(perms.sort((a, b) => byCodeUnit(key(a), key(b)))).toEqual(expected.sort((a, b) => byCodeUnit(key(a), key(b))));
      }
    }
    const groups = await h.t.query<Raw>(`SELECT variable_name, label, type FROM cpq.groups`);
    const heldGroups = new Set(['_host', 'partner1'].flatMap((company) => h.sim.users(company).flatMap(groupNames)));
    expect(heldGroups.size).toBe(20); // the simulator's default pool, every group held by someone
    expect(groups.length).toBe(heldGroups.size);
  });

  it('absorbs field-name drift: lastname, isSuperUserPermEnabled and other case variants', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 200, integrationUsers: 0 });
    await h.sync();
    const body = await (await fetch(`${h.sim.baseUrl}/rest/v16/companies/_host/users?limit=1000`)).text();
    // The simulator really sends the drifted spellings...
    expect(body).toContain('"lastname"');
    expect(body).toContain('"isSuperUserPermEnabled"');
    // ...and every user still lands with the canonical columns filled.
    for (const u of h.sim.users('_host')) {
      const [row] = await h.t.query<Raw>(`SELECT first_name, last_name, email, bill_city, is_user_admin_perm_enabled FROM cpq.users WHERE login = $1`, [
        u.login,
      ]);
      expect(row).toEqual({
        first_name: u.firstName ?? null,
        last_name: u.lastName ?? null,
        email: u.email ?? null,
        bill_city: u.billCity ?? null,
        is_user_admin_perm_enabled: u.isUserAdminPermEnabled ?? null,
      });
    }
  });

  it('keeps unknown fields in raw', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 200, integrationUsers: 0 });
    await h.sync();
    const rows = await h.t.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.users WHERE raw ? 'customAttr1'`);
    expect(Number(rows[0]!.n)).toBe(9); // the users the simulator (seed 1) sends customAttr1 for
  });

  it("an insert's change row names each custom field the record holds, first loads and merged inserts alike", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [first] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', first!, { costCenter: 'CC-1', approvalLimit: 250000.5, nothing: null });
    await h.sync(); // a first load: straight into the tables
    const later = h.sim.addUser('_host', { costCenter: 'CC-2' });
    await h.sync(); // merged from staging
    const diffs = await h.t.query<{ login: string; diff: Raw }>(
      `SELECT login, diff FROM cpq.user_changes WHERE change = 'insert' AND login = ANY($1) ORDER BY login`,
      [[first, later]],
    );
    const custom = (diff: Raw) => Object.fromEntries(Object.entries(diff).filter(([k]) => k.startsWith('raw.')));
    expect(Object.fromEntries(diffs.map((d) => [d.login, custom(d.diff)]))).toEqual({
      [first!]: { 'raw.costCenter': { old: null, new: 'CC-1' }, 'raw.approvalLimit': { old: null, new: 250000.5 } },
      [later]: { 'raw.costCenter': { old: null, new: 'CC-2' } },
    });
  });

  it('does not miss a user that exists for the whole run while others are added, edited and deleted between pages', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 60, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    const initial = h.sim
      .users('_host')
      .map((u) => String(u.login))
      .sort(byCodeUnit);
    const deleted = new Set<string>();
    let page = 0;
    h.sim.onRequest = (req) => {
      if (!req.path.endsWith('/users') || page++ === 0) return;
      // Between every two page requests: delete a user already read, edit one, add two.
      const victim = initial[page * 3];
      if (victim && !deleted.has(victim)) {
        h.sim.deleteUser('_host', victim);
        deleted.add(victim);
      }
      h.sim.updateUser('_host', initial[page * 5 + 1]!, { lastName: `Edited${page}` });
      h.sim.addUser('_host', { firstName: 'Early', login: `0000-new-${page}` });
      h.sim.addUser('_host', { firstName: 'Late', login: `zzzz-new-${page}` });
    };
    await h.sync();
    const stored = new Set((await usersIn(h, '_host')).map((r) => r.login));
    const alwaysThere = initial.filter((l) => !deleted.has(l));
    expect(deleted.size).toBe(6); // one between each two of the 7 page requests
    for (const login of alwaysThere) expect(stored.has(login), login).toBe(true);
  });

  it('keeps int64 partyId and id exact in their columns and in raw', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 4 });
    await h.sync();
    const integration = h.sim.integrationUsers();
    expect(integration.length).toBe(4);
    for (const u of integration) {
      const [row] = await h.t.query<Raw>(
        `SELECT party_id::text AS party_id, cpq_id::text AS cpq_id, raw->>'partyId' AS raw_party_id, raw::text AS raw_text
         FROM cpq.users WHERE login = $1`,
        [u.login],
      );
      expect(row!.party_id).toBe(digits(u.partyId));
      expect(row!.raw_party_id).toBe(digits(u.partyId));
      expect(row!.raw_text).toContain(`"partyId": ${digits(u.partyId)}`);
      if (u.id !== undefined) expect(row!.cpq_id).toBe(digits(u.id));
    }
    const big = integration.filter((u) => BigInt(String(u.partyId)) > 2n ** 53n);
    expect(big.length).toBe(4); // every integration user's partyId is past 2^53
  });
});

describe('integration users', () => {
  it('lands integration users in cpq.users, one row per user seen in both feeds, with groups and OAuth client', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 3 });
    const result = await h.sync();
    expect(result.streams.map((s) => s.stream).sort()).toEqual(['companies/_host', 'integrationUsers']);
    const integration = h.sim.integrationUsers();
    const rows = await h.t.query<Raw>(
      `SELECT login, company_login, is_integration_user, oauth_client_id, party_number, company_name
       FROM cpq.users WHERE is_integration_user ORDER BY login`,
    );
    expect(rows).toHaveLength(3);
    for (const u of integration) {
      const row = rows.find((r) => r.login === u.login)!;
      expect(row).toMatchObject({ company_login: '_host', oauth_client_id: u.oauthClientId, party_number: u.partyNumber });
      const groups = await h.t.query<{ g: string }>(
        `SELECT group_variable_name AS g FROM cpq.user_groups JOIN cpq.users u ON u.id = user_id WHERE u.login = $1`,
        [u.login],
      );
      expect(groups.map((g) => g.g).sort()).toEqual(groupNames(u));
    }
    // They are host users too: no duplicate row.
    const total = await h.t.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.users`);
    expect(Number(total[0]!.n)).toBe(h.sim.users('_host').length);
  });

  it('reads groups from the detail endpoint when the list does not carry them', async ({ startHarness }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 3, integrationListIncludesGroups: false },
      { CPQ_COMPANIES: 'partner9' },
    );
    h.sim.addFault({ match: { path: '/cpq/rest/v16/companies/partner9/users' }, times: Infinity, status: 200, body: '{"items":[],"hasMore":false,"count":0}' });
    await h.sync();
    const details = h.sim.requests.filter((r) => /\/integrationUsers\/[^/]+$/.test(r.path));
    expect(details).toHaveLength(3);
    for (const u of h.sim.integrationUsers()) {
      const groups = await h.t.query<{ g: string }>(
        `SELECT group_variable_name AS g FROM cpq.user_groups JOIN cpq.users u ON u.id = user_id WHERE u.login = $1`,
        [u.login],
      );
      expect(groups.map((g) => g.g).sort()).toEqual(groupNames(u));
    }
  });

  it('merges an integration user the company feeds did not return over its stored row, int64 exact', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 2 });
    await h.sync();
    const user = h.sim.integrationUsers()[0]!;
    // Next run: only the integration feed returns the user (its company read comes back empty).
    h.sim.updateUser('_host', String(user.login), { oauthClientId: 'rotated-client' });
    h.sim.addFault({ match: { path: '/cpq/rest/v16/companies/_host/users' }, times: 1, status: 200, body: '{"items":[],"hasMore":false}' });
    await h.sync();
    const [row] = await h.t.query<Raw>(
      `SELECT party_id::text AS party_id, raw->>'partyId' AS raw_party_id, oauth_client_id, deleted_at,
              (SELECT count(*)::int FROM cpq.user_access_permissions p WHERE p.user_id = u.id) AS permissions
       FROM cpq.users u WHERE login = $1`,
      [user.login],
    );
    expect(row).toMatchObject({ party_id: digits(user.partyId), raw_party_id: digits(user.partyId), oauth_client_id: 'rotated-client', deleted_at: null });
    expect(row!.permissions).toBe(((user.accessPermissions as { items?: unknown[] }).items ?? []).length);
  });

  it("a deleted user's login that comes back as a new integration user, from the integration feed only, takes nothing of the deleted user's record", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 2 });
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.setAccessPermission('_host', login, { type: 'admin', variableName: 'all', name: 'All', hasAccess: true });
    await h.sync();
    const [before] = await h.t.query<{ permissions: number }>(
      `SELECT (SELECT count(*)::int FROM cpq.user_access_permissions p WHERE p.user_id = u.id) AS permissions FROM cpq.users u WHERE login = $1`,
      [login],
    );
    expect(before!.permissions).toBeGreaterThan(0);
    h.sim.deleteUser('_host', login);
    expect((await h.sync({ full: true })).deleted).toBe(1);
    // A new integration user of that login: the integration feed has it, the host's users do not.
    const reborn = {
      login,
      partyNumber: '900',
      partyId: 9,
      oauthClientId: 'new-client',
      company: { loginName: '_host' },
      dateModified: '2026-06-01T00:00:00.000Z',
    };
    h.sim.addFault({
      match: { path: '/cpq/rest/v19/integrationUsers' },
      times: Infinity,
      status: 200,
      body: JSON.stringify({ items: [{ ...reborn, groups: { items: [] } }], hasMore: false }),
    });
    await h.sync({ full: true });
    const [row] = await h.t.query<Raw>(
      `SELECT deleted_at, is_integration_user, oauth_client_id, last_name, email,
              (SELECT count(*)::int FROM cpq.user_access_permissions p WHERE p.user_id = u.id) AS permissions
       FROM cpq.users u WHERE login = $1`,
      [login],
    );
    expect(row).toEqual({ deleted_at: null, is_integration_user: true, oauth_client_id: 'new-client', last_name: null, email: null, permissions: 0 });
    const [change] = await h.t.query<{ change: string; diff: Raw }>(`SELECT change, diff FROM cpq.user_changes WHERE login = $1 ORDER BY id DESC LIMIT 1`, [
      login,
    ]);
    expect(change!.change).toBe('restore');
    expect(change!.diff).not.toHaveProperty('accessPermissions');
  });

  it('an integration-only login holding U+0001 is stored as sent, without the record of the user whose login precedes it', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const other = String(h.sim.users('_host')[0]!.login);
    h.sim.setAccessPermission('_host', other, { type: 'admin', variableName: 'all', name: 'All', hasAccess: true });
    h.sim.updateUser('_host', other, { lastName: 'Other' });
    await h.sync();
    const login = `${other}\u0001svc`;
    h.sim.addFault({
      match: { path: '/cpq/rest/v19/integrationUsers' },
      times: Infinity,
      status: 200,
      body: JSON.stringify({ items: [{ login, partyNumber: '900', company: { loginName: '_host' }, groups: { items: [] } }], hasMore: false }),
    });
    await h.sync();
    const [row] = await h.t.query<Raw>(
      `SELECT login, last_name, (SELECT count(*)::int FROM cpq.user_access_permissions p WHERE p.user_id = u.id) AS permissions
       FROM cpq.users u WHERE login = $1`,
      [login],
    );
    expect(row).toEqual({ login, last_name: null, permissions: 0 });
  });

  it('a user only the integration feed returns is kept by full company reads while that feed is short or answers 404, with a warning; deleted once a complete read leaves it out', async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const user = (login: string, partyNumber: string) => ({ login, partyNumber, company: { loginName: '_host' }, groups: { items: [] } });
    const integrationFeed = (status: number, body: object) => {
      h.sim.clearFaults();
      h.sim.addFault({ match: { path: '/cpq/rest/v19/integrationUsers' }, times: Infinity, status, body: JSON.stringify(body) });
    };
    const present = async () =>
      (await h.t.query<{ login: string }>(`SELECT login FROM cpq.users WHERE login LIKE 'svc%' AND deleted_at IS NULL ORDER BY login`)).map((r) => r.login);
    const kept = (n: number) =>
      `${n} stored integration users are missing from the company reads and kept: the integration feed was not read in full this run (short, or it answered 404); ` +
      'they are marked deleted by a run that reads it in full (a site that no longer has the integration endpoint: set CPQ_INTEGRATION_USERS=off)';
    integrationFeed(200, { items: [user('svc1', '901'), user('svc2', '902')], hasMore: false, totalResults: 2 });
    await h.sync();
    expect(await present()).toEqual(['svc1', 'svc2']);
    integrationFeed(200, { items: [], hasMore: false, totalResults: 2 }); // short
    const short = await h.sync({ full: true });
    expect(short).toMatchObject({ deleted: 0 });
    expect(short.warnings).toContain('integrationUsers: read 0 of 2 users that CPQ reported (totalResults); the read was short');
    expect(short.warnings).toContain(kept(2));
    integrationFeed(404, { title: 'Not Found' }); // absent this once (CPQ_INTEGRATION_USERS=auto)
    const absent = await h.sync({ full: true });
    expect(absent).toMatchObject({ deleted: 0 });
    expect(absent.warnings).toContain(kept(2));
    expect(await present()).toEqual(['svc1', 'svc2']);
    integrationFeed(200, { items: [user('svc2', '902')], hasMore: false, totalResults: 1 });
    expect(await h.sync({ full: true })).toMatchObject({ deleted: 1 });
    expect(await present()).toEqual(['svc2']);
    // One user kept is warned of too (review EK: only two were, and a warning from 2 up passed).
    integrationFeed(200, { items: [], hasMore: false, totalResults: 1 }); // short
    const one = await h.sync({ full: true });
    expect(one).toMatchObject({ deleted: 0 });
    expect(one.warnings).toContain(
      '1 stored integration user is missing from the company reads and kept: the integration feed was not read in full this run (short, or it answered 404); ' +
        'they are marked deleted by a run that reads it in full (a site that no longer has the integration endpoint: set CPQ_INTEGRATION_USERS=off)',
    );
    expect(await present()).toEqual(['svc2']);
  });

  it('a 404 on a later page of the integration feed fails the run: it is no sign that the site has no such endpoint', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 3 }, { CPQ_PAGE_SIZE: '2' });
    await h.sync();
    const before = await snapshotTables(h.t);
    let integrationPages = 0;
    scriptRequests(h.sim, (req) => {
      if (req.path.endsWith('/integrationUsers') && integrationPages++ === 1) req.reply('{"title":"Not Found"}', { status: 404 });
    });
    expect((await h.syncError({ full: true })).message).toMatch(/integrationUsers\S*: CPQ answered 404/);
    expect(await snapshotTables(h.t)).toEqual(before);
  });

  it('an integration user of a company no company read covers is deleted once a complete integration read no longer returns it', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '_host' });
    const papi = {
      login: 'papi',
      partyNumber: '901',
      company: { loginName: 'partner1' },
      dateModified: '2026-01-01T00:00:00.000Z',
      groups: { items: [{ variableName: 'admins' }] },
    };
    const integrationFeed = (items: object[]) => serveIntegrationUsers(h.sim, items);
    integrationFeed([papi]);
    await h.sync();
    const row = async () =>
      (await h.t.query<Raw>(`SELECT company_login, is_integration_user, deleted_at IS NOT NULL AS deleted FROM cpq.users WHERE login = 'papi'`))[0];
    expect(await row()).toEqual({ company_login: 'partner1', is_integration_user: true, deleted: false });
    integrationFeed([]);
    expect(await h.sync()).toMatchObject({ deleted: 0 }); // an incremental integration read: it says nothing of who is gone
    expect(await row()).toMatchObject({ deleted: false });
    expect(await h.sync({ full: true })).toMatchObject({ deleted: 1 });
    expect(await row()).toMatchObject({ deleted: true });
    const [change] = await h.t.query<{ change: string }>(`SELECT change FROM cpq.user_changes WHERE login = 'papi' ORDER BY id DESC LIMIT 1`);
    expect(change!.change).toBe('delete');
  });

  it('the deletion guard holds for the integration users of a company no company read covers: all of them gone is refused, unless allowed (review EK)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '_host' });
    const integrationFeed = (items: object[]) => serveIntegrationUsers(h.sim, items);
    const papis = [1, 2, 3, 4, 5].map((i) => ({ login: `papi${i}`, partyNumber: `90${i}`, company: { loginName: 'partner1' }, groups: { items: [] } }));
    integrationFeed(papis);
    await h.sync();
    const present = async () =>
      (await h.t.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.users WHERE login LIKE 'papi%' AND deleted_at IS NULL`))[0]!.n;
    expect(await present()).toBe(5);
    integrationFeed([]);
    const refused = await h.sync({ full: true });
    expect(refused).toMatchObject({ deleted: 0 });
    expect(refused.warnings.join('\n')).toMatch(
      /^deletion aborted for the integration users of company "partner1" \(no company read covers it\): 5 of 5 are missing from the integration feed, more than SYNC_MASS_DELETE_MIN=\d+ and SYNC_MAX_DELETE_FRACTION=[\d.]+ allow; nothing was marked deleted/m,
    );
    expect(await present()).toBe(5);
    expect(await h.sync({ full: true, allowMassDelete: true })).toMatchObject({ deleted: 5 });
    expect(await present()).toBe(0);
  });

  it('maps the host company login name that integration users report to _host', async ({ startHarness }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      { CPQ_HOST_COMPANY: 'cpq-mdb' },
    );
    await h.sync();
    const rows = await h.t.query<Raw>(`SELECT company_login, count(*)::int AS n FROM cpq.users GROUP BY 1`);
    expect(rows).toEqual([{ company_login: '_host', n: 4 + 2 }]);
  });

  it("without CPQ_HOST_COMPANY, the host's own login name comes from the company list: one row per integration user, deleted with it", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' });
    const first = await h.sync();
    expect(first.warnings).toEqual([]);
    const byCompany = async () =>
      h.t.query<Raw>(
        `SELECT company_login, count(*)::int AS n, count(*) FILTER (WHERE is_integration_user)::int AS integration FROM cpq.users WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 1`,
      );
    expect(await byCompany()).toEqual([{ company_login: '_host', n: 4 + 2, integration: 2 }]);
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    expect(await byCompany()).toEqual([{ company_login: '_host', n: 4 + 1, integration: 1 }]);
  });

  it('reads the company list\'s host flag defensively: isHost in any case, true or "true"', async ({ startHarness }) => {
    for (const flag of [{ isHost: 'true' }, { IsHost: true }, { ishost: 'TRUE' }]) {
      const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' });
      scriptRequests(h.sim, async (req) => {
        if (!req.path.endsWith('/companies')) return;
        req.reply(
          editPage(await req.real(), (page) =>
            page.items.forEach((c) => {
              if (c.isHost !== true) return;
              delete c.isHost;
              Object.assign(c, flag);
            }),
          ),
        );
      });
      expect((await h.sync()).warnings).toEqual([]);
      expect(
        await h.t.query(`SELECT company_login, count(*)::int AS n, count(*) FILTER (WHERE is_integration_user)::int AS integration FROM cpq.users GROUP BY 1`),
      ).toEqual([{ company_login: '_host', n: 4 + 2, integration: 2 }]);
    }
  });

  it('a company list entry saying isHost twice, differently (two spellings), is refused in either order: the first key sent made a partner the host, its users never read (review CK)', async ({
    startHarness,
  }) => {
    for (const flags of [
      { IsHost: true, isHost: false },
      { isHost: false, IsHost: true },
    ]) {
      const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
      scriptRequests(h.sim, async (req) => {
        if (!req.path.endsWith('/companies')) return;
        req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => c.loginName === 'partner1' && (delete c.isHost, Object.assign(c, flags)))));
      });
      expect(await h.syncError()).toMatchObject({
        kind: 'data',
        message: expect.stringMatching(/: the company list's entry "partner1" says isHost twice, differently; refused$/) as unknown,
      });
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: 0 }]);
    }
  });

  it('a company list that marks no company as the host fails a run whose integration users name a listed company, naming CPQ_HOST_COMPANY: no user stored twice', async ({
    startHarness,
  }) => {
    const unmarked = (h: Harness) =>
      scriptRequests(h.sim, async (req) => {
        if (req.path.endsWith('/companies')) req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => delete c.isHost)));
      });
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' });
    unmarked(h);
    const error = await h.syncError();
    expect(error).toMatchObject({ kind: 'config' });
    expect(error.message).toBe(
      'integration users name the company "cpq-mdb", and the company list marks no company as the host (isHost): set CPQ_HOST_COMPANY to the host\'s own login name',
    );
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: 0 }]);
    // Named, the host is _host, also where CPQ_COMPANIES=* reads the list's names.
    const named = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      { CPQ_HOST_COMPANY: 'cpq-mdb', CPQ_COMPANIES: '*' },
    );
    unmarked(named);
    expect((await named.sync()).warnings).toEqual([]);
    expect(
      await named.t.query(
        `SELECT company_login, count(*)::int AS n, count(*) FILTER (WHERE is_integration_user)::int AS integration FROM cpq.users GROUP BY 1 ORDER BY 1`,
      ),
    ).toEqual([
      { company_login: '_host', n: 4 + 2, integration: 2 },
      { company_login: 'partner1', n: 4, integration: 0 },
    ]);
  });

  it('CPQ_COMPANIES=* with a company list that marks no host fails a run with integration users, even ones naming _host: the host would be read under its own login beside them', async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      { CPQ_COMPANIES: '*' },
    );
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/companies')) req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => delete c.isHost)));
      if (req.path.endsWith('/integrationUsers'))
        req.reply(editPage(await req.real(), (page) => page.items.forEach((u) => (u.company = { loginName: '_host' }))));
    });
    const error = await h.syncError();
    expect(error).toMatchObject({ kind: 'config' });
    expect(error.message).toBe(
      "the company list marks no company as the host (isHost), so with CPQ_COMPANIES=* the host's users would be stored under its own login name and its integration users under _host: set CPQ_HOST_COMPANY to the host's own login name",
    );
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: 0 }]);
  });

  it('CPQ_COMPANIES naming the host by its own login fails a run with integration users, naming _host', async ({ startHarness }) => {
    for (const env of [{ CPQ_HOST_COMPANY: 'cpq-mdb' }, {}] as Record<string, string>[]) {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
        { CPQ_COMPANIES: 'cpq-mdb', ...env },
      );
      const error = await h.syncError();
      expect(error).toMatchObject({ kind: 'config' });
      expect(error.message).toBe(
        'CPQ_COMPANIES names the host company by its own login name "cpq-mdb": name it _host, under which its integration users are filed',
      );
      expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: 0 }]);
    }
  });

  it("an integration user's company that the company list does not have is kept as named, with a warning naming CPQ_HOST_COMPANY", async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' });
    // A list that names the host _host, not by its own name.
    scriptRequests(h.sim, async (req) => {
      if (!req.path.endsWith('/companies')) return;
      req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => c.isHost === true && (c.loginName = '_host'))));
    });
    const run = await h.sync();
    expect(run.warnings).toEqual([
      'integration users name the company "cpq-mdb", which the company list does not have; they are stored under that name: if it is the host\'s own login name, set CPQ_HOST_COMPANY=cpq-mdb',
    ]);
    // Not merged into _host on a guess: one login may be a user of two companies.
    const rows = await h.t.query<Raw>(`SELECT company_login, count(*)::int AS n FROM cpq.users GROUP BY 1 ORDER BY 1`);
    expect(rows).toEqual([
      { company_login: '_host', n: 4 + 2 },
      { company_login: 'cpq-mdb', n: 2 },
    ]);
  });

  it('a full read warns of the users that carry no dateModified: no incremental read can return their edits', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    for (const user of h.sim.users('_host').slice(0, 2)) h.sim.updateUser('_host', String(user.login), { dateModified: undefined });
    const full = await h.sync({ full: true });
    expect(full.warnings).toEqual([
      'companies/_host: 2 of the records read carry no dateModified: incremental runs cannot return their edits, only full runs do (SYNC_FULL_EVERY, run --full)',
    ]);
    // An incremental read never returns them, so it has nothing to say of them.
    expect((await h.sync()).warnings).toEqual([]);
  });

  it('a company list spelling loginName in another case (LoginName) is read, as every field name is', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 2, usersPerCompany: 2, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/companies')) req.reply((await req.real()).replaceAll('"loginName"', '"LoginName"'));
    });
    const run = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(await h.t.query(`SELECT company_login, count(*)::int AS n FROM cpq.users GROUP BY 1 ORDER BY 1`)).toEqual([
      { company_login: '_host', n: 2 },
      { company_login: 'partner1', n: 2 },
      { company_login: 'partner2', n: 2 },
    ]);
  });

  it('a company list page with two "items" keys fails the run, rather than leave the companies of one of them out', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 2, usersPerCompany: 2, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/companies')) req.reply((await req.real()).replace(/^\{/, '{"items":[{"loginName":"_host","isHost":true}],'));
    });
    const error = await h.syncError();
    expect(error).toMatchObject({ kind: 'data' });
    expect(error.message).toMatch(/\/rest\/v16\/companies\?\S+: the collection body has two "items" keys; refused rather than read one of them$/);
  });

  it('an integration user naming its company in another case than the company list (CPQ-MDB, PARTNER1) is filed under the listed company: no second row', async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      { CPQ_COMPANIES: '_host,partner1' },
    );
    const [partnerLogin] = h.sim.users('partner1').map((u) => String(u.login));
    scriptRequests(h.sim, async (req) => {
      if (!req.path.endsWith('/integrationUsers')) return;
      req.reply(
        editPage(await req.real(), (page) => {
          const [host, partner] = page.items as { login: string; company: { loginName: string } }[];
          host!.company.loginName = 'CPQ-MDB';
          // A partner's integration user, as its feed could name it.
          partner!.login = partnerLogin!;
          partner!.company.loginName = 'PARTNER1';
        }),
      );
    });
    const run = await h.sync();
    expect(run.warnings).toEqual([]);
    const rows = await h.t.query<Raw>(
      `SELECT company_login, count(*)::int AS n, count(*) FILTER (WHERE is_integration_user)::int AS integration FROM cpq.users GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { company_login: '_host', n: 4 + 2, integration: 1 },
      { company_login: 'partner1', n: 4, integration: 1 },
    ]);
    // The host named in two cases by CPQ_HOST_COMPANY and the list, and in a third by the feed: one company, the host.
    const both = withCpq(h.config, { hostCompany: 'Cpq-Mdb', companies: ['*'] });
    const again = await runSync({ pool: h.t.pool, db: h.t.db, config: both, log: h.log }, { full: true });
    expect(again.warnings).toEqual([]);
    expect(await h.t.query(`SELECT company_login, login FROM cpq.users WHERE company_login NOT IN ('_host', 'partner1')`)).toEqual([]);
  });

  it("rows an earlier release filed under the host's own login name end as deleted when the host is read in full, with a warning", async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' });
    // As an earlier release did: integration users filed under cpq-mdb beside their _host rows
    // (here made by a company list that names the host _host, so the name is not known as the host's).
    let listNamesHost = true;
    scriptRequests(h.sim, async (req) => {
      if (!listNamesHost || !req.path.endsWith('/companies')) return;
      req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => c.isHost === true && (c.loginName = '_host'))));
    });
    await h.sync();
    const present = async () => h.t.query<Raw>(`SELECT company_login, count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 1`);
    expect(await present()).toEqual([
      { company_login: '_host', n: 4 + 2 },
      { company_login: 'cpq-mdb', n: 2 },
    ]);
    listNamesHost = false;
    // An incremental run reads the host only from its cursor: nothing is ended.
    expect((await h.sync()).warnings).toEqual([]);
    expect(await present()).toHaveLength(2);
    const run = await h.sync({ full: true });
    expect(run.warnings).toEqual([
      '2 users an earlier release filed under the host\'s own login name "cpq-mdb" ended as deleted: the host\'s users are under _host',
    ]);
    expect(run.deleted).toBe(2);
    expect(await present()).toEqual([{ company_login: '_host', n: 4 + 2 }]);
    const logins = h.sim
      .integrationUsers()
      .map((u) => String(u.login))
      .sort();
    expect(await h.t.query(`SELECT login, change FROM cpq.user_changes WHERE run_id = $1 AND company_login = 'cpq-mdb' ORDER BY login`, [run.runId])).toEqual(
      logins.map((login) => ({ login, change: 'delete' })),
    );
    // Their _host rows, read with their integration records at last, are the integration users.
    expect(await h.t.query(`SELECT login FROM cpq.users WHERE company_login = '_host' AND is_integration_user ORDER BY login`)).toEqual(
      logins.map((login) => ({ login })),
    );
    // The next full run finds nothing more to end.
    expect((await h.sync({ full: true })).warnings).toEqual([]);
  });

  it("rows filed under the host's own login name end as deleted by a full read of the host even when the integration read is short", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' });
    let listNamesHost = true;
    let integrationShort = false;
    scriptRequests(h.sim, async (req) => {
      if (listNamesHost && req.path.endsWith('/companies')) {
        req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => c.isHost === true && (c.loginName = '_host'))));
      }
      if (integrationShort && req.path.endsWith('/integrationUsers')) {
        req.reply(editPage(await req.real(), (page) => (page.totalResults = page.items.length + 1)));
      }
    });
    await h.sync();
    listNamesHost = false;
    integrationShort = true;
    const run = await h.sync({ full: true });
    expect(run.warnings).toContain(
      '2 users an earlier release filed under the host\'s own login name "cpq-mdb" ended as deleted: the host\'s users are under _host',
    );
    expect(run.warnings).toContain('integrationUsers: read 2 of 3 users that CPQ reported (totalResults); the read was short');
    expect(await h.t.query(`SELECT company_login, count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 1`)).toEqual([
      { company_login: '_host', n: 4 + 2 },
    ]);
  });

  it("a company list naming a partner organization the host's own (isHost) ends none of its users: rows with no _host twin go through the deletion guard", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 5, integrationUsers: 0 }, { CPQ_COMPANIES: '_host,partner1' });
    await h.sync();
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/companies'))
        req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => c.loginName === 'partner1' && (c.isHost = true))));
    });
    const config = withCpq(h.config, { companies: ['_host'] });
    const run = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full: true });
    expect(run.deleted).toBe(0);
    expect(run.warnings).toEqual([
      expect.stringMatching(
        /^5 users filed under "partner1", which the company list names as the host's own login, are kept: [2-5] of them have no row of the same login under _host, more than SYNC_MASS_DELETE_MIN=1 and SYNC_MAX_DELETE_FRACTION=0\.2 allow/,
      ),
    ]);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users WHERE company_login = 'partner1' AND deleted_at IS NULL`)).toEqual([{ n: 5 }]);
  });

  it('a company list that does not answer fails a run with integration users (CPQ_HOST_COMPANY unset), naming the setting: no row under a guessed company', async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      { CPQ_MAX_RETRIES: '0' },
    );
    h.sim.addFault({ match: { path: '/cpq/rest/v16/companies' }, times: 1000, status: 503, body: 'busy' });
    const error = await h.syncError();
    expect(error.message).toMatch(/503.*integration users need the company list to tell the host's own login name: set CPQ_HOST_COMPANY/);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users`)).toEqual([{ n: 0 }]);
    // A role denied the list alone (403): the setting is the way round it (review Z).
    h.sim.clearFaults();
    h.sim.addFault({ match: { path: '/cpq/rest/v16/companies' }, times: 1000, status: 403 });
    expect((await h.syncError()).message).toMatch(/CPQ refused the credentials \(403\).*set CPQ_HOST_COMPANY/);
    // Not when CPQ refused the credentials or did not answer: the setting would not help (review Y).
    h.sim.clearFaults();
    h.sim.addFault({ match: { path: '/cpq/rest/v16/companies' }, times: 1000, status: 401 });
    expect((await h.syncError()).message).toMatch(
      /^GET \S+: CPQ refused the credentials \(401\); check the auth settings \(the CPQ_\* variables, or the site's keys in CPQ_SITES_FILE\)$/,
    );
    h.sim.clearFaults();
    h.sim.addFault({ match: { path: '/cpq/rest/v16/companies' }, times: 1000, action: 'reset' });
    expect((await h.syncError()).message).not.toContain('CPQ_HOST_COMPANY');
  });

  it('a field only the integration feed sends stays, run after run, when company reads are full and nothing changed (zip export)', async ({ startHarness }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 2, zipExport: {} },
      { CPQ_EXPORT_FORMAT: 'zip' },
    );
    scriptRequests(h.sim, async (req) => {
      if (req.path === '/cpq/rest/v19/integrationUsers') req.reply(editPage(await req.real(), (p) => p.items.forEach((u) => (u.integrationVendor = 'acme'))));
    });
    const first = await h.sync();
    expect(first.inserted).toBe(5);
    for (const run of [await h.sync(), await h.sync({ full: true })]) {
      expect(await h.t.query(`SELECT login, change, diff FROM cpq.user_changes WHERE run_id = $1`, [run.runId])).toEqual([]);
      // The integration feed is read in full beside the zip export's full reads.
      expect(run.streams.find((s) => s.stream === 'integrationUsers')).toMatchObject({ mode: 'full' });
    }
    const vendors = await h.t.query(`SELECT raw->>'integrationVendor' AS vendor FROM cpq.users WHERE is_integration_user`);
    expect(vendors).toEqual([{ vendor: 'acme' }, { vendor: 'acme' }]);
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.user_versions`)).toEqual([{ n: 0 }]);
  });

  it('auto mode: a site without the endpoint is a warning, not a failure', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', fusion: false, partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const result = await h.sync();
    expect(result.status).toBe('succeeded');
    expect(result.warnings.join('\n')).toMatch(/integration users: .*404/);
    const [run] = await h.t.query<{ warnings: string[] }>(`SELECT warnings FROM cpq.sync_runs WHERE id = $1`, [result.runId]);
    expect(run!.warnings.join('\n')).toMatch(/no integration-user endpoint/);
  });

  it('on mode: a missing endpoint fails the run', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', fusion: false, partnerCompanies: 0, usersPerCompany: 4 }, { CPQ_INTEGRATION_USERS: 'on' });
    const err = await h.syncError();
    expect(err.message).toMatch(/integrationUsers.*404/);
  });
});

describe('incremental sync', () => {
  it('asks only for users modified since the cursor minus the lookback, and counts only real changes', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { SYNC_LOOKBACK: '10m' });
    await h.sync();
    const before = await h.t.query<Raw>(`SELECT login, date_modified, last_synced_at, content_hash FROM cpq.users ORDER BY login`);
    const [state] = await h.t.query<{ cursor: Date }>(`SELECT cursor FROM cpq.sync_state WHERE stream = 'companies/_host'`);
    const newest = h.sim
      .users('_host')
      .map((u) => String(u.dateModified))
      .sort()
      .at(-1)!;
    expect(state!.cursor.toISOString()).toBe(newest);

    const edited = String(h.sim.users('_host')[4]!.login);
    h.sim.updateUser('_host', edited, { lastName: 'Changed' });
    h.sim.requests.length = 0;
    const result = await h.sync();
    expect(result.mode).toBe('incremental');
    expect(result.updated).toBe(1);
    expect(result.inserted).toBe(0);
    expect(result.seen).toBe(result.updated + result.unchanged);

    const q = JSON.parse(h.sim.requests.find((r) => r.path.endsWith('/users'))!.query.q!) as unknown;
    const since = new Date(new Date(newest).getTime() - 10 * 60_000).toISOString();
    expect(q).toEqual({ dateModified: { $gte: since } });

    const after = await h.t.query<Raw>(`SELECT login, date_modified, last_synced_at, content_hash, last_name FROM cpq.users ORDER BY login`);
    for (const [i, row] of after.entries()) {
      const old = before[i]!;
      if (row.login === edited) {
        expect(row.last_name).toBe('Changed');
        expect(row.content_hash).not.toBe(old.content_hash);
      } else {
        expect(row.date_modified).toEqual(old.date_modified);
        expect(row.content_hash).toBe(old.content_hash);
      }
    }
  });

  it("an edit made during a long read, on a page already read, is read by the next run when CPQ's clock is an hour behind the database's", async ({
    startHarness,
  }) => {
    // CPQ's clock (its edits' dateModified and its Date header): an hour behind ours, moved on by
    // hand to play a read that lasts 20 minutes, twice SYNC_LOOKBACK.
    let played = 0;
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0, now: () => new Date(Date.now() - 3_600_000 + played) },
      { CPQ_COMPANIES: '_host', CPQ_PAGE_SIZE: '2', SYNC_LOOKBACK: '10m' },
    );
    await h.sync();
    const logins = h.sim
      .users('_host')
      .map((u) => String(u.login))
      .sort(byCodeUnit);
    for (const login of logins) h.sim.updateUser('_host', login, { title: 'Touched' }); // the next read returns all six, two a page
    let pages = 0;
    h.sim.onRequest = (request) => {
      if (!request.path.endsWith('/users')) return;
      pages++;
      // Asked for the second page: the first page's first user is edited.
      if (pages === 2) h.sim.updateUser('_host', logins[0]!, { lastName: 'EditedDuringTheRead' });
      // Asked for the third page, 20 minutes later: its last user is edited, and read.
      if (pages === 3) {
        played += 20 * 60_000;
        h.sim.updateUser('_host', logins[5]!, { lastName: 'EditedLater' });
      }
    };
    expect(await h.sync()).toMatchObject({ mode: 'incremental', updated: 6 });
    expect(pages).toBe(3);
    h.sim.onRequest = undefined;
    expect(await h.sync()).toMatchObject({ mode: 'incremental', updated: 1 });
    const rows = await h.t.query<{ login: string; last_name: string }>(`SELECT login, last_name FROM cpq.users WHERE login = ANY($1)`, [
      [logins[0], logins[5]],
    ]);
    expect(Object.fromEntries(rows.map((r) => [r.login, r.last_name]))).toEqual({ [logins[0]!]: 'EditedDuringTheRead', [logins[5]!]: 'EditedLater' });
  });

  it("a site's clock set back by more than SYNC_LOOKBACK is warned of, and the stream's next read is a full one that reads the edits it dates before the old cursor; incremental reads then follow the clock", async ({
    startHarness,
  }) => {
    let clock = Date.now();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0, now: () => new Date(clock) },
      { CPQ_COMPANIES: '_host', SYNC_LOOKBACK: '10m' },
    );
    const [a, b, c] = h.sim
      .users('_host')
      .map((u) => String(u.login))
      .sort(byCodeUnit);
    h.sim.updateUser('_host', a!, { title: 'Now' });
    expect(await h.sync()).toMatchObject({ mode: 'full', warnings: [] });
    // The cursor is now about the site's present. A step back within SYNC_LOOKBACK is skew the
    // lookback covers: read, no warning.
    clock -= 5 * 60_000;
    h.sim.updateUser('_host', a!, { title: 'FiveMinutesBack' });
    expect(await h.sync()).toMatchObject({ mode: 'incremental', updated: 1, warnings: [] });
    // The site's clock is then reset three hours back: the edit is dated before the cursor.
    clock -= 3 * 3_600_000;
    h.sim.updateUser('_host', b!, { lastName: 'EditedAfterTheReset' });
    const missed = await h.sync();
    expect(missed).toMatchObject({ mode: 'incremental', updated: 0 });
    expect(missed.warnings).toEqual([
      expect.stringMatching(
        /^companies\/_host: CPQ's clock \(its Date header, \S+\) is more than SYNC_LOOKBACK behind this stream's cursor \(\S+\): it went back; an incremental read misses the edits it dates before the cursor: the cursor is cleared, so the stream's next read is a full one \(`cpq-sync run --full` reads them now\)$/,
      ),
    ]);
    const lastName = async (login: string) =>
      (await h.t.query<{ last_name: string }>(`SELECT last_name FROM cpq.users WHERE login = $1`, [login]))[0]!.last_name;
    expect(await lastName(b!)).not.toBe('EditedAfterTheReset');
    // Without --full: the cleared cursor makes the next read a full one, and the cursor follows the
    // clock back, to the newest dateModified that read found no later than the site's Date.
    expect(await h.sync()).toMatchObject({ mode: 'full', updated: 1, warnings: [] });
    expect(await lastName(b!)).toBe('EditedAfterTheReset');
    // So later edits, dated by the reset clock, are read incrementally again.
    clock += 60_000;
    h.sim.updateUser('_host', c!, { lastName: 'EditedLaterStill' });
    expect(await h.sync()).toMatchObject({ mode: 'incremental', updated: 1, warnings: [] });
    expect(await lastName(c!)).toBe('EditedLaterStill');
  });

  it("a full read that finds the site's clock set back reads every user and moves the cursor back to what it read", async ({ startHarness }) => {
    let clock = Date.now();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0, now: () => new Date(clock) },
      { CPQ_COMPANIES: '_host', SYNC_LOOKBACK: '10m' },
    );
    const [a, b] = h.sim
      .users('_host')
      .map((u) => String(u.login))
      .sort(byCodeUnit);
    h.sim.updateUser('_host', a!, { title: 'BeforeTheReset' });
    expect(await h.sync()).toMatchObject({ mode: 'full', warnings: [] });
    const cursor = async () => (await h.t.query<{ cursor: Date | null }>(`SELECT cursor FROM cpq.sync_state WHERE stream = 'companies/_host'`))[0]!.cursor;
    const before = await cursor();
    clock -= 2 * 3_600_000;
    h.sim.updateUser('_host', b!, { lastName: 'EditedAfterTheReset' });
    const full = await h.sync({ full: true });
    expect(full).toMatchObject({ mode: 'full', updated: 1 });
    const after = await cursor();
    expect(after!.getTime()).toBeLessThan(before!.getTime() - 3_600_000);
    expect(full.warnings).toEqual([
      `companies/_host: CPQ's clock (its Date header, ${new Date(Math.floor(clock / 1000) * 1000).toISOString()}) is more than SYNC_LOOKBACK behind this stream's cursor (${before!.toISOString()}): it went back; this full read read every user, and the cursor moves back to ${after!.toISOString()}`,
    ]);
  });

  it('a second full read of unchanged data changes nothing but last_synced_at', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 25, integrationUsers: 0 });
    await h.sync();
    const before = await snapshotTables(h.t);
    const result = await h.sync({ full: true });
    expect(result).toMatchObject({ mode: 'full', inserted: 0, updated: 0, unchanged: 25 });
    const after = await snapshotTables(h.t);
    const strip = (rows: Raw[]) => rows.map(({ last_synced_at: _ignored, ...rest }) => rest);
    expect(strip(after.users)).toEqual(strip(before.users));
    expect(after.userGroups).toEqual(before.userGroups);
    expect(after.permissions).toEqual(before.permissions);
    expect(after.users[0]!.last_synced_at).not.toEqual(before.users[0]!.last_synced_at);
  });

  it('picks up group and access-permission changes', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 });
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'newAuditors', label: 'New Auditors', type: 'Administrator' });
    h.sim.setAccessPermission('_host', b!, { type: 'productFamily', variableName: 'pfNew', name: 'New family', hasAccess: true });
    const result = await h.sync();
    expect(result.updated).toBe(2);
    const groups = await h.t.query(
      `SELECT 1 FROM cpq.user_groups ug JOIN cpq.users u ON u.id = ug.user_id WHERE u.login = $1 AND group_variable_name = 'newAuditors'`,
      [a],
    );
    expect(groups).toHaveLength(1);
    const perms = await h.t.query<Raw>(
      `SELECT has_access FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.login = $1 AND variable_name = 'pfNew'`,
      [b],
    );
    expect(perms).toEqual([{ has_access: true }]);
  });
});
