import { describe, expect } from 'vitest';
import type { SimulatorOptions } from '../src/simulator/index.js';
import { type Harness, it } from './helpers/harness.js';
import { editPage, scriptRequests } from './helpers/scripted-pages.js';

/*
 * One user, two feeds (review CN): a host user that is also an integration user, read from the
 * integration feed and then from the company feed, as one row.
 */

/** The integration feed sends no names (Oracle's v19 samples); under any spelling the simulator drifts to. */
const dropNames = (u: Record<string, unknown>) => {
  for (const key of Object.keys(u)) if (key.toLowerCase().replace(/_/g, '') === 'firstname') Reflect.deleteProperty(u, key);
};
type Raw = Record<string, unknown>;
const INTEGRATION_USERS_PATH = '/cpq/rest/v19/integrationUsers';
const HOST_USERS_PATH = '/cpq/rest/v16/companies/_host/users';

async function row(h: Harness, login: string, columns: string) {
  const [r] = await h.t.query<Raw>(`SELECT ${columns} FROM cpq.users WHERE company_login = '_host' AND login = $1`, [login]);
  return r!;
}
async function changes(h: Harness, runId: string, login: string) {
  return (
    await h.t.query<{ change: string; diff: Raw | null }>(`SELECT change, diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [runId, login])
  ).map((c) => ({ change: c.change, fields: Object.keys(c.diff ?? {}).sort() }));
}

describe('the site changes the user between the integration read and the company read of one run', () => {
  it('the company record, read later and modified later, wins the fields both feeds send: the row is the state after the edit, not the new name beside the old admin flag', async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 1 });
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { firstName: 'Ada', isUserAdminPermEnabled: true });
    // The integration feed sends no names (Oracle's v19 samples; the simulator sends the whole record).
    const stripNames = () =>
      scriptRequests(h.sim, async (req) => {
        if (req.path === INTEGRATION_USERS_PATH) req.reply(editPage(await req.real(), (p) => p.items.forEach(dropNames)));
      });
    stripNames();
    await h.sync();
    expect(await row(h, login, 'first_name, is_user_admin_perm_enabled, is_integration_user')).toEqual({
      first_name: 'Ada',
      is_user_admin_perm_enabled: true,
      is_integration_user: true,
    });
    // One edit in CPQ (renamed and demoted at once), made after the integration feed was read and
    // before the host feed is: both feeds return the user this run (a full run reads every user).
    let edited = false;
    scriptRequests(h.sim, async (req) => {
      if (req.path === INTEGRATION_USERS_PATH) req.reply(editPage(await req.real(), (p) => p.items.forEach(dropNames)));
      if (req.path === HOST_USERS_PATH && !edited) {
        edited = true;
        h.sim.updateUser('_host', login, { firstName: 'Grace', isUserAdminPermEnabled: false });
      }
    });
    const raced = await h.sync({ full: true });
    const stored = await row(h, login, 'first_name, is_user_admin_perm_enabled, date_modified::text AS date_modified');
    const inCpq = h.sim.user('_host', login)!;
    // Either state CPQ held (before the edit, or after it) would do; the row is neither: the new
    // name beside the revoked admin flag, dated before the edit, and the change row says "renamed" only.
    const states = [
      { first_name: 'Ada', is_user_admin_perm_enabled: true },
      { first_name: 'Grace', is_user_admin_perm_enabled: false },
    ];
    expect(states).toContainEqual({ first_name: stored.first_name, is_user_admin_perm_enabled: stored.is_user_admin_perm_enabled });
    expect(inCpq.isUserAdminPermEnabled).toBe(false);
    expect(await changes(h, raced.runId, login)).toEqual([{ change: 'update', fields: ['date_modified', 'first_name', 'is_user_admin_perm_enabled'] }]);
  });
});

describe('a field only the integration feed sends, left out of its record, is gone', () => {
  it('host not synced (CPQ_COMPANIES = a partner): isApplicationAdminPermEnabled left out of the integration record is cleared, in incremental and full runs (it stayed true for ever)', async ({
    startHarness,
  }) => {
    const sim: SimulatorOptions = { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 1 };
    const h = await startHarness(sim, (url) => ({ CPQ_BASE_URL: url }));
    const partner = h.sim.companyLogins().find((c) => c !== '_host')!;
    h.config.sites[0]!.cpq.companies.splice(0, Infinity, partner);
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { isApplicationAdminPermEnabled: true });
    await h.sync();
    expect(await row(h, login, 'is_application_admin_perm_enabled, is_integration_user')).toEqual({
      is_application_admin_perm_enabled: true,
      is_integration_user: true,
    });
    // CPQ now sends the user without the flag (its record moved on: the incremental window returns it).
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    scriptRequests(h.sim, async (req) => {
      if (req.path === INTEGRATION_USERS_PATH)
        req.reply(editPage(await req.real(), (p) => p.items.forEach((u) => Reflect.deleteProperty(u, 'isApplicationAdminPermEnabled'))));
    });
    for (const full of [false, true]) {
      await h.sync({ full });
      // A company-feed field its record leaves out is gone (README, one-feed fields); the same
      // rule for the integration feed's own field: a full, complete read of the only feed that
      // sends it does not send it.
      expect(await row(h, login, 'is_application_admin_perm_enabled')).toEqual({ is_application_admin_perm_enabled: null });
    }
  });
});

describe('a complete integration read that no longer returns a stored integration user, beside an incremental company read', () => {
  it('reads the company in full: the user stops being an integration user though its record did not move (review CN: it stayed one until the next full read)', async ({
    startHarness,
  }) => {
    // The integration stream's last full read is older than the host's: a full run whose
    // integration read answered 404 (auto) or was short does not count as one for that stream.
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 2 }, { SYNC_FULL_EVERY: '8s' });
    await h.sync();
    await new Promise((wake) => setTimeout(wake, 4500));
    h.sim.addFault({ match: { path: INTEGRATION_USERS_PATH }, times: 1, status: 404, body: '{"title":"Not Found"}' });
    const full = await h.sync({ full: true });
    expect(full.streams.map((s) => s.stream)).toEqual(['companies/_host']);
    await new Promise((wake) => setTimeout(wake, 4500));
    // The OAuth client is unbound (the integration feed no longer lists the user); its host record is untouched.
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { oauthClientId: undefined }, { touch: false });
    expect(h.sim.integrationUsers().map((u) => u.login)).not.toContain(login);
    const run = await h.sync();
    expect(run.streams.map((s) => [s.stream, s.mode, s.shortRead])).toEqual([
      ['integrationUsers', 'full', false],
      ['companies/_host', 'full', false],
    ]);
    expect(await row(h, login, 'is_integration_user, oauth_client_id')).toEqual({ is_integration_user: false, oauth_client_id: null });
    const changes = await h.t.query<{ login: string; change: string }>(`SELECT login, change FROM cpq.user_changes WHERE run_id = $1`, [run.runId]);
    expect(changes).toEqual([{ login, change: 'update' }]);
    // The next run has nothing more to find: incremental again.
    const next = await h.sync();
    expect(next.streams.map((s) => s.mode)).toEqual(['incremental', 'incremental']);
  });
});

describe('a CSV zip site (groups named only), the integration user edited between the two reads of one run', () => {
  it("the company record wins its groups' membership, the integration record keeps their labels and types (review CO: the raced run's raw lost them)", async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 1, groups: 3, zipExport: { entries: [{ format: 'csv' }] } },
      { CPQ_EXPORT_FORMAT: 'zip' },
    );
    const login = String(h.sim.integrationUsers()[0]!.login);
    await h.sync({ full: true });
    const groupsOf = async () =>
      (await h.t.query<{ groups: unknown }>(`SELECT raw->'groups' AS groups FROM cpq.users WHERE company_login = '_host' AND login = $1`, [login]))[0]!.groups;
    const labelled = await groupsOf();
    expect(JSON.stringify(labelled)).toContain('"label"');

    let edited = false;
    scriptRequests(h.sim, (req) => {
      if (req.path === HOST_USERS_PATH && !edited) {
        edited = true;
        h.sim.updateUser('_host', login, { firstName: 'Grace' });
      }
    });
    const raced = await h.sync({ full: true });
    expect(await row(h, login, 'first_name')).toEqual({ first_name: 'Grace' });
    // The same groups, each with its label and type (the links of the integration feed's collection aside).
    expect((await groupsOf()) as { items: unknown }).toMatchObject({ items: (labelled as { items: unknown }).items });
    expect(await changes(h, raced.runId, login)).toEqual([{ change: 'update', fields: ['date_modified', 'first_name'] }]);
  });
});

describe('a company record that spells dateModified twice, of a user both feeds return (review GV)', () => {
  it('is compared by the spelling the row stores, whatever the keys’ order: the same records sent in another order change nothing and log nothing', async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 1 });
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true });
    await h.sync();
    // The integration record, modified at T and an admin; the company record's dateModified is
    // before T (the spelling the row stores), its drifted twin DateModified after T, and it says
    // no admin. The integration record wins: the company record is not the later one.
    let driftedFirst = true;
    scriptRequests(h.sim, async (req) => {
      if (req.path === INTEGRATION_USERS_PATH)
        req.reply(
          editPage(await req.real(), (p) => {
            for (const u of p.items) if (u.login === login) Object.assign(u, { dateModified: '2025-01-02T00:00:00.000Z', isUserAdminPermEnabled: true });
          }),
        );
      if (req.path === HOST_USERS_PATH)
        req.reply(
          editPage(await req.real(), (p) => {
            p.items = p.items.map((u) => {
              if (u.login !== login) return u;
              const rest = Object.fromEntries(Object.entries(u).filter(([k]) => k.toLowerCase() !== 'datemodified'));
              const earlier = { dateModified: '2025-01-01T00:00:00.000Z' };
              const later = { DateModified: '2025-01-03T00:00:00.000Z' };
              return driftedFirst
                ? { ...later, ...rest, ...earlier, isUserAdminPermEnabled: false }
                : { ...earlier, ...rest, ...later, isUserAdminPermEnabled: false };
            });
          }),
        );
    });
    await h.sync({ full: true });
    const first = await row(h, login, 'is_user_admin_perm_enabled, date_modified::text AS date_modified');
    expect(first.is_user_admin_perm_enabled).toBe(true);
    driftedFirst = false;
    const again = await h.sync({ full: true });
    // Before: the first key spelling dateModified decided, so the company record (DateModified
    // first) lost the first run and won the second: an update, admin flag true → false.
    expect(await row(h, login, 'is_user_admin_perm_enabled, date_modified::text AS date_modified')).toEqual(first);
    expect(await changes(h, again.runId, login)).toEqual([]);
  });
});
