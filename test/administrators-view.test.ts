import { describe, expect } from 'vitest';
import { it } from './helpers/harness.js';

/*
 * cpq.administrators aggregates the Administrator-type memberships per user before joining users
 * (migrations/0028) where it grouped the join of every user with every membership (0019). It must
 * answer as the view before it did, kept here as 0019 wrote it: the same rows, columns and values,
 * after runs that grant and revoke admin flags, add and remove Administrator-type groups, retype
 * a group and delete a user.
 */
const BEFORE_0028 = `
SELECT u.id AS user_id, u.company_login, u.login, u.email, u.status_display,
       coalesce(u.is_user_admin_perm_enabled, false) AS is_user_admin,
       coalesce(u.is_access_admin_perm_enabled, false) AS is_access_admin,
       coalesce(u.is_application_admin_perm_enabled, false) AS is_application_admin,
       coalesce(array_agg(g.variable_name ORDER BY g.variable_name) FILTER (WHERE g.type = 'Administrator'), '{}') AS administrator_groups,
       u.site,
       coalesce(u.is_proxy_perm_enabled, false) AS is_proxy
FROM cpq.users u
LEFT JOIN cpq.user_groups ug ON ug.user_id = u.id
LEFT JOIN cpq.groups g ON g.site = u.site AND g.variable_name = ug.group_variable_name
WHERE u.deleted_at IS NULL
GROUP BY u.id
HAVING coalesce(u.is_user_admin_perm_enabled, false) OR coalesce(u.is_access_admin_perm_enabled, false)
    OR coalesce(u.is_application_admin_perm_enabled, false) OR coalesce(u.is_proxy_perm_enabled, false)
    OR bool_or(g.type = 'Administrator')`;

const ROWS = (from: string) => `SELECT a.*, a.administrator_groups::text AS groups_text FROM (${from}) a ORDER BY a.user_id`;

describe('cpq.administrators', () => {
  it('answers as the view before 0028 did, run after run', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 60, integrationUsers: 2 });
    const compare = async () => {
      const before = await h.t.query(ROWS(BEFORE_0028));
      const now = await h.t.query(ROWS('SELECT * FROM cpq.administrators'));
      expect(now).toEqual(before);
      return now as { login: string; administrator_groups: string[]; is_user_admin: boolean }[];
    };
    await h.sync();
    const first = await compare();
    expect(first.some((r) => r.administrator_groups.length > 0)).toBe(true);
    expect(first.some((r) => r.administrator_groups.length === 0)).toBe(true);

    const logins = h.sim.users('_host').map((u) => String(u.login));
    const admin = { variableName: 'zzAuditors', label: 'Auditors', type: 'Administrator' };
    const other = { variableName: 'aaAdmins', label: 'Admins A', type: 'Administrator' };
    for (const login of logins.slice(0, 5)) {
      h.sim.updateUser('_host', login, {
        isUserAdminPermEnabled: false,
        isAccessAdminPermEnabled: false,
        isApplicationAdminPermEnabled: false,
        isProxyPermEnabled: false,
      });
    }
    h.sim.addGroup('_host', logins[0]!, admin);
    h.sim.addGroup('_host', logins[0]!, other);
    h.sim.addGroup('_host', logins[1]!, admin);
    h.sim.updateUser('_host', logins[5]!, { isProxyPermEnabled: true });
    h.sim.deleteUser('_host', logins[6]!);
    await h.sync({ full: true });
    const second = await compare();
    expect(second.find((r) => r.login === logins[0])!.administrator_groups).toEqual(expect.arrayContaining(['aaAdmins', 'zzAuditors']));
    expect(second.map((r) => r.login)).not.toContain(logins[6]);

    // A group retyped: its members are administrators no more (or from now on).
    h.sim.relabelGroup('zzAuditors', 'Auditors', 'Sales');
    h.sim.removeGroup('_host', logins[0]!, 'aaAdmins');
    await h.sync({ full: true });
    const third = await compare();
    for (const r of third) expect(r.administrator_groups).not.toContain('zzAuditors');
    expect(third.find((r) => r.login === logins[0])?.administrator_groups ?? []).not.toContain('aaAdmins');
  });
});
