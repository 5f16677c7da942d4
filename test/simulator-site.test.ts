import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpqSimulator, type SimulatorOptions } from '../src/simulator/index.js';
import { basic, byCodeUnit, get, items, logins, q, withSimulator, type Json } from './helpers/simulator-http.js';

describe('CPQ simulator', () => {
  // Each test starts a site of its own; this one only shows that they leave others alone.
  const sim = new CpqSimulator({ seed: 7 });

  beforeAll(async () => {
    await sim.start();
  });
  afterAll(async () => {
    await sim.stop();
  });

  describe('integration users (Fusion site)', () => {
    it('lists, expands groups, finds one and 404s unknown ones', async () => {
      await withSimulator({ seed: 3, pathPrefix: '/cpq', hostLoginName: 'cpq-mdb' }, async (fusion, fusionBase) => {
        const list = await get(`${fusionBase}/cpq/rest/v19/integrationUsers`);
        expect(list.status).toBe(200);
        expect(list.body).toMatchObject({ count: 5, hasMore: false });
        const first = items(list)[0] as Json;
        expect(first.company).toEqual({ name: 'cpq-mdb', loginName: 'cpq-mdb' });
        expect(first.partyNumber).toMatch(/^BM_[A-Za-z0-9]{11}$/);
        expect(String((first.links as Json[])[0]?.href)).toContain('/cpq/rest/v19/users/');
        expect('groups' in first).toBe(false);
        for (const user of fusion.integrationUsers()) expect(list.text).toContain(`"partyId":${String(user.partyId)}`);

        const expanded = items(await get(`${fusionBase}/cpq/rest/v19/integrationUsers?expand=groups`));
        expect(expanded.every((u) => Array.isArray((u.groups as Json).items))).toBe(true);

        const detail = await get(`${fusionBase}/cpq/rest/v19/integrationUsers/${String(first.partyNumber)}?expand=groups`);
        expect(detail.status).toBe(200);
        expect(detail.body.oauthClientId).toBe(first.oauthClientId);
        expect(Array.isArray((detail.body.groups as Json).items)).toBe(true);
        const detailPlain = await get(`${fusionBase}/cpq/rest/v19/integrationUsers/${String(first.partyNumber)}`);
        expect('groups' in detailPlain.body).toBe(false);

        expect((await get(`${fusionBase}/cpq/rest/v19/integrationUsers/BM_unknown`)).status).toBe(404);
        const regular = fusion.users('partner1')[0] as Json;
        expect((await get(`${fusionBase}/cpq/rest/v19/integrationUsers/${String(regular.partyNumber)}`)).status).toBe(404);

        // Fusion paths carry the prefix; classic ones are gone.
        expect((await get(`${fusionBase}/cpq/rest/v19/companies/_host/users?limit=1`)).status).toBe(200);
        expect((await get(`${fusionBase}/rest/v19/companies/_host/users?limit=1`)).status).toBe(404);
        // integration users are also host users
        const hostList = await get(`${fusionBase}/cpq/rest/v19/companies/_host/users?${q('{"isWebServicesOnly":true}')}`);
        expect(logins(hostList).sort(byCodeUnit)).toEqual(fusion.integrationUsers().map((u) => u.login));
      });
    });

    it('never includes groups in the list when the site does not support it', async () => {
      await withSimulator({ pathPrefix: '/cpq', integrationListIncludesGroups: false }, async (_fusion, fusionBase) => {
        const list = items(await get(`${fusionBase}/cpq/rest/v19/integrationUsers?expand=groups`));
        expect(list.some((u) => 'groups' in u)).toBe(false);
        const detail = await get(`${fusionBase}/cpq/rest/v19/integrationUsers/${String((list[0] as Json).partyNumber)}?expand=groups`);
        expect(Array.isArray((detail.body.groups as Json).items)).toBe(true);
      });
    });

    it('can be switched off on a /cpq site', async () => {
      await withSimulator({ pathPrefix: '/cpq', fusion: false, usersPerCompany: 2 }, async (_s, fusionBase) => {
        expect((await get(`${fusionBase}/cpq/rest/v19/integrationUsers`)).status).toBe(404);
      });
    });
  });

  describe('auth', () => {
    it('accepts basic and static bearer credentials and records what was presented', async () => {
      const options: SimulatorOptions = { usersPerCompany: 3, auth: { basic: { username: 'api', password: 's3cret!' }, bearerTokens: ['static-token'] } };
      await withSimulator(options, async (authSim, authBase) => {
        const url = `${authBase}/rest/v19/companies/_host/users`;
        const none = await get(url);
        expect(none.status).toBe(401);
        expect(none.headers.get('www-authenticate')).toContain('Basic');
        const wrong = await get(url, { headers: { authorization: basic('api', 'nope') } });
        expect(wrong.status).toBe(401);
        expect(wrong.text).not.toContain('nope');
        expect((await get(url, { headers: { authorization: basic('api', 's3cret!') } })).status).toBe(200);
        expect((await get(url, { headers: { authorization: 'Bearer static-token' } })).status).toBe(200);
        expect((await get(url, { headers: { authorization: 'Bearer other' } })).status).toBe(401);
        expect(authSim.requests.map((r) => [r.authorization, r.status])).toEqual([
          ['none', 401],
          ['basic', 401],
          ['basic', 200],
          ['bearer', 200],
          ['bearer', 401],
        ]);
      });
    });

    it('grants client-credentials tokens that expire and can be revoked', async () => {
      let clock = new Date('2026-01-01T00:00:00.000Z');
      const options: SimulatorOptions = {
        usersPerCompany: 3,
        now: () => clock,
        auth: { oauth: { clientId: 'client-1', clientSecret: 'secret-1', tokenTtlSeconds: 60 } },
      };
      await withSimulator(options, async (authSim, authBase) => {
        const tokenUrl = `${authBase}/oauth2/v1/token`;
        const form = { 'content-type': 'application/x-www-form-urlencoded' };
        const viaHeader = await get(tokenUrl, {
          method: 'POST',
          headers: { ...form, authorization: basic('client-1', 'secret-1') },
          body: 'grant_type=client_credentials&scope=urn:opc:resource:fusion:site:cpq/',
        });
        expect(viaHeader.status).toBe(200);
        expect(viaHeader.body).toMatchObject({ token_type: 'Bearer', expires_in: 60 });
        const viaForm = await get(tokenUrl, { method: 'POST', headers: form, body: 'grant_type=client_credentials&client_id=client-1&client_secret=secret-1' });
        expect(viaForm.status).toBe(200);
        const rejected = await get(tokenUrl, { method: 'POST', headers: form, body: 'grant_type=client_credentials&client_id=client-1&client_secret=bad' });
        expect(rejected.status).toBe(401);
        expect(rejected.body).toMatchObject({ error: 'invalid_client' });
        const badGrant = await get(tokenUrl, {
          method: 'POST',
          headers: { ...form, authorization: basic('client-1', 'secret-1') },
          body: 'grant_type=password',
        });
        expect(badGrant.status).toBe(400);
        expect(authSim.tokenRequests).toBe(2);

        const url = `${authBase}/rest/v19/companies/_host/users`;
        const bearer = (token: unknown): RequestInit => ({ headers: { authorization: `Bearer ${String(token)}` } });
        expect((await get(url, bearer(viaHeader.body.access_token))).status).toBe(200);
        clock = new Date(clock.getTime() + 61_000);
        expect((await get(url, bearer(viaHeader.body.access_token))).status).toBe(401);

        const fresh = await get(tokenUrl, { method: 'POST', headers: form, body: 'grant_type=client_credentials&client_id=client-1&client_secret=secret-1' });
        expect((await get(url, bearer(fresh.body.access_token))).status).toBe(200);
        authSim.revokeTokens();
        expect((await get(url, bearer(fresh.body.access_token))).status).toBe(401);
        expect(authSim.tokenRequests).toBe(3);
      });
    });

    it('has no token endpoint without oauth', async () => {
      await withSimulator({ usersPerCompany: 1 }, async (_s, plainBase) => {
        expect((await get(`${plainBase}/oauth2/v1/token`, { method: 'POST', body: 'grant_type=client_credentials' })).status).toBe(404);
      });
    });
  });

  describe('faults', () => {
    it('sends a status with headers the given number of times', async () => {
      await withSimulator({ usersPerCompany: 3 }, async (faultSim, faultBase) => {
        const url = `${faultBase}/rest/v19/companies/_host/users`;
        faultSim.addFault({ match: { path: '/rest/v19/companies/_host/users' }, status: 429, headers: { 'Retry-After': '2' }, times: 2 });
        const first = await get(url);
        expect(first.status).toBe(429);
        expect(first.headers.get('retry-after')).toBe('2');
        expect((await get(url)).status).toBe(429);
        expect((await get(url)).status).toBe(200);

        faultSim.addFault({ match: { query: { offset: '3' } }, status: 503, body: '<html><body>Service Unavailable</body></html>' });
        expect((await get(`${url}?offset=0`)).status).toBe(200);
        const html = await get(`${url}?offset=3`);
        expect(html.status).toBe(503);
        expect(html.headers.get('content-type')).toContain('text/html');
        expect(html.text).toContain('<html>');

        faultSim.addFault({ match: { method: 'GET', path: /\/users$/ }, status: 200, body: '{"items":[{"login":"trunc' });
        expect((await get(url)).text).toBe('{"items":[{"login":"trunc');
        faultSim.addFault({ status: 500, times: Infinity });
        faultSim.clearFaults();
        expect((await get(url)).status).toBe(200);
        expect(faultSim.requests.map((r) => r.status)).toEqual([429, 429, 200, 200, 503, 200, 200]);
      });
    });

    it('resets the connection mid-body', async () => {
      await withSimulator({ usersPerCompany: 50 }, async (faultSim, faultBase) => {
        faultSim.addFault({ action: 'reset' });
        const response = await fetch(`${faultBase}/rest/v19/companies/_host/users`);
        expect(response.status).toBe(200);
        await expect(response.text()).rejects.toThrow();
        expect((await get(`${faultBase}/rest/v19/companies/_host/users`)).status).toBe(200);
      });
    });

    it('stalls until the client gives up, and stop() still returns', async () => {
      const faultSim = new CpqSimulator({ usersPerCompany: 3 });
      const faultBase = await faultSim.start();
      // Resolves once the n-th request has reached the simulator and taken its fault (onRequest runs
      // right before; the macrotask after it is past the fault), however long getting there took.
      let arrived = 0;
      const waiting = new Map<number, () => void>();
      faultSim.onRequest = () => waiting.get(++arrived)?.();
      const reached = (n: number) =>
        new Promise<void>((resolve) => (arrived >= n ? resolve() : waiting.set(n, resolve))).then(() => new Promise((r) => setImmediate(r)));
      faultSim.addFault({ action: 'stall' });
      const givingUp = new AbortController();
      const stalled = fetch(`${faultBase}/rest/v19/companies/_host/users`, { signal: givingUp.signal });
      await reached(1);
      givingUp.abort();
      await expect(stalled).rejects.toThrow();
      faultSim.addFault({ action: 'stall' });
      const pending = fetch(`${faultBase}/rest/v19/companies/_host/users`).catch((error: unknown) => error);
      await reached(2);
      await faultSim.stop();
      expect(await pending).toBeInstanceOf(Error);
      expect(faultSim.requests.map((r) => r.status)).toEqual([0, 0]);
    });
  });

  describe('mutations', () => {
    it('lets onRequest change data between two page requests', async () => {
      await withSimulator({ usersPerCompany: 10, integrationUsers: 0, partnerCompanies: 0 }, async (mutSim, mutBase) => {
        const url = `${mutBase}/rest/v19/companies/_host/users?orderby=login&limit=5`;
        const before = sim.users('_host'); // unrelated simulator stays untouched
        const all = mutSim.users('_host').map((u) => u.login as string);
        mutSim.onRequest = (req) => {
          if (req.index === 1) mutSim.deleteUser('_host', all[0] as string);
        };
        const page1 = logins(await get(url));
        const page2 = logins(await get(`${url}&offset=5`));
        expect(page1).toEqual(all.slice(0, 5));
        // the deletion shifted the second page: all[5] is skipped, as Oracle warns
        expect(page2).toEqual(all.slice(6, 10));
        expect(mutSim.requests[1]?.query).toMatchObject({ offset: '5' });
        expect(sim.users('_host')).toEqual(before);
      });
    });

    it('bumps dateModified unless touch is false, and is visible over HTTP', async () => {
      let clock = new Date('2026-02-03T04:05:06.789Z');
      await withSimulator({ usersPerCompany: 10, now: () => clock }, async (mutSim, mutBase) => {
        const login = mutSim.users('partner1')[0]?.login as string;
        const original = mutSim.user('partner1', login) as Json;

        mutSim.updateUser('partner1', login, { lastName: 'Changed' }, { touch: false });
        expect(mutSim.user('partner1', login)).toMatchObject({ lastName: 'Changed', dateModified: original.dateModified });

        mutSim.updateUser('partner1', login, { email: 'new@example.com' });
        expect(mutSim.user('partner1', login)?.dateModified).toBe('2026-02-03T04:05:06.789Z');

        clock = new Date('2026-02-04T00:00:00.000Z');
        mutSim.addGroup('partner1', login, { variableName: 'newGroup', label: 'New Group', type: 'Sales' });
        const withGroup = mutSim.user('partner1', login) as Json;
        expect(withGroup.dateModified).toBe('2026-02-04T00:00:00.000Z');
        expect((withGroup.groups as { items: Json[] }).items.map((g) => g.variableName)).toContain('newGroup');

        clock = new Date('2026-02-05T00:00:00.000Z');
        mutSim.removeGroup('partner1', login, 'newGroup', { touch: false });
        const removed = mutSim.user('partner1', login) as Json;
        expect(removed.dateModified).toBe('2026-02-04T00:00:00.000Z');
        expect((removed.groups as { items: Json[] }).items.map((g) => g.variableName)).not.toContain('newGroup');

        mutSim.setAccessPermission('partner1', login, { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: false });
        const perms = (mutSim.user('partner1', login)?.accessPermissions as { items: Json[] }).items;
        expect(perms.filter((p) => p.variableName === 'laptops')).toEqual([
          { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: false },
        ]);
        expect(mutSim.user('partner1', login)?.dateModified).toBe('2026-02-05T00:00:00.000Z');

        // copies are deep: editing one changes nothing stored
        ((mutSim.user('partner1', login) as Json).status as Json).value = 42;
        expect(((mutSim.user('partner1', login) as Json).status as Json).value).not.toBe(42);

        const added = mutSim.addUser('partner1', { firstName: 'Ada', partyId: 987654321987654321n });
        expect(mutSim.user('partner1', added)).toMatchObject({
          firstName: 'Ada',
          dateAdded: '2026-02-05T00:00:00.000Z',
          dateModified: '2026-02-05T00:00:00.000Z',
        });
        const url = `${mutBase}/rest/v19/companies/partner1/users?orderby=login`;
        const listed = await get(url);
        expect(logins(listed)).toContain(added);
        expect(listed.text).toContain('"partyId":987654321987654321');
        const changed = await get(`${url}&${q('{"dateModified":{"$gte":"2026-01-01T00:00:00.000Z"}}')}`);
        expect(logins(changed).sort(byCodeUnit)).toEqual([added, login].sort(byCodeUnit));

        mutSim.deleteUser('partner1', added);
        expect(logins(await get(url))).not.toContain(added);

        expect(() => mutSim.updateUser('nope', login, {})).toThrow();
        expect(() => mutSim.updateUser('partner1', 'nobody', {})).toThrow();
        expect(() => mutSim.addGroup('partner1', 'nobody', { variableName: 'x', label: 'x', type: 'Sales' })).toThrow();
        expect(() => mutSim.deleteUser('partner1', 'nobody')).toThrow();
        expect(() => mutSim.addUser('nope')).toThrow();
        expect(() => mutSim.addUser('partner1', { login })).toThrow();
      });
    });
  });
});
