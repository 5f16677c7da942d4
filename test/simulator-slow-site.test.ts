import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { byCodeUnit, get, logins, q, withSimulator } from './helpers/simulator-http.js';

/*
 * The simulator as a slow, rate-limited CPQ (latency, a limit of requests in flight, the most it
 * ever had), and its keyset pages bounded by login from both sides (a key range), which it serves
 * by binary search: the same users as the general filter gives.
 */

const USERS = '/rest/v16/companies/_host/users';

describe('a slow site', () => {
  it('takes the fixed latency for any request and the per-user part for each user of a page', async () => {
    await withSimulator({ partnerCompanies: 0, usersPerCompany: 60, latency: { fixedMs: 40, perUserMs: 5 } }, async (_sim, base) => {
      const timed = async (limit: number) => {
        const started = performance.now();
        expect((await get(`${base}${USERS}?limit=${limit}`)).status).toBe(200);
        return performance.now() - started;
      };
      expect(await timed(1)).toBeGreaterThanOrEqual(40);
      expect(await timed(50)).toBeGreaterThanOrEqual(40 + 50 * 5 - 5);
    });
  });

  it('answers 429 with Retry-After beyond its limit of requests in flight, and counts the most it had', async () => {
    // Served requests take a second: the four are sent at once, so the third and fourth arrive while the first two are served, however slowly a loaded machine sends them.
    await withSimulator({ partnerCompanies: 0, usersPerCompany: 10, latency: { fixedMs: 1000 }, maxInFlight: 2, retryAfterSeconds: 3 }, async (sim, base) => {
      const answers = await Promise.all(
        [0, 1, 2, 3].map(async () => {
          const started = performance.now();
          const fetched = await get(`${base}${USERS}?limit=1`);
          return { status: fetched.status, retryAfter: fetched.headers.get('retry-after'), ms: performance.now() - started };
        }),
      );
      const refused = answers.filter((a) => a.status === 429);
      expect(answers.filter((a) => a.status === 200)).toHaveLength(2);
      expect(refused).toHaveLength(2);
      // Refused at once, with the Retry-After asked for.
      for (const a of refused) expect(a).toMatchObject({ retryAfter: '3' });
      expect(Math.max(...refused.map((a) => a.ms))).toBeLessThan(500);
      // Two served at once, and at least one refused while they were (a refused one ends at once).
      expect(sim.maxInFlightSeen).toBeGreaterThanOrEqual(3);
      expect(sim.maxInFlightSeen).toBeLessThanOrEqual(4);
      expect(sim.throttled).toBe(2);
      expect(sim.inFlight).toBe(0);
      // Served again once the others are done.
      expect((await get(`${base}${USERS}?limit=1`)).status).toBe(200);
    });
  });
});

describe('key range pages', () => {
  it('a keyset page bounded from below and above holds the users the general filter selects, in order', async () => {
    await withSimulator({ partnerCompanies: 0, usersPerCompany: 40 }, async (sim, base) => {
      const all = sim.users('_host').map((u) => u.login as string);
      // Bounds at logins, between them, and beyond either end.
      const bound = fc.oneof(
        fc.constantFrom(...all),
        fc.constantFrom(...all).map((login) => `${login}~`),
        fc.constantFrom('', '~~~~'),
      );
      const comparison = fc.record({ operator: fc.constantFrom('$gt', '$gte', '$lt', '$lte'), login: bound });
      await fc.assert(
        fc.asyncProperty(fc.array(comparison, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 15 }), async (bounds, limit) => {
          const filter = JSON.stringify({ $and: bounds.map((b) => ({ login: { [b.operator]: b.login } })) });
          const path = `${base}${USERS}?orderby=login:asc&limit=${limit}&offset=0&${q(filter)}`;
          // totalResults=true takes the general path: every user tested against the filter.
          const general = await get(`${path}&totalResults=true`);
          const keyset = await get(path);
          const expected = all.filter((login) =>
            bounds.every((b) =>
              b.operator === '$gt' ? login > b.login : b.operator === '$gte' ? login >= b.login : b.operator === '$lt' ? login < b.login : login <= b.login,
            ),
          );
          expect(logins(general)).toEqual(expected.sort(byCodeUnit).slice(0, limit));
          expect(logins(keyset)).toEqual(logins(general));
          expect(keyset.body.hasMore).toBe(general.body.hasMore);
        }),
        { numRuns: 60 },
      );
    });
  });
});
