import { readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { it } from './helpers/harness.js';

/*
 * The README's "Who had admin rights ... and since when" example asks only for
 * is_user_admin_perm_enabled, while the README's own cpq.administrators (and the admin_flag alert
 * rule) count four admin flags and Administrator-type groups as admin rights. An auditor asking
 * the README's question for today must get at least the users cpq.administrators lists.
 */
const AS_OF_LITERAL = "'2025-03-03T00:00:00Z'";
/** The README's query for everyone with admin rights: "Everyone with any admin right" where it has one, else "Who had admin rights". */
const adminSince = (() => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const statement = (heading: string) => new RegExp(`-- ${heading}[^\\n]*\\n(?:--[^\\n]*\\n)*([\\s\\S]*?);\\n`).exec(readme)?.[1];
  const chosen = statement('Everyone with any admin right') ?? statement('Who had admin rights');
  if (!chosen?.includes(AS_OF_LITERAL)) throw new Error('README admin query changed');
  return chosen.replaceAll(AS_OF_LITERAL, '$1::timestamptz');
})();

describe("the README's admin-rights query", () => {
  it('lists every user cpq.administrators lists', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [userAdmin, accessAdmin, appAdmin, groupAdmin] = h.sim.users('_host').map((u) => String(u.login));
    const none = {
      isUserAdminPermEnabled: false,
      isAccessAdminPermEnabled: false,
      isApplicationAdminPermEnabled: false,
      isProxyPermEnabled: false,
      groups: { items: [] },
    };
    for (const login of [userAdmin!, accessAdmin!, appAdmin!, groupAdmin!]) h.sim.updateUser('_host', login, none);
    h.sim.updateUser('_host', userAdmin!, { isUserAdminPermEnabled: true });
    h.sim.updateUser('_host', accessAdmin!, { isAccessAdminPermEnabled: true });
    h.sim.updateUser('_host', appAdmin!, { isApplicationAdminPermEnabled: true });
    h.sim.addGroup('_host', groupAdmin!, { variableName: 'adminAccessGroupsOnly', label: 'Admin Access- Groups', type: 'Administrator' });
    await h.sync({ full: true });
    const view = (await h.t.query<{ login: string }>(`SELECT login FROM cpq.administrators`)).map((r) => r.login).sort();
    expect(view).toEqual([userAdmin!, accessAdmin!, appAdmin!, groupAdmin!].sort());
    const readme = (await h.t.query<{ login: string }>(adminSince, [new Date()])).map((r) => r.login).sort();
    expect(readme, 'users with admin rights by the README query').toEqual(view);
  });
});
