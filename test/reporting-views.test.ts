import { describe, expect } from 'vitest';
import { itWithFileHarness } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

type Raw = Record<string, unknown>;
const it = itWithFileHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 40, integrationUsers: 3 }, { CPQ_COMPANIES: '*' }, (h) => h.sync());

const all = (h: Harness) => [...h.sim.users('_host'), ...h.sim.users('partner1')];
const groupsOf = (u: Raw) => (u.groups as { items?: Raw[] } | undefined)?.items ?? [];
const value = (u: Raw, field: string) => (u[field] as Raw | undefined)?.value;

describe('reporting views', () => {
  it('active_users_by_company counts active users per company and type', async ({ h }) => {
    const rows = await h.t.query<{ company_login: string; type: string; users: string }>(`SELECT company_login, type, users FROM cpq.active_users_by_company`);
    const expected = new Map<string, number>();
    for (const company of ['_host', 'partner1']) {
      for (const u of h.sim.users(company)) {
        if (value(u, 'status') !== 1) continue;
        const key = `${company}/${value(u, 'type') as string}`;
        expected.set(key, (expected.get(key) ?? 0) + 1);
      }
    }
    expect(new Map(rows.map((r) => [`${r.company_login}/${r.type}`, Number(r.users)]))).toEqual(expected);
  });

  it('users_per_group and group_members agree with the memberships CPQ reports', async ({ h }) => {
    const perGroup = await h.t.query<{ group_variable_name: string; users: string }>(`SELECT group_variable_name, users FROM cpq.users_per_group`);
    const expected = new Map<string, number>();
    for (const u of all(h)) for (const g of groupsOf(u)) expected.set(String(g.variableName), (expected.get(String(g.variableName)) ?? 0) + 1);
    expect(new Map(perGroup.filter((r) => Number(r.users) > 0).map((r) => [r.group_variable_name, Number(r.users)]))).toEqual(expected);
    const members = await h.t.query(`SELECT 1 FROM cpq.group_members`);
    expect(members).toHaveLength([...expected.values()].reduce((a, b) => a + b, 0));
  });

  it('administrators lists users with an admin flag or an Administrator-type group', async ({ h }) => {
    const rows = await h.t.query<{ login: string; company_login: string }>(`SELECT company_login, login FROM cpq.administrators`);
    const expected = all(h)
      .filter(
        (u) =>
          u.isUserAdminPermEnabled === true ||
          u.isAccessAdminPermEnabled === true ||
          u.isApplicationAdminPermEnabled === true ||
          u.isProxyPermEnabled === true ||
          groupsOf(u).some((g) => g.type === 'Administrator'),
      )
      .map((u) => String(u.login))
      .sort();
    expect(rows.map((r) => r.login).sort()).toEqual(expected);
    expect(expected.length).toBe(62);
    // The proxy permission (to log in as other users) alone makes an administrator, as it makes an admin_flag alert.
    const proxyOnly = all(h).filter(
      (u) =>
        u.isProxyPermEnabled === true &&
        u.isUserAdminPermEnabled !== true &&
        u.isAccessAdminPermEnabled !== true &&
        u.isApplicationAdminPermEnabled !== true &&
        !groupsOf(u).some((g) => g.type === 'Administrator'),
    );
    expect(proxyOnly.length).toBeGreaterThan(0);
    const proxies = await h.t.query<{ login: string }>(`SELECT login FROM cpq.administrators WHERE is_proxy`);
    expect(proxies.map((r) => r.login).sort()).toEqual(
      all(h)
        .filter((u) => u.isProxyPermEnabled === true)
        .map((u) => String(u.login))
        .sort(),
    );
  });

  it('integration_users shows each integration user with its OAuth client', async ({ h }) => {
    const rows = await h.t.query<Raw>(`SELECT login, oauth_client_id FROM cpq.integration_users ORDER BY login`);
    expect(rows).toEqual(h.sim.integrationUsers().map((u) => ({ login: u.login, oauth_client_id: u.oauthClientId })));
  });

  it('user_logins flags users who never logged in and counts days since login', async ({ h }) => {
    const rows = await h.t.query<{ login: string; never_logged_in: boolean; days_since_login: number | null }>(
      `SELECT login, never_logged_in, days_since_login FROM cpq.user_logins`,
    );
    const never = all(h)
      .filter((u) => u.lastLogin === undefined || u.lastLogin === null)
      .map((u) => String(u.login))
      .sort();
    expect(
      rows
        .filter((r) => r.never_logged_in)
        .map((r) => r.login)
        .sort(),
    ).toEqual(never);
    const someone = all(h).find((u) => typeof u.lastLogin === 'string')!;
    const days = Math.floor((Date.now() - Date.parse(String(someone.lastLogin))) / 86_400_000);
    expect(rows.find((r) => r.login === someone.login)!.days_since_login).toBe(days);
  });

  it('recent_changes shows the change log with its age in days', async ({ h }) => {
    const rows = await h.t.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.recent_changes WHERE days_ago <= 7`);
    expect(Number(rows[0]!.n)).toBe(all(h).length);
  });
});
