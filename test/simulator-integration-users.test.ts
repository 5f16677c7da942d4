import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CpqSimulator, RawJson } from '../src/simulator/index.js';

/*
 * The simulator's integration-user writes (POST and PATCH /cpq/rest/v19/integrationUsers, as
 * ../shared/cpq-api/integration-users-v19.txt shows them) and the shapes it can send for the
 * generative tests: raw JSON text for custom fields, a chosen spelling for documented fields,
 * exact records without generated defaults.
 */

const PATH = '/cpq/rest/v19/integrationUsers';
const NOW = new Date('2026-01-02T03:04:05.678Z');

let sim: CpqSimulator;
let base: string;

beforeEach(async () => {
  sim = new CpqSimulator({ pathPrefix: '/cpq', usersPerCompany: 2, integrationUsers: 1, partnerCompanies: 1, now: () => NOW });
  base = await sim.start();
});
afterEach(async () => {
  await sim.stop();
});

async function send(method: string, path: string, body: unknown): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

async function getText(path: string): Promise<string> {
  const response = await fetch(`${base}${path}`);
  expect(response.status, path).toBe(200);
  return response.text();
}

describe('POST /cpq/rest/v19/integrationUsers', () => {
  it('creates a host user bound to the OAuth client and answers 201 with the record its GET returns', async () => {
    const created = await send('POST', PATH, {
      oauthClientId: 'c0ffee',
      groups: { items: [{ variableName: 'adminAccessGroupsOnly' }, { variableName: 'custom1', label: 'Custom 1', type: 'Sales' }] },
    });
    expect(created.status).toBe(201);
    const record = created.json;
    expect(record.login).toBe('_custom_c0ffee');
    expect(record.oauthClientId).toBe('c0ffee');
    expect(record.dateAdded).toBe(NOW.toISOString());
    expect(record.dateModified).toBe(NOW.toISOString());
    expect(record.company).toEqual({ name: 'cpq-sim', loginName: '_host' });
    expect(typeof record.partyNumber).toBe('string');
    // partyId travels as exact digits (> 2^53)
    expect(created.text).toMatch(/"partyId":\d{18}[,}]/);
    expect(record.groups, 'the answer is the record without expand').toBeUndefined();

    const partyNumber = record.partyNumber as string;
    const detail = await getText(`${PATH}/${partyNumber}`);
    expect(detail).toBe(created.text);
    const expanded = JSON.parse(await getText(`${PATH}/${partyNumber}?expand=groups`)) as { groups: { items: unknown[] } };
    expect(expanded.groups.items).toEqual([
      { variableName: 'adminAccessGroupsOnly', label: 'Admin Access- Groups', type: 'Administrator' },
      { variableName: 'custom1', label: 'Custom 1', type: 'Sales' },
    ]);
    const list = JSON.parse(await getText(PATH)) as { items: { login: string }[] };
    expect(list.items.map((u) => u.login)).toContain('_custom_c0ffee');
    expect(sim.user('_host', '_custom_c0ffee')?.oauthClientId).toBe('c0ffee');
  });

  it.each([
    ['no oauthClientId', { groups: { items: [] } }, 400, 'Field "oauthClientId" is required.'],
    ['an empty oauthClientId', { oauthClientId: ' ' }, 400, 'Field "oauthClientId" must be a non-empty string.'],
    ['a numeric oauthClientId', { oauthClientId: 12 }, 400, 'Field "oauthClientId" must be a non-empty string.'],
    ['groups without items', { oauthClientId: 'a', groups: [] }, 400, 'Field "groups" must be an object with an "items" array.'],
    [
      'a group without variableName',
      { oauthClientId: 'a', groups: { items: [{ label: 'x' }] } },
      400,
      'Field "groups.items[0].variableName" must be a non-empty string.',
    ],
    ['a field it cannot set', { oauthClientId: 'a', login: 'x' }, 400, 'Field "login" cannot be set on an integration user (only oauthClientId and groups).'],
    ['a body that is not JSON', '{"oauthClientId":', 400, 'The request body is not valid JSON.'],
    ['an array body', '[]', 400, 'The request body must be a JSON object.'],
  ])('refuses %s with a 400 naming it, and creates nothing', async (_name, body, status, detail) => {
    const before = sim.integrationUsers().length;
    const answer = await send('POST', PATH, body);
    expect(answer.status).toBe(status);
    expect(answer.json).toEqual({ title: 'Bad Request', status, detail });
    expect(sim.integrationUsers()).toHaveLength(before);
  });

  it('refuses a second integration user for the same OAuth client with a 409', async () => {
    expect((await send('POST', PATH, { oauthClientId: 'same' })).status).toBe(201);
    const again = await send('POST', PATH, { oauthClientId: 'same' });
    expect(again.status).toBe(409);
    expect(again.json).toEqual({ title: 'Conflict', status: 409, detail: 'An integration user for OAuth client same already exists.' });
  });

  it('does not exist on a classic site (no /cpq prefix, no integration users)', async () => {
    const classic = new CpqSimulator({ usersPerCompany: 1 });
    const url = await classic.start();
    try {
      const response = await fetch(`${url}${PATH}`, { method: 'POST', body: '{"oauthClientId":"a"}' });
      expect(response.status).toBe(404);
    } finally {
      await classic.stop();
    }
  });
});

describe('PATCH /cpq/rest/v19/integrationUsers/{partyNumber}', () => {
  it('replaces the groups, moves dateModified and answers 200 with the record', async () => {
    const created = await send('POST', PATH, { oauthClientId: 'p1', groups: { items: [{ variableName: 'excludeMDBParts' }] } });
    const partyNumber = created.json.partyNumber as string;
    const later = new Date('2026-01-03T00:00:00.000Z');
    NOW.setTime(later.getTime());
    try {
      const patched = await send('PATCH', `${PATH}/${encodeURIComponent(partyNumber)}`, {
        groups: { items: [{ label: '3_14159265359', variableName: 'a314159265359', type: 'Administrator' }] },
      });
      expect(patched.status).toBe(200);
      expect(patched.json.dateModified).toBe(later.toISOString());
      expect(patched.json.dateAdded).toBe('2026-01-02T03:04:05.678Z');
      expect(patched.text).toBe(await getText(`${PATH}/${encodeURIComponent(partyNumber)}`));
      expect((sim.user('_host', '_custom_p1')?.groups as { items: unknown[] }).items).toEqual([
        { variableName: 'a314159265359', label: '3_14159265359', type: 'Administrator' },
      ]);
    } finally {
      NOW.setTime(Date.parse('2026-01-02T03:04:05.678Z'));
    }
  });

  it('changes the OAuth client; a patch that changes nothing keeps dateModified', async () => {
    const created = await send('POST', PATH, { oauthClientId: 'p2', groups: { items: [{ variableName: 'g' }] } });
    const path = `${PATH}/${encodeURIComponent(created.json.partyNumber as string)}`;
    NOW.setTime(Date.parse('2026-02-01T00:00:00.000Z'));
    try {
      const same = await send('PATCH', path, { oauthClientId: 'p2', groups: { items: [{ variableName: 'g' }] } });
      expect(same.status).toBe(200);
      expect(same.json.dateModified).toBe('2026-01-02T03:04:05.678Z');
      const moved = await send('PATCH', path, { oauthClientId: 'p2-new' });
      expect(moved.json.oauthClientId).toBe('p2-new');
      expect(moved.json.login).toBe('_custom_p2');
      expect(moved.json.dateModified).toBe('2026-02-01T00:00:00.000Z');
    } finally {
      NOW.setTime(Date.parse('2026-01-02T03:04:05.678Z'));
    }
  });

  it('answers 404 for an unknown partyNumber or a user that is not an integration user, 400 for a bad body, 409 for a taken client', async () => {
    expect((await send('PATCH', `${PATH}/nobody`, { groups: { items: [] } })).json).toEqual({
      title: 'Not Found',
      status: 404,
      detail: 'Integration user nobody not found.',
    });
    const hostUser = sim.users('_host').find((u) => u.oauthClientId === undefined)!;
    expect((await send('PATCH', `${PATH}/${encodeURIComponent(hostUser.partyNumber as string)}`, {})).status).toBe(404);
    const a = await send('POST', PATH, { oauthClientId: 'a' });
    await send('POST', PATH, { oauthClientId: 'b' });
    const path = `${PATH}/${encodeURIComponent(a.json.partyNumber as string)}`;
    expect((await send('PATCH', path, { status: 1 })).json.detail).toBe('Field "status" cannot be set on an integration user (only oauthClientId and groups).');
    expect((await send('PATCH', path, { oauthClientId: '' })).status).toBe(400);
    expect((await send('PATCH', path, { oauthClientId: 'b' })).status).toBe(409);
    expect(sim.user('_host', '_custom_a')?.oauthClientId).toBe('a');
  });
});

describe('shapes for generated records', () => {
  it('sends RawJson custom fields as their exact text, in JSON pages and zip exports', async () => {
    const literals = [
      '0.30000000000000004',
      '0.1234567890123456789',
      '1E+400',
      '-0',
      '-0.0e-7',
      '123456789012345678901234567890',
      '"\\u00e9\\ud83d\\ude00"',
      '{"a":[1.50,{"b":null}]}',
    ];
    sim.addUser('partner1', { login: 'raw', score: new RawJson(literals[0]!), nested: { list: literals.map((l) => new RawJson(l)) } }, { exact: true });
    const page = await getText('/cpq/rest/v16/companies/partner1/users?q=' + encodeURIComponent('{"login":"raw"}'));
    expect(page).toContain(`"score":${literals[0]}`);
    expect(page).toContain(`"nested":{"list":[${literals.join(',')}]}`);
    // exact: the record holds only what was given (no generated names, dates or groups)
    expect(sim.user('partner1', 'raw')).toEqual({ login: 'raw', score: new RawJson(literals[0]!), nested: { list: literals.map((l) => new RawJson(l)) } });
    expect(() => new RawJson('0.1.2')).toThrow(SyntaxError);
  });

  it('sends documented fields under the spelling a test chose, drift on or off', async () => {
    sim.addUser(
      'partner1',
      { login: 'spelled', lastName: 'Smith', isUserAdminPermEnabled: true, dateModified: '2025-01-01T00:00:00+02:00' },
      {
        exact: true,
        spelling: { lastName: 'LASTNAME', isUserAdminPermEnabled: 'isSuperUserPermEnabled', dateModified: 'datemodified' },
      },
    );
    const page = JSON.parse(await getText('/cpq/rest/v16/companies/partner1/users?q=' + encodeURIComponent('{"login":"spelled"}'))) as {
      items: Record<string, unknown>[];
    };
    const { links: _links, ...record } = page.items[0]!;
    expect(record).toEqual({ login: 'spelled', LASTNAME: 'Smith', isSuperUserPermEnabled: true, datemodified: '2025-01-01T00:00:00+02:00' });
    expect(sim.fieldRenames('partner1', 'spelled')).toEqual({
      lastName: 'LASTNAME',
      isUserAdminPermEnabled: 'isSuperUserPermEnabled',
      dateModified: 'datemodified',
    });
    // filters still use the canonical field, as CPQ's would
    const filtered = JSON.parse(
      await getText('/cpq/rest/v16/companies/partner1/users?q=' + encodeURIComponent('{"dateModified":{"$gte":"2024-12-31T00:00:00.000Z"},"login":"spelled"}')),
    ) as { items: unknown[] };
    expect(filtered.items).toHaveLength(1);
  });
});
