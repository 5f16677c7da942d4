import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLosslessNumber } from 'lossless-json';
import { CpqSimulator, parseFilter, stringifyExact } from '../src/simulator/index.js';
import { basic, byCodeUnit, get, items, logins, q, withSimulator, type Json } from './helpers/simulator-http.js';

const TWO_POW_53 = 2n ** 53n;

describe('CPQ simulator', () => {
  const sim = new CpqSimulator({ seed: 7 });
  let base = '';
  let hostUsers = '';

  beforeAll(async () => {
    base = await sim.start();
    hostUsers = `${base}/rest/v19/companies/_host/users`;
  });
  afterAll(async () => {
    await sim.stop();
  });

  describe('generated data', () => {
    it('is identical for the same seed and differs for another', () => {
      const again = new CpqSimulator({ seed: 7 });
      expect(stringifyExact(again.users('partner1'))).toBe(stringifyExact(sim.users('partner1')));
      expect(stringifyExact(again.integrationUsers())).toBe(stringifyExact(sim.integrationUsers()));
      const other = new CpqSimulator({ seed: 8 });
      expect(stringifyExact(other.users('partner1'))).not.toBe(stringifyExact(sim.users('partner1')));
    });

    it('has the documented companies, users, groups and permissions', () => {
      expect(sim.companyLogins()).toEqual(['_host', 'partner1', 'partner2']);
      const partners = sim.users('partner1');
      expect(partners).toHaveLength(100);
      // host: 100 users plus the 5 integration users, one stored record each
      expect(sim.users('_host')).toHaveLength(105);
      const names = partners.map((u) => u.login as string);
      expect(new Set(names).size).toBe(100);
      expect(names).toEqual([...names].sort(byCodeUnit));
      expect(names.some((n) => /[A-Z]/.test(n))).toBe(true);
      expect(names.some((n) => /[._-]/.test(n))).toBe(true);

      const all = [...sim.users('_host'), ...partners, ...sim.users('partner2')];
      const groupCounts = all.map((u) => (u.groups as { items: unknown[] }).items.length);
      expect(Math.min(...groupCounts)).toBeGreaterThanOrEqual(1);
      expect(Math.max(...groupCounts)).toBeLessThanOrEqual(5);
      const averageGroups = groupCounts.reduce((a, b) => a + b, 0) / all.length;
      expect(averageGroups).toBeGreaterThan(2.5);
      expect(averageGroups).toBeLessThan(3.5);
      const permissionCounts = all.map((u) => (u.accessPermissions as { items: unknown[] }).items.length);
      const averagePermissions = permissionCounts.reduce((a, b) => a + b, 0) / all.length;
      expect(averagePermissions).toBeGreaterThan(1.5);
      expect(averagePermissions).toBeLessThan(2.5);
      const permission = all.flatMap((u) => (u.accessPermissions as { items: Json[] }).items)[0];
      expect(Object.keys(permission ?? {}).sort()).toEqual(['hasAccess', 'name', 'type', 'variableName']);

      const bigPartyIds = all.filter((u) => isLosslessNumber(u.partyId) && BigInt(u.partyId.toString()) > TWO_POW_53);
      expect(bigPartyIds.length).toBeGreaterThan(all.length / 2);
      expect(new Set(all.map((u) => String(u.partyId))).size).toBe(all.length);
      expect(all.some((u) => u.lastLogin === null)).toBe(true);
      expect(all.some((u) => !('lastLogin' in u))).toBe(true);
      expect(all.every((u) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(u.dateModified as string))).toBe(true);
      const user = partners[0] as Json;
      expect(user.timeZone).toMatchObject({ value: expect.any(String) as unknown });
      expect((user.status as Json).value === 0 || (user.status as Json).value === 1).toBe(true);
    });

    it('makes integration users host users with oauth clients and large ids', () => {
      const integration = sim.integrationUsers();
      expect(integration).toHaveLength(5);
      for (const user of integration) {
        expect(user.login).toMatch(/^_custom_[0-9a-f]{32}$/);
        expect(user.oauthClientId).toMatch(/^[0-9a-f]{32}$/);
        expect(user.isWebServicesOnly).toBe(true);
        expect(BigInt(String(user.partyId))).toBeGreaterThan(TWO_POW_53);
        expect(user.company).toEqual({ name: expect.any(String) as unknown, loginName: '_host' });
        expect(sim.user('_host', user.login as string)).toEqual(user);
      }
      expect(integration.some((u) => typeof u.id === 'number' && u.id > 2 ** 31)).toBe(true);
    });
  });

  describe('collections', () => {
    it('pages with limit/offset/hasMore/count and totalResults only when asked', async () => {
      const first = await get(`${hostUsers}?limit=7&orderby=login`);
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ offset: 0, limit: 7, count: 7, hasMore: true });
      expect('totalResults' in first.body).toBe(false);
      const rels = (first.body.links as Json[]).map((l) => l.rel);
      expect(rels).toEqual(expect.arrayContaining(['self', 'canonical', 'next']));

      const counted = await get(`${hostUsers}?limit=7&offset=100&totalResults=true&orderby=login`);
      expect(counted.body).toMatchObject({ offset: 100, limit: 7, count: 5, hasMore: false, totalResults: 105 });
      expect((counted.body.links as Json[]).map((l) => l.rel)).not.toContain('next');

      const capped = await get(`${hostUsers}?limit=5000`);
      expect(capped.body).toMatchObject({ limit: 1000, count: 105, hasMore: false });
      const defaults = await get(hostUsers);
      expect(defaults.body).toMatchObject({ offset: 0, limit: 1000, count: 105 });

      const seen: string[] = [];
      for (let offset = 0; ; offset += 20) {
        const page = await get(`${hostUsers}?limit=20&offset=${offset}&orderby=login:asc`);
        seen.push(...logins(page));
        if (!page.body.hasMore) break;
      }
      expect(seen).toEqual(sim.users('_host').map((u) => u.login));

      expect((await get(`${hostUsers}?limit=-1`)).status).toBe(400);
      expect((await get(`${hostUsers}?offset=abc`)).status).toBe(400);
    });

    it('sorts by code unit, descending and on several keys', async () => {
      const asc = logins(await get(`${hostUsers}?orderby=login:asc`));
      expect(asc).toEqual(sim.users('_host').map((u) => u.login));
      const desc = logins(await get(`${hostUsers}?orderby=login:desc`));
      expect(desc).toEqual([...asc].reverse());

      const multi = items(await get(`${hostUsers}?orderby=status.value:desc,dateModified:asc`));
      for (let i = 1; i < multi.length; i++) {
        const prev = multi[i - 1] as Json;
        const cur = multi[i] as Json;
        const prevStatus = (prev.status as Json).value as number;
        const curStatus = (cur.status as Json).value as number;
        expect(prevStatus).toBeGreaterThanOrEqual(curStatus);
        if (prevStatus === curStatus) expect((prev.dateModified as string) <= (cur.dateModified as string)).toBe(true);
      }
      // Missing values sort first: integration users have no lastName.
      const byLastName = items(await get(`${hostUsers}?orderby=lastName`));
      expect(byLastName.slice(0, 5).every((u) => (u.login as string).startsWith('_custom_'))).toBe(true);
      expect((await get(`${hostUsers}?orderby=login:sideways`)).status).toBe(400);
    });

    it('filters with every operator, $and/$or, dotted paths and relaxed syntax', async () => {
      const users = sim.users('_host');
      const pivot = (users[50] as Json).dateModified as string;
      const expectLogins = async (filter: string, predicate: (u: Json) => boolean): Promise<void> => {
        const fetched = await get(`${hostUsers}?${q(filter)}&orderby=login`);
        expect(fetched.status, filter).toBe(200);
        const expected = users.filter(predicate).map((u) => u.login);
        expect(expected.length, `${filter} should select something`).toBeGreaterThan(0);
        expect(logins(fetched), filter).toEqual(expected);
      };
      const active = (u: Json): boolean => (u.status as Json).value === 1;
      await expectLogins('{"status":1}', active);
      await expectLogins('{"status.value":{"$eq":0}}', (u) => !active(u));
      await expectLogins('{"status.value":{"$ne":1}}', (u) => !active(u));
      await expectLogins(`{"dateModified":{"$gt":"${pivot}"}}`, (u) => (u.dateModified as string) > pivot);
      await expectLogins(`{"dateModified":{"$gte":"${pivot}"}}`, (u) => (u.dateModified as string) >= pivot);
      await expectLogins(`{"dateModified":{"$lt":"${pivot}"}}`, (u) => (u.dateModified as string) < pivot);
      await expectLogins(`{"dateModified":{"$lte":"${pivot}"}}`, (u) => (u.dateModified as string) <= pivot);
      await expectLogins('{"oauthClientId":{"$exists":true}}', (u) => 'oauthClientId' in u);
      await expectLogins('{"firstName":{"$exists":false}}', (u) => !('firstName' in u));
      await expectLogins('{"login":{"$gte":"user","$lt":"usf"}}', (u) => (u.login as string) >= 'user' && (u.login as string) < 'usf');
      await expectLogins('{"$and":[{"status":1},{"isWebServicesOnly":true}]}', (u) => active(u) && u.isWebServicesOnly === true);
      await expectLogins('{"$or":[{"status":0},{"language.value":"fr_FR"}]}', (u) => !active(u) || (u.language as Json).value === 'fr_FR');
      await expectLogins('{"company.loginName":"_host"}', () => true);
      await expectLogins('{"groups.items.variableName":"adminAccessGroupsOnly"}', (u) =>
        (u.groups as { items: Json[] }).items.some((g) => g.variableName === 'adminAccessGroupsOnly'),
      );
      // Oracle's relaxed forms: unquoted keys, single quotes, no braces at the top level.
      await expectLogins("{login:{$eq:'user00001'}}", (u) => u.login === 'user00001');
      await expectLogins('$and:[{status:{$lt:1}},{lastLogin:{$exists:true}}]', (u) => !active(u) && 'lastLogin' in u);
      // int64 compared exactly
      const party = (users[3] as Json).partyId as { toString(): string };
      await expectLogins(`{"partyId":${party.toString()}}`, (u) => String(u.partyId) === party.toString());

      for (const bad of ['{status:', '{"login":{"$regex":"x"}}', '{"$nor":[{"a":1}]}', '{"a":1} trailing', '{a:bareword}', '{"$and":[]}']) {
        const fetched = await get(`${hostUsers}?${q(bad)}`);
        expect(fetched.status, bad).toBe(400);
        expect(fetched.headers.get('content-type')).toContain('application/json');
      }
    });

    it('expands groups and access permissions only when asked', async () => {
      const plain = items(await get(`${hostUsers}?limit=3&orderby=login`));
      for (const user of plain) {
        expect('groups' in user).toBe(false);
        expect('accessPermissions' in user).toBe(false);
        expect((user.links as Json[]).some((l) => l.rel === 'child' && String(l.href).endsWith('/groups'))).toBe(true);
      }
      const expanded = items(await get(`${hostUsers}?limit=3&orderby=login&expand=groups,accessPermissions`));
      const canonical = sim.users('_host').slice(0, 3);
      expanded.forEach((user, i) => {
        expect((user.groups as Json).items).toEqual((canonical[i]?.groups as Json).items);
        expect((user.accessPermissions as Json).items).toEqual((canonical[i]?.accessPermissions as Json).items);
      });
      const groupsOnly = items(await get(`${hostUsers}?limit=3&expand=groups`));
      expect(groupsOnly.every((u) => 'groups' in u && !('accessPermissions' in u))).toBe(true);
    });

    it('projects fields', async () => {
      const projected = items(await get(`${base}/rest/v19/companies/partner1/users?fields=login,email`));
      const allowed = new Set(['login', 'email', 'EMAIL', 'links']);
      expect(projected.every((u) => Object.keys(u).every((k) => allowed.has(k)))).toBe(true);
      expect(projected.every((u) => 'login' in u)).toBe(true);
    });

    it('writes int64 partyId digits verbatim', async () => {
      const fetched = await get(`${hostUsers}?orderby=login`);
      const canonical = sim.users('_host');
      const big = canonical.filter((u) => BigInt(String(u.partyId)) > TWO_POW_53);
      expect(big.length).toBeGreaterThan(10);
      for (const user of big) expect(fetched.text).toContain(`"partyId":${String(user.partyId)}`);
      // the trap the simulator exists for: JSON.parse would lose these digits
      const lossy = JSON.parse(fetched.text) as { items: Json[] };
      expect(lossy.items.some((u, i) => String(u.partyId) !== String(canonical[i]?.partyId))).toBe(true);
    });

    it('drifts field names per user and leaves clean output when drift is off', async () => {
      const all = [
        ...items(await get(hostUsers)),
        ...items(await get(`${base}/rest/v19/companies/partner1/users`)),
        ...items(await get(`${base}/rest/v19/companies/partner2/users`)),
      ];
      const lastname = all.filter((u) => 'lastname' in u && !('lastName' in u));
      const superUser = all.filter((u) => 'isSuperUserPermEnabled' in u && !('isUserAdminPermEnabled' in u));
      expect(lastname.length).toBeGreaterThan(5);
      expect(lastname.length).toBeLessThan(all.length * 0.25);
      expect(superUser.length).toBeGreaterThan(5);
      const otherCase = all.filter((u) => ['FirstName', 'EMAIL', 'billcity', 'JobTitle', 'Phone', 'shipzip'].some((k) => k in u));
      expect(otherCase.length).toBe(16); // of 305 users (seed 7)
      expect(all.some((u) => 'customAttr1' in u)).toBe(true);

      const hostItems = items(await get(hostUsers));
      const drifted = hostItems.find((u) => 'lastname' in u) as Json;
      expect(sim.fieldRenames('_host', drifted.login as string)).toMatchObject({ lastName: 'lastname' });
      // filters use canonical names even for drifted users
      const byLastName = await get(`${hostUsers}?${q(JSON.stringify({ login: drifted.login, lastName: drifted.lastname }))}`);
      expect(logins(byLastName)).toEqual([drifted.login]);
      // the same user drifts the same way on every endpoint
      const single = await get(`${base}/rest/v19/users/${String(drifted.partyNumber)}`);
      expect('lastname' in single.body && !('lastName' in single.body)).toBe(true);

      await withSimulator({ seed: 7, drift: false }, async (clean, cleanBase) => {
        const cleanItems = items(await get(`${cleanBase}/rest/v19/companies/_host/users`));
        expect(cleanItems.filter((u) => 'firstName' in u).every((u) => 'lastName' in u && 'isUserAdminPermEnabled' in u)).toBe(true);
        expect(cleanItems.some((u) => 'customAttr1' in u)).toBe(false);
        expect(clean.fieldRenames('_host', 'user00001')).toEqual({});
      });
    });

    it('omits partyId/partyNumber on v16-v18 company users and the company field on company users', async () => {
      for (const version of [16, 17, 18]) {
        const fetched = await get(`${base}/rest/v${version}/companies/_host/users?limit=5`);
        expect(fetched.status).toBe(200);
        expect(items(fetched).every((u) => !('partyId' in u) && !('partyNumber' in u))).toBe(true);
        expect(String(((items(fetched)[0] as Json).links as Json[])[0]?.href)).toContain(`/rest/v${version}/companies/_host/users/`);
      }
      const v19 = items(await get(`${hostUsers}?limit=5`));
      expect(v19.every((u) => 'partyId' in u && 'partyNumber' in u && !('company' in u))).toBe(true);
    });

    it('serves companies, users across companies and one user by partyNumber', async () => {
      const companies = await get(`${base}/rest/v16/companies`);
      expect(items(companies).map((c) => [c.loginName, c.isHost])).toEqual([
        ['_host', true],
        ['partner1', false],
        ['partner2', false],
      ]);
      const across = await get(`${base}/rest/v19/users?totalResults=true&limit=1&${q('{"company.loginName":"partner2"}')}`);
      expect(across.body).toMatchObject({ totalResults: 100, count: 1 });
      expect((items(across)[0] as Json).company).toMatchObject({ loginName: 'partner2' });

      const target = sim.users('partner1')[10] as Json;
      const one = await get(`${base}/rest/v19/users/${String(target.partyNumber)}?expand=groups`);
      expect(one.status).toBe(200);
      expect(one.body.login).toBe(target.login);
      expect(one.text).toContain(`"partyId":${String(target.partyId)}`);
      expect((one.body.groups as Json).items).toEqual((target.groups as Json).items);
      expect((await get(`${base}/rest/v19/users/no-such-party`)).status).toBe(404);
    });

    it('answers 404 for unknown companies and paths, 406 for the zip export', async () => {
      const unknown = await get(`${base}/rest/v19/companies/nope/users`);
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get('content-type')).toContain('application/json');
      expect((await get(`${base}/rest/v15/companies/_host/users`)).status).toBe(404);
      expect((await get(`${base}/rest/v19/parts`)).status).toBe(404);
      expect((await get(`${base}/cpq/rest/v19/companies/_host/users`)).status).toBe(404);
      expect((await get(hostUsers, { method: 'DELETE' })).status).toBe(404);
      expect((await get(hostUsers, { headers: { accept: 'application/zip' } })).status).toBe(406);
    });

    it('does not expose integration endpoints on a classic site', async () => {
      expect((await get(`${base}/cpq/rest/v19/integrationUsers`)).status).toBe(404);
    });
  });

  describe('query parser', () => {
    it('parses strict and relaxed forms to the same condition', () => {
      expect(parseFilter("{createdBy:{$eq:'Matt'}}")).toEqual(parseFilter('{"createdBy":{"$eq":"Matt"}}'));
      expect(parseFilter('$and:[{quantity:{$lt:100}},{discount:{$exists:true}}]')).toEqual(
        parseFilter('{"$and":[{"quantity":{"$lt":100}},{"discount":{"$exists":true}}]}'),
      );
      expect(parseFilter('')).toBeUndefined();
      expect(parseFilter('{}')).toBeUndefined();
      expect(() => parseFilter('{"a":{"$in":[1]}}')).toThrow();
    });
  });
});

describe('keyset pages', () => {
  const sim = new CpqSimulator({ seed: 3, partnerCompanies: 0, usersPerCompany: 300, integrationUsers: 0 });
  beforeAll(async () => {
    await sim.start();
  });
  afterAll(async () => sim.stop());

  const logins = async (query: Record<string, string>) => {
    const url = new URL(`${sim.baseUrl}/rest/v16/companies/_host/users`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const body = (await (await fetch(url)).json()) as { items: { login: string }[]; hasMore: boolean; count: number };
    return { logins: body.items.map((i) => i.login), hasMore: body.hasMore, count: body.count };
  };

  it('answer exactly what filtering the whole collection answers (totalResults forces the full filter)', async () => {
    const all = sim
      .users('_host')
      .map((u) => String(u.login))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const since = String(
      sim
        .users('_host')
        .map((u) => String(u.dateModified))
        .sort()[150],
    );
    for (const after of [all[0]!, all[97]!, all[298]!, all[299]!, 'M', '~']) {
      for (const q of [{ login: { $gt: after } }, { $and: [{ dateModified: { $gte: since } }, { login: { $gt: after } }] }]) {
        const query = { orderby: 'login:asc', limit: '25', offset: '0', q: JSON.stringify(q) };
        const fast = await logins(query);
        const full = await logins({ ...query, totalResults: 'true' });
        expect(fast).toEqual(full);
      }
    }
  });
});

describe('kept views (sorted and filtered users outlive the requests that built them)', () => {
  it('answer what a fresh filter of the current users answers, after every kind of edit', async () => {
    await withSimulator({ seed: 7, partnerCompanies: 0, usersPerCompany: 60, integrationUsers: 3, pathPrefix: '/cpq' }, async (sim, base) => {
      const users = () => sim.users('_host');
      const loginsOf = (list: Record<string, unknown>[]) => list.map((u) => String(u.login)).sort(byCodeUnit);
      const read = async (path: string, query: string) => logins(await get(`${base}/cpq/rest/v19/${path}?orderby=login:asc&limit=1000&${query}`));
      const since = String(
        users()
          .map((u) => String(u.dateModified))
          .sort()[30],
      );
      const window = { dateModified: { $gte: since } };
      const check = async () => {
        const all = loginsOf(users());
        const inWindow = loginsOf(users().filter((u) => String(u.dateModified) >= since));
        const middle = all[Math.floor(all.length / 2)]!;
        expect(await read('companies/_host/users', '')).toEqual(all);
        expect(await read('companies/_host/users', `totalResults=true&${q(JSON.stringify(window))}`)).toEqual(inWindow);
        expect(await read('companies/_host/users', q(JSON.stringify({ $and: [window, { login: { $gt: middle } }] })))).toEqual(
          inWindow.filter((login) => login > middle),
        );
        expect(await read('companies/_host/users', q(JSON.stringify({ lastName: { $gte: 'M' } })))).toEqual(
          loginsOf(users().filter((u) => typeof u.lastName === 'string' && u.lastName >= 'M')),
        );
        expect(await read('integrationUsers', '')).toEqual(loginsOf(users().filter((u) => typeof u.oauthClientId === 'string' && u.oauthClientId !== '')));
      };
      await check();
      const [first, second, third] = loginsOf(users().filter((u) => !u.oauthClientId));
      sim.updateUser('_host', first!, { lastName: 'Zed' }); // content: moves into both filters
      await check();
      sim.updateUser('_host', second!, { login: '~renamed' }); // a login: the order changes
      await check();
      sim.addGroup('_host', third!, { variableName: 'extra', label: 'Extra', type: 'User' });
      await check();
      sim.updateUser('_host', String(sim.integrationUsers()[0]!.login), { oauthClientId: '' }); // no longer an integration user
      expect(sim.integrationUsers()).toHaveLength(2);
      await check();
      sim.addUser('_host', { login: 'aaa-new' });
      await check();
      sim.deleteUser('_host', third!);
      await check();
    });
  });
});

describe('cachePages (the benchmark serves rendered pages again)', () => {
  it('serves the same bytes for the same request in any query order, and never a page older than a change', async () => {
    await withSimulator({ seed: 5, partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0, cachePages: true, zipExport: {} }, async (sim, base) => {
      const path = `${base}/rest/v16/companies/_host/users`;
      const first = await get(`${path}?expand=groups&orderby=login:asc&limit=10`);
      expect(first.status).toBe(200);
      const again = await get(`${path}?limit=10&orderby=login:asc&expand=groups`);
      expect(again.text).toBe(first.text);
      const zip = async () => Buffer.from(await (await fetch(path, { headers: { accept: 'application/zip' } })).arrayBuffer());
      const firstZip = await zip();
      expect(await zip()).toEqual(firstZip);

      const login = logins(first)[0]!;
      sim.updateUser('_host', login, { lastName: 'Changed' });
      const changed = await get(`${path}?expand=groups&orderby=login:asc&limit=10`);
      expect(items(changed).find((u) => u.login === login)!.lastName).toBe('Changed');
      expect(await zip()).not.toEqual(firstZip);
    });
  });

  it('still asks for credentials', async () => {
    const auth = { basic: { username: 'api', password: 's3cret!' } };
    await withSimulator({ usersPerCompany: 2, auth, cachePages: true }, async (_sim, base) => {
      const url = `${base}/rest/v16/companies/_host/users`;
      expect((await get(url, { headers: { authorization: basic('api', 's3cret!') } })).status).toBe(200);
      expect((await get(url)).status).toBe(401);
    });
  });
});
