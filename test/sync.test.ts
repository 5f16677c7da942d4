import { describe, expect } from 'vitest';
import { SyncError } from '../src/errors.js';
import { type Harness, it, snapshotTables } from './helpers/harness.js';

type Raw = Record<string, unknown>;
const digits = (v: unknown) => (v === undefined || v === null ? null : String(v));
const groupNames = (u: Raw) => ((u.groups as { items?: { variableName: string }[] } | undefined)?.items ?? []).map((g) => g.variableName).sort();

let h: Harness | undefined;

async function usersIn(company: string) {
  return h!.t.query<{ login: string }>(`SELECT login FROM cpq.users WHERE company_login = $1 ORDER BY login COLLATE "C"`, [company]);
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

describe('full sync', () => {
  it('reads every page of a company with keyset paging on login', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 53, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    const result = await h.sync();
    expect(result.status).toBe('succeeded');
    expect(result.mode).toBe('full');
    expect(result.pages).toBe(6);
    expect(result.inserted).toBe(53);
    const expected = h.sim.users('_host').map((u) => String(u.login)).sort(byCodeUnit);
    expect((await usersIn('_host')).map((r) => r.login)).toEqual(expected);

    const pages = h.sim.requests.filter((r) => r.path.endsWith('/users'));
    expect(pages).toHaveLength(6);
    for (const page of pages) {
      expect(page.query).toMatchObject({ orderby: 'login:asc', offset: '0', limit: '10', expand: 'groups,accessPermissions' });
    }
    expect(pages[0]!.query.totalResults).toBe('true');
    expect(pages[0]!.query.q).toBeUndefined();
    expect(JSON.parse(pages[1]!.query.q!)).toEqual({ login: { $gt: expected[9] } });
  });

  it('syncs every company of the site with CPQ_COMPANIES=*', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 2, usersPerCompany: 15, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    const result = await h.sync();
    expect(result.inserted).toBe(45);
    const rows = await h.t.query<{ company_login: string; n: string }>(
      `SELECT company_login, count(*) AS n FROM cpq.users GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { company_login: '_host', n: '15' },
      { company_login: 'partner1', n: '15' },
      { company_login: 'partner2', n: '15' },
    ]);
    expect(result.streams.map((s) => s.stream).sort()).toEqual(['companies/_host', 'companies/partner1', 'companies/partner2']);
  });

  it('stores each user with its typed columns, groups and access permissions exactly as CPQ holds them', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 1, usersPerCompany: 40, integrationUsers: 0 }, { CPQ_COMPANIES: '_host,partner1' });
    await h.sync();
    for (const company of ['_host', 'partner1']) {
      for (const u of h.sim.users(company)) {
        const [row] = await h.t.query<Raw>(`SELECT * FROM cpq.users WHERE company_login = $1 AND login = $2`, [company, u.login]);
        expect(row, `${company}/${u.login}`).toBeDefined();
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
        const groups = await h.t.query<{ g: string }>(
          `SELECT group_variable_name AS g FROM cpq.user_groups WHERE user_id = $1 ORDER BY 1`,
          [row!.id],
        );
        expect(groups.map((g) => g.g).sort()).toEqual(groupNames(u));
        const perms = await h.t.query<Raw>(
          `SELECT type, variable_name, name, has_access FROM cpq.user_access_permissions WHERE user_id = $1`,
          [row!.id],
        );
        const expected = ((u.accessPermissions as { items?: Raw[] } | undefined)?.items ?? []).map((p) => ({
          type: p.type,
          variable_name: p.variableName,
          name: p.name ?? null,
          has_access: p.hasAccess ?? null,
        }));
        const key = (p: Raw) => `${p.type}/${p.variable_name}`;
        expect(perms.sort((a, b) => byCodeUnit(key(a), key(b)))).toEqual(expected.sort((a, b) => byCodeUnit(key(a), key(b))));
      }
    }
    const groups = await h.t.query<Raw>(`SELECT variable_name, label, type FROM cpq.groups`);
    expect(groups.length).toBeGreaterThan(0);
  });

  it('absorbs field-name drift: lastname, isSuperUserPermEnabled and other case variants', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 200, integrationUsers: 0 });
    await h.sync();
    const body = await (await fetch(`${h.sim.baseUrl}/rest/v16/companies/_host/users?limit=1000`)).text();
    // The simulator really sends the drifted spellings...
    expect(body).toContain('"lastname"');
    expect(body).toContain('"isSuperUserPermEnabled"');
    // ...and every user still lands with the canonical columns filled.
    for (const u of h.sim.users('_host')) {
      const [row] = await h.t.query<Raw>(
        `SELECT first_name, last_name, email, bill_city, is_user_admin_perm_enabled FROM cpq.users WHERE login = $1`,
        [u.login],
      );
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
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 200, integrationUsers: 0 });
    await h.sync();
    const rows = await h.t.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.users WHERE raw ? 'customAttr1'`);
    expect(Number(rows[0]!.n)).toBeGreaterThan(0);
  });

  it('does not miss a user that exists for the whole run while others are added, edited and deleted between pages', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 60, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    const initial = h.sim.users('_host').map((u) => String(u.login)).sort(byCodeUnit);
    const deleted = new Set<string>();
    let page = 0;
    h.sim.onRequest = (req) => {
      if (!req.path.endsWith('/users') || page++ === 0) return;
      // Between every two page requests: delete a user already read, edit one, add two.
      const victim = initial[page * 3];
      if (victim && !deleted.has(victim)) {
        h!.sim.deleteUser('_host', victim);
        deleted.add(victim);
      }
      h!.sim.updateUser('_host', initial[page * 5 + 1]!, { lastName: `Edited${page}` });
      h!.sim.addUser('_host', { firstName: 'Early', login: `0000-new-${page}` });
      h!.sim.addUser('_host', { firstName: 'Late', login: `zzzz-new-${page}` });
    };
    await h.sync();
    const stored = new Set((await usersIn('_host')).map((r) => r.login));
    const alwaysThere = initial.filter((l) => !deleted.has(l));
    expect(deleted.size).toBeGreaterThan(0);
    for (const login of alwaysThere) expect(stored.has(login), login).toBe(true);
  });

  it('keeps int64 partyId and id exact in their columns and in raw', async ({ startHarness }) => {
    h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 4 });
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
    expect(big.length).toBeGreaterThan(0);
  });
});

describe('integration users', () => {
  it('lands integration users in cpq.users, one row per user seen in both feeds, with groups and OAuth client', async ({ startHarness }) => {
    h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 3 });
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
    h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 3, integrationListIncludesGroups: false }, { CPQ_COMPANIES: 'partner9' });
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
    h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 2 });
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
    expect(row!.permissions).toBe(((user.accessPermissions as { items: unknown[] }).items ?? []).length);
  });

  it('maps the host company login name that integration users report to _host', async ({ startHarness }) => {
    h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      { CPQ_HOST_COMPANY: 'cpq-mdb' },
    );
    await h.sync();
    const rows = await h.t.query<Raw>(`SELECT company_login, count(*)::int AS n FROM cpq.users GROUP BY 1`);
    expect(rows).toEqual([{ company_login: '_host', n: 4 + 2 }]);
  });

  it('auto mode: a site without the endpoint is a warning, not a failure', async ({ startHarness }) => {
    h = await startHarness({ pathPrefix: '/cpq', fusion: false, partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const result = await h.sync();
    expect(result.status).toBe('succeeded');
    expect(result.warnings.join('\n')).toMatch(/integration users: .*404/);
    const [run] = await h.t.query<{ warnings: string[] }>(`SELECT warnings FROM cpq.sync_runs WHERE id = $1`, [result.runId]);
    expect(run!.warnings.join('\n')).toMatch(/no integration-user endpoint/);
  });

  it('on mode: a missing endpoint fails the run', async ({ startHarness }) => {
    h = await startHarness({ pathPrefix: '/cpq', fusion: false, partnerCompanies: 0, usersPerCompany: 4 }, { CPQ_INTEGRATION_USERS: 'on' });
    const err = await h.syncError();
    expect(err.message).toMatch(/integrationUsers.*404/);
  });
});

describe('incremental sync', () => {
  it('asks only for users modified since the cursor minus the lookback, and counts only real changes', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { SYNC_LOOKBACK: '10m' });
    await h.sync();
    const before = await h.t.query<Raw>(`SELECT login, date_modified, last_synced_at, content_hash FROM cpq.users ORDER BY login`);
    const [state] = await h.t.query<{ cursor: Date }>(`SELECT cursor FROM cpq.sync_state WHERE stream = 'companies/_host'`);
    const newest = h.sim.users('_host').map((u) => String(u.dateModified)).sort().at(-1)!;
    expect(state!.cursor.toISOString()).toBe(newest);

    const edited = String(h.sim.users('_host')[4]!.login);
    h.sim.updateUser('_host', edited, { lastName: 'Changed' });
    h.sim.requests.length = 0;
    const result = await h.sync();
    expect(result.mode).toBe('incremental');
    expect(result.updated).toBe(1);
    expect(result.inserted).toBe(0);
    expect(result.seen).toBe(result.updated + result.unchanged);

    const q = JSON.parse(h.sim.requests.find((r) => r.path.endsWith('/users'))!.query.q!);
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

  it('a second full read of unchanged data changes nothing but last_synced_at', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 25, integrationUsers: 0 });
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
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 });
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'newAuditors', label: 'New Auditors', type: 'Administrator' });
    h.sim.setAccessPermission('_host', b!, { type: 'productFamily', variableName: 'pfNew', name: 'New family', hasAccess: true });
    const result = await h.sync();
    expect(result.updated).toBe(2);
    const groups = await h.t.query(`SELECT 1 FROM cpq.user_groups ug JOIN cpq.users u ON u.id = ug.user_id WHERE u.login = $1 AND group_variable_name = 'newAuditors'`, [a]);
    expect(groups).toHaveLength(1);
    const perms = await h.t.query<Raw>(`SELECT has_access FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.login = $1 AND variable_name = 'pfNew'`, [b]);
    expect(perms).toEqual([{ has_access: true }]);
  });
});

describe('failures', () => {
  it('retries 503 and 429, obeying Retry-After in seconds and as an HTTP date', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    const path = '/rest/v16/companies/_host/users';
    const retryAt = new Date(Date.now() + 3000).toUTCString();
    h.sim.addFault({ match: { path }, times: 1, status: 503, headers: { 'retry-after': '1' } });
    h.sim.addFault({ match: { path }, times: 1, status: 429, headers: { 'retry-after': retryAt } });
    const at: number[] = [];
    h.sim.onRequest = () => void at.push(Date.now());
    const result = await h.sync();
    expect(result.inserted).toBe(5);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(990);
    expect(at[2]!).toBeGreaterThanOrEqual(Date.parse(retryAt) - 10);
    const statuses = h.sim.requests.filter((r) => r.path === path).map((r) => r.status);
    expect(statuses).toEqual([503, 429, 200]);
    const [run] = await h.t.query<{ http_retries: Record<string, number> }>(`SELECT http_retries FROM cpq.sync_runs`);
    expect(run!.http_retries).toEqual({ '503': 1, '429': 1 });
  });

  it('gives up after the configured retries with a clear error', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5 }, { CPQ_MAX_RETRIES: '2' });
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, times: Infinity, status: 502 });
    const err = await h.syncError();
    expect(err).toBeInstanceOf(SyncError);
    expect(err.message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?.* still answered 502 after 3 attempts/);
  });

  it('401 is a clear auth error, not retried', async ({ startHarness }) => {
    h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 5, auth: { basic: { username: 'sync', password: 'right-password' } } },
      { CPQ_USERNAME: 'sync', CPQ_PASSWORD: 'wrong-password' },
    );
    const err = await h.syncError();
    expect((err as SyncError).kind).toBe('auth');
    expect(err.message).toMatch(/CPQ refused the credentials \(401\)/);
    expect(err.message).not.toContain('wrong-password');
    expect(h.sim.requests).toHaveLength(1);
  });

  it('OAuth: gets a token, reuses it, and renews it after a 401', async ({ startHarness }) => {
    h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0, auth: { oauth: { clientId: 'client-1', clientSecret: 'oauth-secret-xyz' } } },
      (baseUrl) => ({
        CPQ_PAGE_SIZE: '10',
        CPQ_OAUTH_TOKEN_URL: `${baseUrl}/oauth2/v1/token`,
        CPQ_OAUTH_CLIENT_ID: 'client-1',
        CPQ_OAUTH_CLIENT_SECRET: 'oauth-secret-xyz',
      }),
    );
    let pages = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++pages === 2) h!.sim.revokeTokens();
    };
    const result = await h.sync();
    expect(result.inserted).toBe(30);
    expect(h.sim.tokenRequests).toBe(2);
    expect(h.sim.requests.filter((r) => r.status === 401)).toHaveLength(1);
  });

  it('a malformed page fails the run, names the URL, and leaves the database as the last good run left it', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    await h.sync();
    const before = await snapshotTables(h.t);
    for (const u of h.sim.users('_host').slice(0, 25)) h.sim.updateUser('_host', String(u.login), { lastName: 'ShouldNotLand' });
    let n = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++n === 2) {
        h!.sim.addFault({ match: { path: req.path }, times: 1, status: 200, headers: { 'content-type': 'application/json' }, body: '{"items":[{"login":"x"' });
      }
    };
    const err = await h.syncError();
    expect(err.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?\S+: response is not valid JSON/);
    expect(err.message).not.toContain('\n');
    expect(await snapshotTables(h.t)).toEqual(before);
    const runs = await h.t.query<Raw>(`SELECT status, error, warnings FROM cpq.sync_runs ORDER BY id`);
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'failed']);
    expect(runs[1]!.error).toBe(err.message);
    expect(JSON.stringify(runs[1]!.warnings)).toMatch(/rolled back/);
  });

  it('an HTML page with status 200 and a body of the wrong shape are clear errors', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const path = '/rest/v16/companies/_host/users';
    h.sim.addFault({ match: { path }, times: 1, status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Maintenance</body></html>' });
    expect((await h.syncError()).message).toMatch(/expected JSON, got an HTML page/);
    h.sim.addFault({ match: { path }, times: 1, status: 200, body: '[1,2,3]' });
    expect((await h.syncError()).message).toMatch(/expected a JSON object with items\[\], got an array/);
    h.sim.addFault({ match: { path }, times: 1, status: 200, body: '' });
    expect((await h.syncError()).message).toMatch(/expected JSON, got an empty body/);
  });

  it('a record with a bad field fails the run naming the record and the field', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const login = String(h.sim.users('_host')[1]!.login);
    h.sim.updateUser('_host', login, { status: { value: 'yes', displayValue: 'Yes' } });
    const err = await h.syncError();
    expect(err.message).toMatch(new RegExp(`user "_host/${login}" \\(record 1 of http.*\\): field "status.value" must be a whole number, got "yes"`));
    expect((err as SyncError).kind).toBe('data');
  });

  it('records a short read (fewer rows than totalResults) as a warning', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    let n = 0;
    h.sim.onRequest = (req) => {
      // The page after the first lies: hasMore false.
      if (req.path.endsWith('/users') && ++n === 2) {
        const items = h!.sim.users('_host').map((u) => String(u.login)).sort(byCodeUnit).slice(10, 12);
        h!.sim.addFault({
          match: { path: req.path },
          times: 1,
          status: 200,
          body: JSON.stringify({ items: items.map((login) => ({ login })), hasMore: false, count: 2 }),
        });
      }
    };
    const result = await h.sync();
    expect(result.warnings).toEqual([
      expect.stringMatching(/companies\/_host: read 12 of 30 users .*short/),
      expect.stringMatching(/deletion skipped for companies\/_host: the read was short/),
    ]);
    expect(result.streams[0]!.shortRead).toBe(true);
  });
});

describe('secrets', () => {
  it('never writes the password or token to logs, errors or the database', async ({ startHarness }) => {
    const password = 'S3cr3t-Pa55word-Do-Not-Leak';
    h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, auth: { basic: { username: 'sync-user', password } } },
      { CPQ_USERNAME: 'sync-user', CPQ_PASSWORD: password, CPQ_PAGE_SIZE: '5' },
    );
    await h.sync();
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, times: Infinity, status: 500 });
    const err = await h.syncError({ full: true });
    const basic = Buffer.from(`sync-user:${password}`).toString('base64');
    const everything = [
      ...h.logLines,
      err.message,
      err.stack ?? '',
      JSON.stringify(await h.t.query(`SELECT * FROM cpq.sync_runs`)),
      JSON.stringify(await h.t.query(`SELECT * FROM cpq.sync_state`)),
      JSON.stringify(await h.t.query(`SELECT * FROM cpq.users`)),
    ].join('\n');
    expect(h.logLines.length).toBeGreaterThan(5);
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(basic);
  });
});

describe('transport', () => {
  it('accepts a static bearer token', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0, auth: { bearerTokens: ['static-token-1'] } }, { CPQ_TOKEN: 'static-token-1' });
    expect((await h.sync()).inserted).toBe(4);
    expect(h.sim.requests.every((r) => r.authorization === 'bearer')).toBe(true);
  });

  it('retries a request that stalls past the timeout and one whose connection is reset mid-body', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 }, { CPQ_REQUEST_TIMEOUT: '300ms', CPQ_PAGE_SIZE: '5' });
    const path = '/rest/v16/companies/_host/users';
    h.sim.addFault({ match: { path }, times: 1, action: 'stall' });
    h.sim.addFault({ match: { path }, times: 1, action: 'reset' });
    const result = await h.sync();
    expect(result.inserted).toBe(12);
    const [run] = await h.t.query<{ http_retries: Record<string, number> }>(`SELECT http_retries FROM cpq.sync_runs`);
    expect(run!.http_retries).toEqual({ network: 2 });
    expect(h.logLines.join('\n')).toMatch(/no response within the request timeout/);
  });

  it('renews the OAuth token before it expires', async ({ startHarness }) => {
    let clock = Date.parse('2025-06-01T00:00:00Z');
    const now = () => clock;
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0, now: () => new Date(clock), auth: { oauth: { clientId: 'c', clientSecret: 's', tokenTtlSeconds: 600 } } });
    const { OAuthClientCredentials } = await import('../src/cpq/auth.js');
    const auth = new OAuthClientCredentials({ kind: 'oauth', tokenUrl: `${h.sim.baseUrl}/oauth2/v1/token`, clientId: 'c', clientSecret: 's' }, 5000, now);
    const first = await auth.authorization();
    clock += 500_000; // 500 of 600 seconds: still inside the lifetime less the renewal margin
    expect(await auth.authorization()).toBe(first);
    clock += 50_000; // 550 s: within the last minute, renewed early
    const second = await auth.authorization();
    expect(second).not.toBe(first);
    expect(h.sim.tokenRequests).toBe(2);
  });
});

describe('run lifecycle', () => {
  it('skips with a lock error while another run holds the lock, recording no run', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const { RUN_LOCK_KEY } = await import('../src/sync/run.js');
    const holder = await h.t.pool.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [RUN_LOCK_KEY]);
      const err = await h.syncError();
      expect((err as SyncError).kind).toBe('lock');
      expect(await h.t.query(`SELECT * FROM cpq.sync_runs`)).toEqual([]);
    } finally {
      await holder.query('SELECT pg_advisory_unlock_all()');
      holder.release();
    }
    expect((await h.sync()).inserted).toBe(3);
  });

  it('marks a run left running by a dead process as abandoned', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    await h.t.query(`INSERT INTO cpq.sync_runs (status, mode) VALUES ('running', 'incremental')`);
    await h.sync();
    const runs = await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs ORDER BY id`);
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'abandoned', 'succeeded']);
  });

  it('an interrupted run rolls back and is recorded as interrupted', async ({ startHarness }) => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '10' });
    const controller = new AbortController();
    let pages = 0;
    h.sim.onRequest = (req) => {
      if (req.path.endsWith('/users') && ++pages === 2) controller.abort();
    };
    const err = await h.syncError({ signal: controller.signal });
    expect((err as SyncError).kind).toBe('interrupted');
    expect(await h.t.query(`SELECT 1 FROM cpq.users`)).toEqual([]);
    const runs = await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs`);
    expect(runs).toEqual([{ status: 'interrupted' }]);
  });
});
