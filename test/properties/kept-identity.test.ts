import fc from 'fast-check';
import { describe, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import { runSync } from '../../src/sync/run.js';
import { expectIdentityFromHistory } from '../helpers/db-equals-simulator.js';
import { startHarness } from '../helpers/harness.js';
import { editPage, scriptRequests } from '../helpers/scripted-pages.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * The dateAdded and CPQ id the merge keeps of a login's holder (cpq.user_known_identity) are those
 * the history says (expectIdentityFromHistory: migration 0038's reading of the versions, the rule
 * cpq.admin_rights_as_of follows), after every run, through what changes who holds a login and what
 * a read may send: fields sent as null and as other values, logins given to someone new, users
 * deleted and added, JSON pages, incremental reads and CSV exports, a first load direct or in merge
 * batches, and a user read twice in one run (the second page starting with the first page's last
 * user again, its id or dateAdded other or null), which reinserts a user the run first stores
 * (review GP: no other property sent a user twice in the run that first stores it).
 */

const COMPANY = '_host';
const DATES = [null, '2030-01-01T00:00:00.000Z', '2031-01-01T00:00:00.000Z'] as const;
const IDS = [null, 1111, 2222] as const;
const identity = fc.record({ id: fc.constantFrom(...IDS), dateAdded: fc.constantFrom(...DATES) });
type Identity = { id: number | null; dateAdded: string | null };

type Step =
  | { kind: 'send'; who: number; fields: Identity }
  | { kind: 'give the login to someone new'; who: number; fields: Identity }
  | { kind: 'delete'; who: number }
  | { kind: 'add'; fields: Identity }
  | { kind: 'run'; read: 'full' | 'incremental' | 'csv'; twice: Identity | null };

const who = fc.nat({ max: 8 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('send' as const), who, fields: identity }),
  fc.record({ kind: fc.constant('give the login to someone new' as const), who, fields: identity }),
  fc.record({ kind: fc.constant('delete' as const), who }),
  fc.record({ kind: fc.constant('add' as const), fields: identity }),
  fc.record({
    kind: fc.constant('run' as const),
    read: fc.constantFrom<'full' | 'incremental' | 'csv'>('full', 'incremental', 'csv'),
    twice: fc.option(identity, { nil: null }),
  }),
);

describe('the identity the merge keeps (property)', () => {
  it(
    'after every run it is the one the history says, a user read twice in the run that first stores it included',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.boolean(), identity, fc.array(step, { maxLength: 12 }), async (direct, firstTwice, steps) => {
          const h = await startHarness(
            { partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 2, zipExport: { entries: [{ format: 'csv' }] } },
            { CPQ_COMPANIES: COMPANY, CPQ_PAGE_SIZE: '4', SYNC_MERGE_BATCH_USERS: '2', SYNC_DIRECT_FIRST_LOAD: String(direct) },
          );
          try {
            // The run's second page of users starts with its first page's last user again, `twice`
            // its identity (pages of 4; the page keeps its size).
            let twice: Identity | null = null;
            let page = 0;
            let firstPage: Record<string, unknown>[] = [];
            scriptRequests(h.sim, async (req) => {
              if (!req.path.endsWith('/users') || twice === null) return;
              const at = page++;
              if (at === 0) {
                const text = await req.real();
                firstPage = [];
                editPage(text, (p) => firstPage.push(...p.items));
                req.reply(text);
              } else if (at === 1 && firstPage.length > 0) {
                const again = { ...firstPage.at(-1)!, ...twice };
                req.reply(
                  editPage(await req.real(), (p) => {
                    p.items.unshift(again);
                    if (p.hasMore) p.items.splice(-1);
                  }),
                );
              }
            });
            const run = async (read: 'full' | 'incremental' | 'csv', sentTwice: Identity | null, what: string) => {
              twice = read === 'csv' ? null : sentTwice;
              page = 0;
              if (read === 'csv') await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log }, { full: true });
              else await h.sync({ full: read === 'full' });
              await expectIdentityFromHistory(h.t, what);
            };
            await run('full', firstTwice, 'the first run');
            let added = 0;
            for (const [n, s] of steps.entries()) {
              const what = `step ${n + 1} (${JSON.stringify(s)})`;
              const logins = h.sim.users(COMPANY).map((u) => String(u.login));
              const login = 'who' in s ? logins[s.who % logins.length] : undefined;
              if (s.kind === 'run') await run(s.read, s.twice, what);
              else if (s.kind === 'add') h.sim.addUser(COMPANY, { login: `added${added++}`, ...s.fields });
              else if (login === undefined) continue;
              else if (s.kind === 'send') h.sim.updateUser(COMPANY, login, s.fields);
              else if (s.kind === 'delete') h.sim.deleteUser(COMPANY, login);
              else {
                h.sim.deleteUser(COMPANY, login);
                h.sim.addUser(COMPANY, { login, ...s.fields });
              }
            }
            await run('full', null, 'the last run');
          } finally {
            await h.close();
          }
        }),
        {
          ...runs(4, propertyTimeout(200_000)),
          // Review GN's case first: merge batches, the repeated user's later copy with neither field.
          examples: [[false, { id: null, dateAdded: null }, []]] as [boolean, Identity, Step[]][],
        },
      );
    },
    propertyTimeout(200_000),
  );
});
