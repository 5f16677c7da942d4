import { describe, expect, it } from 'vitest';
import { CpqSimulator, RawJson } from '../src/simulator/index.js';

/*
 * A record may say a key twice (JSON allows it; the last copy counts, README "A record is read as
 * JSON reads it"). The property generators send identity keys so (login, dateModified, partyNumber,
 * company...), which the simulator reads itself to filter, sort and find users: it holds the last
 * copy and sends the earlier ones before it, under the key as sent.
 */
describe('simulator: keys said twice (earlierCopies)', () => {
  it('sends each earlier copy before the value, and filters, sorts and finds users by the last', async () => {
    const sim = new CpqSimulator({ seed: 1, partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
    const base = await sim.start(0);
    const get = async (path: string) => (await fetch(`${base}/rest/v16/companies/_host/${path}`, { headers: { accept: 'application/json' } })).text();
    try {
      sim.addUser('_host', { login: 'a', dateModified: '2025-01-01T00:00:00Z' }, { exact: true });
      sim.addUser(
        '_host',
        { login: 'b', dateModified: '2025-06-01T00:00:00Z', lastName: 'Last' },
        {
          exact: true,
          spelling: { lastName: 'lastname' },
          earlierCopies: { login: ['a', null], dateModified: ['2020-01-01T00:00:00Z'], lastName: [{ x: 1 }] },
        },
      );
      const page = await get(`users?q=${encodeURIComponent('{"dateModified":{"$gte":"2025-03-01T00:00:00Z"}}')}&orderby=login:desc`);
      expect(page).toContain('{"login":"a","login":null,"login":"b","dateModified":"2020-01-01T00:00:00Z","dateModified":"2025-06-01T00:00:00Z"');
      expect(page).toContain('"lastname":{"x":1},"lastname":"Last"');
      expect((JSON.parse(page) as { items: { login: string }[] }).items.map((u) => u.login)).toEqual(['b']);
      // In login order by the last copies, and found by it.
      expect((JSON.parse(await get('users?orderby=login:desc')) as { items: { login: string }[] }).items.map((u) => u.login)).toEqual(['b', 'a']);
      expect((JSON.parse(await get('users/b')) as { login: string }).login).toBe('b');
    } finally {
      await sim.stop();
    }
  });

  it("sends a relation's earlier copies before it, and an exact relation text with the relation's links", async () => {
    const sim = new CpqSimulator({ seed: 1, partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
    const base = await sim.start(0);
    try {
      sim.addUser(
        '_host',
        {
          login: 'a',
          groups: new RawJson('{"items":null,"items":[{"variableName":"g"}]}'),
          accessPermissions: { items: [{ type: 'T', variableName: 'p', hasAccess: true }] },
        },
        { exact: true, earlierCopies: { groups: [{ items: [] }], accessPermissions: [null, { items: [{ variableName: 'x' }] }] } },
      );
      const self = `${base}/rest/v16/companies/_host/users/a`;
      const text = await (await fetch(`${self}?expand=groups,accessPermissions`, { headers: { accept: 'application/json' } })).text();
      const links = (relation: string) => `"links":[{"rel":"self","href":"${self}/${relation}"},{"rel":"parent","href":"${self}"}]`;
      expect(text).toContain(`"groups":{"items":[]},"groups":{"items":null,"items":[{"variableName":"g"}],${links('groups')}}`);
      expect(text).toContain(
        `"accessPermissions":null,"accessPermissions":{"items":[{"variableName":"x"}]},"accessPermissions":{"items":[{"type":"T","variableName":"p","hasAccess":true}],${links('accessPermissions')}}`,
      );
    } finally {
      await sim.stop();
    }
  });
});
