import { describe, expect, it } from 'vitest';
import { CpqSimulator } from '../src/simulator/index.js';

/*
 * A "__proto__" key is an ordinary JSON key: a record holding one (a custom field's object, or a
 * custom field of that name) is sent with it. The simulator copied records by assignment, which
 * set the copy's prototype instead, so it never sent the key, and the generated-users and sites
 * properties, which compare what is stored with what the test meant to send, failed for such
 * records (found by them in CI).
 */
describe('simulator: "__proto__" keys are sent', () => {
  it('in a custom field object and as a custom field of its own', async () => {
    const sim = new CpqSimulator({ seed: 1, partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
    const base = await sim.start(0);
    try {
      sim.addUser('_host', JSON.parse('{"login":"u1","c_obj":{"a":1,"__proto__":[2]},"__proto__":"top"}') as Record<string, unknown>);
      const text = await (await fetch(`${base}/rest/v16/companies/_host/users?limit=10`, { headers: { accept: 'application/json' } })).text();
      const user = (JSON.parse(text) as { items: Record<string, unknown>[] }).items.find((u) => u.login === 'u1')!;
      expect(Object.keys(user)).toContain('__proto__');
      expect(Object.getOwnPropertyDescriptor(user, '__proto__')?.value).toBe('top');
      expect(Object.getOwnPropertyDescriptor(user.c_obj, '__proto__')?.value).toEqual([2]);
      expect(Object.getPrototypeOf(user.c_obj)).toBe(Object.prototype);
    } finally {
      await sim.stop();
    }
  });
});
