import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseExactJson, stringifyExactJson } from '../../src/exact-json.js';
import { startHarness } from '../helpers/harness.js';
import { editPage, scriptRequests } from '../helpers/scripted-pages.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * An integration user's fields no column names (custom fields), sent by one feed, the other or
 * both, while runs read the user from both feeds or from one alone (README, One-feed fields;
 * cpq.user_feed_fields). The truth after every run: the row's custom fields are those of the
 * company feed's last record of the user and of the integration feed's last record, together,
 * each with the value its feed last sent; and the run's change row names exactly the custom
 * fields that changed (`raw.<field>`), none invented, none missed. A field both feeds send has one
 * value on the site (one user's attribute): the same in both, as it is here.
 */

const INTEGRATION_USERS_PATH = '/cpq/rest/v19/integrationUsers';
const HOST_USERS_PATH = '/cpq/rest/v16/companies/_host/users';
const EMPTY_PAGE = '{"items":[],"hasMore":false}';

type Fields = Record<string, number>;
const COMPANY_FEED = ['k1', 'k2', 's1', 's2'];
const INTEGRATION_FEED = ['i1', 'i2', 's1', 's2'];
/** The value of a field both feeds may send: one per field, the site's. */
const SHARED: Fields = { s1: 100, s2: 200 };

type Reads = 'both' | 'integration alone' | 'company alone';
interface Step {
  reads: Reads;
  company: Fields;
  integration: Fields;
}

/** Some of `names`, each with a value (a shared field's is the site's). */
const fieldsOf = (names: string[]): fc.Arbitrary<Fields> =>
  fc
    .subarray(names)
    .chain((chosen) =>
      fc
        .tuple(...chosen.map((name) => (name in SHARED ? fc.constant(SHARED[name]!) : fc.integer({ min: 0, max: 2 }))))
        .map((values) => Object.fromEntries(chosen.map((name, i) => [name, values[i]!]))),
    );

const step: fc.Arbitrary<Step> = fc.record({
  reads: fc.constantFrom<Reads>('both', 'integration alone', 'company alone'),
  company: fieldsOf(COMPANY_FEED),
  integration: fieldsOf(INTEGRATION_FEED),
});
const show = (s: Step) => `${s.reads}: company ${JSON.stringify(s.company)}, integration ${JSON.stringify(s.integration)}`;

const POOL = new Set([...COMPANY_FEED, ...INTEGRATION_FEED]);
const customOf = (raw: Record<string, unknown>) => Object.fromEntries(Object.entries(raw).filter(([key]) => POOL.has(key)));
/** The fields whose values differ between two sets (one lacking a field differs from one having it). */
const changed = (a: Fields, b: Fields) => [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((key) => a[key] !== b[key]).sort();

describe('custom fields of an integration user read from one feed or both (property)', () => {
  it(
    "after every run the row's custom fields are each feed's last record's, and the change row names exactly those that changed",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fieldsOf(COMPANY_FEED),
          fieldsOf(INTEGRATION_FEED),
          fc.array(step, { minLength: 1, maxLength: 6 }),
          async (firstCompany, firstIntegration, steps) => {
            const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 1 });
            try {
              const login = String(h.sim.integrationUsers()[0]!.login);
              let now: Step = { reads: 'both', company: firstCompany, integration: firstIntegration };
              const withFields = (user: Record<string, unknown>, fields: Fields) => Object.assign(user, fields);
              scriptRequests(h.sim, async (req) => {
                const host = req.path === HOST_USERS_PATH;
                if (host || req.path === INTEGRATION_USERS_PATH) {
                  const misses = now.reads === (host ? 'integration alone' : 'company alone');
                  if (misses) req.reply(EMPTY_PAGE);
                  else
                    req.reply(
                      editPage(await req.real(), (p) => p.items.forEach((u) => u.login === login && withFields(u, host ? now.company : now.integration))),
                    );
                }
                if (req.path.startsWith(`${INTEGRATION_USERS_PATH}/`))
                  req.reply(stringifyExactJson(withFields(parseExactJson(await req.real()) as Record<string, unknown>, now.integration)));
              });
              const customStored = async () => {
                const [row] = await h.t.query<{ raw: string }>(`SELECT raw::text AS raw FROM cpq.users WHERE company_login = '_host' AND login = $1`, [login]);
                return customOf(parseExactJson(row!.raw) as Record<string, unknown>);
              };
              // The feeds' last records, and what the row must hold: this run's records over the other feed's last.
              let lastCompany = firstCompany;
              let lastIntegration = firstIntegration;
              await h.sync();
              let expected: Fields = { ...lastCompany, ...lastIntegration };
              expect(await customStored(), 'after the first run (both feeds)').toEqual(expected);
              for (const [i, s] of steps.entries()) {
                now = s;
                // An edit dates the user in both reads' windows; a feed that misses it returns nothing.
                h.sim.updateUser('_host', login, { lastLogin: new Date(Date.now() + i * 1000).toISOString() });
                const result = await h.sync();
                if (s.reads !== 'integration alone') lastCompany = s.company;
                if (s.reads !== 'company alone') lastIntegration = s.integration;
                const before = expected;
                expected = s.reads === 'company alone' ? { ...lastIntegration, ...lastCompany } : { ...lastCompany, ...lastIntegration };
                const what = `run ${i + 2} (${show(s)})`;
                expect(await customStored(), `${what}: the row's custom fields`).toEqual(expected);
                const [change] = await h.t.query<{ diff: Record<string, unknown> | null }>(
                  `SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`,
                  [result.runId, login],
                );
                const logged = Object.keys(change?.diff ?? {})
                  .filter((key) => key.startsWith('raw.'))
                  .map((key) => key.slice('raw.'.length))
                  .sort();
                expect(logged, `${what}: the custom fields its change row names`).toEqual(changed(before, expected));
              }
            } finally {
              await h.close();
            }
          },
        ),
        runs(8, propertyTimeout(180_000)),
      );
    },
    propertyTimeout(180_000),
  );
});
