import { describe, expect } from 'vitest';
import { parseExactJson } from '../src/exact-json.js';
import { RawJson, type SimulatorOptions } from '../src/simulator/index.js';
import { type Harness, it } from './helpers/harness.js';
import { editPage, scriptRequests } from './helpers/scripted-pages.js';

/**
 * A number CPQ sends where text belongs is stored as written (README "Tables": `1E2` stays `1E2`),
 * and a run that takes such a field from the user's stored record (one feed read the user, the
 * other did not: src/normalize/feed-fields.ts) keeps it so: jsonb gives `raw`'s copy back as
 * `100`, and the stored columns and rows put the spelling back (src/normalize/stored-spellings.ts).
 */

type Raw = Record<string, unknown>;
const INTEGRATION_USERS_PATH = '/cpq/rest/v19/integrationUsers';
const HOST_USERS_PATH = '/cpq/rest/v16/companies/_host/users';
const EMPTY_PAGE = '{"items":[],"hasMore":false}';
const site: SimulatorOptions = { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 1 };

/**
 * Two permissions whose keys differ only in the spelling of one number, a name sent as a number,
 * and a permission listed twice whose key is a number and whose names are long (review GD: the
 * copy that does not count ran out of a search bound and kept jsonb's spelling, 0.0015, which
 * read as a second permission).
 */
const PERMISSIONS = parseExactJson(
  '{"items":[{"type":"productFamily","variableName":1E2,"name":1E2,"hasAccess":true},' +
    '{"type":"productFamily","variableName":100,"name":"100","hasAccess":false},' +
    '{"Type":"-0","VariableName":"v","NAME":1.5e-3,"hasAccess":true,"note":"kept"},' +
    '{"type":"productFamily","variableName":1.5e-3,"name":"Quote approval for partner organizations","hasAccess":true},' +
    '{"type":"productFamily","variableName":1.5e-3,"name":"Approve quotes","hasAccess":true}]}',
);

/** The user's text columns and permission rows that a number's spelling could change. */
async function stored(h: Harness, login: string) {
  const [user] = await h.t.query<Raw>(
    `SELECT last_name, type_display, language, company_name, content_hash, last_changed_run_id::text AS last_changed_run_id FROM cpq.users WHERE login = $1`,
    [login],
  );
  const permissions = await h.t.query<Raw>(
    `SELECT p.type, p.variable_name, p.name, p.has_access FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id
     WHERE u.login = $1 ORDER BY p.type, p.variable_name`,
    [login],
  );
  return { ...user, permissions };
}

async function changesOf(h: Harness, runId: string) {
  const rows = await h.t.query<{ login: string; change: string; diff: Raw | null }>(`SELECT login, change, diff FROM cpq.user_changes WHERE run_id = $1`, [
    runId,
  ]);
  return rows.map((r) => ({ login: r.login, change: r.change, fields: Object.keys(r.diff ?? {}).sort() }));
}

/** The integration user, stored with numbers in exponent form in its text fields and permissions. */
async function spelledUser(h: Harness): Promise<{ login: string; before: Awaited<ReturnType<typeof stored>> }> {
  const login = String(h.sim.integrationUsers()[0]!.login);
  h.sim.updateUser('_host', login, {
    lastName: new RawJson('1E2'),
    type: new RawJson('{"value":"FullAccess","displayValue":1.50E1}'),
    language: new RawJson('{"value":-0,"displayValue":"English"}'),
    company: parseExactJson('{"loginName":"_host","name":1E2}'),
  });
  // The host read sends the permissions (the simulator keeps a user's permissions as a list of its own).
  scriptRequests(h.sim, async (req) => {
    if (req.path === HOST_USERS_PATH)
      req.reply(editPage(await req.real(), (page) => page.items.forEach((u) => u.login === login && (u.accessPermissions = PERMISSIONS))));
  });
  await h.sync();
  h.sim.onRequest = undefined;
  const before = await stored(h, login);
  expect(before).toMatchObject({
    company_name: '1E2',
    last_name: '1E2',
    type_display: '1.50E1',
    language: '-0',
    permissions: [
      { type: '-0', variable_name: 'v', name: '1.5e-3', has_access: true },
      { type: 'productFamily', variable_name: '1.5e-3', name: 'Quote approval for partner organizations', has_access: true },
      { type: 'productFamily', variable_name: '100', name: '100', has_access: false },
      { type: 'productFamily', variable_name: '1E2', name: '1E2', has_access: true },
    ],
  });
  return { login, before };
}

describe('a number stored as text keeps its spelling when a run takes it from the stored record', () => {
  it('the integration feed alone reads the user: the company feed’s permissions and names are kept as written, nothing logged', async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const { login, before } = await spelledUser(h);
    // The host read misses the user (an incremental window); the integration read returns it.
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    scriptRequests(h.sim, (req) => {
      if (req.path === HOST_USERS_PATH) req.reply(EMPTY_PAGE);
    });
    const run = await h.sync();
    expect(run.streams.find((s) => s.stream === 'integrationUsers')!.received).toBeGreaterThanOrEqual(1);
    expect(await changesOf(h, run.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    expect(await stored(h, login)).toMatchObject({ last_name: '1E2', type_display: '1.50E1', language: '-0', permissions: before.permissions });
  });

  it('the company feed alone reads the user: the integration feed’s choice fields are kept as written, nothing logged', async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const { login, before } = await spelledUser(h);
    // The host read re-reads the user without the integration feed's fields; the integration read returns nothing.
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    scriptRequests(h.sim, async (req) => {
      if (req.path === INTEGRATION_USERS_PATH) req.reply(EMPTY_PAGE);
      if (req.path === HOST_USERS_PATH)
        req.reply(
          editPage(await req.real(), (page) => {
            for (const item of page.items) {
              if (item.login !== login) continue;
              item.accessPermissions = PERMISSIONS;
              for (const key of ['type', 'language', 'company']) Reflect.deleteProperty(item, key);
            }
          }),
        );
    });
    const run = await h.sync();
    expect(run.streams.find((s) => s.stream === 'companies/_host')!.received).toBeGreaterThanOrEqual(1);
    expect(await changesOf(h, run.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    expect(await stored(h, login)).toMatchObject({
      company_name: '1E2',
      last_name: '1E2',
      type_display: '1.50E1',
      language: '-0',
      permissions: before.permissions,
    });
  });

  it('a field the integration feed sends in another spelling of the same number is a change, and logged', async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const { login } = await spelledUser(h);
    // The integration feed now spells type's displayValue 15.0 (the value jsonb gives back for 1.50E1); the host read misses the user.
    h.sim.updateUser('_host', login, { type: new RawJson('{"value":"FullAccess","displayValue":15.0}') });
    scriptRequests(h.sim, (req) => {
      if (req.path === HOST_USERS_PATH) req.reply(EMPTY_PAGE);
    });
    const run = await h.sync();
    const [change] = await h.t.query<{ diff: Raw }>(`SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [run.runId, login]);
    expect(change!.diff.type_display).toEqual({ old: '1.50E1', new: '15.0' });
    expect(Object.keys(change!.diff).sort()).toEqual(['date_modified', 'type_display']);
    expect(await stored(h, login)).toMatchObject({ last_name: '1E2', type_display: '15.0' });
  });
});

/**
 * Groups named, labelled and typed by numbers: two whose names differ only in the spelling of one
 * number (1E2 and "100", two groups), a label and a type that jsonb respells (1.50E1, -0).
 */
const GROUPS = parseExactJson(
  '{"items":[{"variableName":1E2,"label":1.50E1,"type":"-0"},{"variableName":"100","label":"hundred","type":-0},' +
    '{"VariableName":"g","Label":1E2,"type":null,"note":"kept"}]}',
);

/** The user's group rows and the site's groups, and what the runs logged of groups. */
async function storedGroups(h: Harness, login: string) {
  const members = await h.t.query<Raw>(
    `SELECT g.group_variable_name AS variable_name FROM cpq.user_groups g JOIN cpq.users u ON u.id = g.user_id WHERE u.login = $1 ORDER BY g.group_variable_name COLLATE "C"`,
    [login],
  );
  const groups = await h.t.query<Raw>(`SELECT variable_name, label, type, valid_from::text FROM cpq.groups ORDER BY variable_name COLLATE "C"`);
  const [logged] = await h.t.query<Raw>(
    `SELECT (SELECT count(*) FROM cpq.group_changes)::int AS group_changes, (SELECT count(*) FROM cpq.group_versions)::int AS group_versions,
            (SELECT count(*) FROM cpq.user_group_versions)::int AS user_group_versions`,
  );
  return { members: members.map((m) => m.variable_name), groups, logged };
}

describe('a group named, labelled or typed by a number keeps its spelling when a run takes the groups from the stored record', () => {
  it('the integration feed reads the user without its groups (list and detail carry no items): groups and labels kept as written, nothing logged', async ({
    startHarness,
  }) => {
    const h = await startHarness(site);
    await h.sync();
    const login = String(h.sim.integrationUsers()[0]!.login);
    const withGroups = (groups: unknown) => (page: { items: Raw[] }) => page.items.forEach((u) => u.login === login && (u.groups = groups));
    // The integration feed's groups count for an integration user (both feeds read it).
    scriptRequests(h.sim, async (req) => {
      if (req.path === INTEGRATION_USERS_PATH) req.reply(editPage(await req.real(), withGroups(GROUPS)));
    });
    await h.sync();
    const before = await storedGroups(h, login);
    expect(before.members).toEqual(['100', '1E2', 'g']);
    expect(before.groups.filter((g) => ['100', '1E2', 'g'].includes(g.variable_name as string))).toMatchObject([
      { variable_name: '100', label: 'hundred', type: '-0' },
      { variable_name: '1E2', label: '1.50E1', type: '-0' },
      { variable_name: 'g', label: '1E2', type: null },
    ]);
    // The host read misses the user; the integration list and the detail say where its groups are, without them.
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    const links = { links: [{ rel: 'related', href: `${h.sim.baseUrl}/cpq/rest/v19/integrationUsers/x/groups` }] };
    scriptRequests(h.sim, async (req) => {
      if (req.path === HOST_USERS_PATH) req.reply(EMPTY_PAGE);
      else if (req.path === INTEGRATION_USERS_PATH) req.reply(editPage(await req.real(), withGroups(links)));
      else if (req.path.startsWith(`${INTEGRATION_USERS_PATH}/`)) {
        const detail = parseExactJson(await req.real()) as Raw;
        req.reply(JSON.stringify({ ...detail, groups: links }));
      }
    });
    const run = await h.sync();
    expect(run.streams.find((s) => s.stream === 'integrationUsers')!.received).toBeGreaterThanOrEqual(1);
    expect(h.sim.requests.some((r) => r.path.startsWith(`${INTEGRATION_USERS_PATH}/`))).toBe(true);
    expect(await changesOf(h, run.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    expect(await storedGroups(h, login)).toEqual(before);
  });
});
