import { readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { type Harness, it } from './helpers/harness.js';

/*
 * The README's "who had admin rights, and since when" query gives the start of the rights a user
 * held at the date asked: not an earlier grant that was taken away, nor one held before the user
 * was deleted (a login that comes back is the same user id, restored).
 */

const AS_OF_LITERAL = "'2025-03-03T00:00:00Z'";
const adminSince = (() => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const statement = /-- Who had admin rights[^\n]*\n(?:--[^\n]*\n)*([\s\S]*?);\n/.exec(readme)?.[1];
  if (!statement?.includes(AS_OF_LITERAL)) throw new Error(`the README's admin query no longer asks about ${AS_OF_LITERAL}`);
  return statement.replaceAll(AS_OF_LITERAL, '$1::timestamptz');
})();

/** The user-admin flag's holders then, and since when (the README's query answers for every admin right). */
async function admins(h: Harness, asOf: Date): Promise<Record<string, Date>> {
  const rows = await h.t.query<{ login: string; since: Date }>(
    `SELECT q.login, q.since FROM (${adminSince}) q WHERE q.admin_right = 'is_user_admin_perm_enabled'`,
    [asOf],
  );
  return Object.fromEntries(rows.map((r) => [r.login, r.since]));
}

async function effectiveAt(h: Harness, runId: string): Promise<Date> {
  const [run] = await h.t.query<{ effective_at: Date }>('SELECT effective_at FROM cpq.sync_runs WHERE id = $1', [runId]);
  return run!.effective_at;
}

describe("the README's admin-since query", () => {
  it('starts at the grant the user held then, after any revocation or deletion', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [kept, revoked, deleted, never] = h.sim.users('_host').map((u) => String(u.login));
    for (const login of [kept!, revoked!, deleted!]) h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true });
    h.sim.updateUser('_host', never!, { isUserAdminPermEnabled: false });
    const first = await effectiveAt(h, (await h.sync()).runId);

    h.sim.updateUser('_host', revoked!, { isUserAdminPermEnabled: false });
    const fields = h.sim.user('_host', deleted!)!;
    h.sim.deleteUser('_host', deleted!);
    const second = await effectiveAt(h, (await h.sync({ full: true })).runId);

    h.sim.updateUser('_host', revoked!, { isUserAdminPermEnabled: true });
    // Someone else under the deleted user's login, also an admin.
    h.sim.addUser('_host', { ...fields, login: deleted!, firstName: 'Another', isUserAdminPermEnabled: true });
    const third = await effectiveAt(h, (await h.sync({ full: true })).runId);

    expect(await admins(h, first)).toEqual({ [kept!]: first, [revoked!]: first, [deleted!]: first });
    expect(await admins(h, second)).toEqual({ [kept!]: first });
    expect(await admins(h, third)).toEqual({ [kept!]: first, [revoked!]: third, [deleted!]: third });
  });
});

const DAY_START = "'2025-03-03T00:00:00Z'";
const DAY_END = "'2025-03-04T00:00:00Z'";
const adminsDuringDay = (() => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const statement = /-- Who held an admin right at any time[^\n]*\n(?:--[^\n]*\n)*([\s\S]*?);\n/.exec(readme)?.[1];
  if (!statement?.includes(DAY_START) || !statement.includes(DAY_END))
    throw new Error(`the README's admin query of a whole day no longer asks about ${DAY_START} to ${DAY_END}`);
  return statement.replaceAll(DAY_START, '$1::timestamptz').replaceAll(DAY_END, '$2::timestamptz');
})();

describe("the README's query of who held an admin right at any time on a day", () => {
  it('names the rights held as the day began and those a run of the day gave, not those given at its end', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 });
    const [kept, revoked, dayOnly, after] = h.sim.users('_host').map((u) => String(u.login));
    for (const login of [kept!, revoked!]) h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true });
    for (const login of [dayOnly!, after!]) h.sim.updateUser('_host', login, { isUserAdminPermEnabled: false });
    const first = await effectiveAt(h, (await h.sync()).runId);

    // During the day: one loses the right, another holds it only until the next run.
    h.sim.updateUser('_host', revoked!, { isUserAdminPermEnabled: false });
    h.sim.updateUser('_host', dayOnly!, { isUserAdminPermEnabled: true });
    const second = await effectiveAt(h, (await h.sync({ full: true })).runId);

    // The run that ends the day (its window is up to this run's time, excluded).
    h.sim.updateUser('_host', dayOnly!, { isUserAdminPermEnabled: false });
    h.sim.updateUser('_host', after!, { isUserAdminPermEnabled: true });
    const third = await effectiveAt(h, (await h.sync({ full: true })).runId);

    // The day from just before the second run to the third: it began with the first run's state.
    const dayStart = new Date(second.getTime() - 1);
    expect(dayStart.getTime()).toBeGreaterThan(first.getTime());
    const rows = await h.t.query<{ login: string; since: Date }>(
      `SELECT q.login, q.since FROM (${adminsDuringDay}) q WHERE q.admin_right = 'is_user_admin_perm_enabled'`,
      [dayStart, third],
    );
    expect(Object.fromEntries(rows.map((r) => [r.login, r.since]))).toEqual({ [kept!]: first, [revoked!]: first, [dayOnly!]: second });
    // The query of the day's start alone misses the one who held it only during the day.
    expect(await admins(h, dayStart)).toEqual({ [kept!]: first, [revoked!]: first });
  });

  it('gives a login given to another person during the day, who holds the right too, a row each: not one row since the first holder (review JD)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const [kept, given, ...others] = h.sim.users('_host').map((u) => String(u.login));
    for (const login of [kept!, given!]) h.sim.updateUser('_host', login, { isProxyPermEnabled: true });
    for (const login of others) h.sim.updateUser('_host', login, { isProxyPermEnabled: false });
    const first = await effectiveAt(h, (await h.sync()).runId);
    // Another person under the login, with no read between that saw the first one deleted.
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- their CPQ id and dateAdded are the first person's
    const { id, dateAdded, ...fields } = h.sim.user('_host', given!)!;
    h.sim.deleteUser('_host', given!);
    h.sim.addUser('_host', { ...fields, login: given!, firstName: 'Another', isProxyPermEnabled: true });
    const second = await effectiveAt(h, (await h.sync()).runId);
    const dayStart = new Date(second.getTime() - 1);
    const rows = await h.t.query<{ login: string; since: Date }>(
      `SELECT q.login, q.since FROM (${adminsDuringDay}) q WHERE q.admin_right = 'is_proxy_perm_enabled'`,
      [dayStart, new Date(second.getTime() + 1)],
    );
    expect(rows).toEqual([
      { login: kept!, since: first },
      { login: given!, since: first },
      { login: given!, since: second },
    ]);
  });
});

const retypesOfOneUser = (() => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const statement = /-- \.\.\.and the admin rights that user gained or lost[^\n]*\n(?:--[^\n]*\n)*([\s\S]*?);\n/.exec(readme)?.[1];
  if (!statement?.includes("login = 'jsmith'")) throw new Error("the README's retype query no longer asks about jsmith");
  return statement.replace("site = 'default' AND company_login = '_host' AND login = 'jsmith'", "site = 'default' AND company_login = '_host' AND login = $1");
})();

describe("the README's query of the admin rights a user gained or lost by a group retyped while they were in it", () => {
  it('names a retype of a group the user was in, not one in the run that added them to it or took them out (their change row shows that; review JD)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const [member, joiner] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', member!, { variableName: 'auditors', label: 'Auditors', type: 'User' });
    await h.sync();
    // One run: the group becomes an Administrator one, and the joiner joins it.
    h.sim.relabelGroup('auditors', 'Auditors', 'Administrator');
    h.sim.addGroup('_host', joiner!, { variableName: 'auditors', label: 'Auditors', type: 'Administrator' });
    const second = await effectiveAt(h, (await h.sync({ full: true })).runId);
    // Back to User, in the run that takes the joiner out of it: theirs no more than the first.
    h.sim.relabelGroup('auditors', 'Auditors', 'User');
    h.sim.removeGroup('_host', joiner!, 'auditors');
    const third = await effectiveAt(h, (await h.sync({ full: true })).runId);
    const retypes = (login: string) => h.t.query<{ detected_at: Date; type: unknown }>(retypesOfOneUser, [login]);
    expect(await retypes(member!)).toEqual([
      { detected_at: second, group_variable_name: 'auditors', type: { old: 'User', new: 'Administrator' } },
      { detected_at: third, group_variable_name: 'auditors', type: { old: 'Administrator', new: 'User' } },
    ]);
    expect(await retypes(joiner!)).toEqual([]);
  });
});
