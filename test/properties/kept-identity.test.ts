import fc from 'fast-check';
import { describe, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import { runSync } from '../../src/sync/run.js';
import { expectIdentityFromHistory } from '../helpers/db-equals-simulator.js';
import { startHarness } from '../helpers/harness.js';
import { repeatInEveryRead } from '../helpers/scripted-pages.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * The dateAdded and CPQ id the merge keeps of a login's holder (cpq.user_known_identity) are those
 * the history says (expectIdentityFromHistory: migration 0038's reading of the versions, the rule
 * cpq.admin_rights_as_of follows), after every run, through what changes who holds a login and what
 * a read may send: fields sent as null and as other values, logins given to someone new, users
 * deleted and added, JSON pages, incremental reads and CSV exports, a first load direct or in merge
 * batches, and a user read twice in one run (the second page starting with a user of the first
 * again, its id or dateAdded other or null): in the first run, and in a later full run for a user
 * added since, the run first stores that user, and a merge batch reinserts it (review GP: no
 * other property sent a user twice in the run that first stores it).
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
        fc.asyncProperty(
          fc.boolean(),
          fc.array(identity, { minLength: 1, maxLength: 9 }),
          identity,
          fc.array(step, { maxLength: 12 }),
          async (direct, firstIdentities, firstTwice, steps) => {
            const h = await startHarness(
              { partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 2, zipExport: { entries: [{ format: 'csv' }] } },
              { CPQ_COMPANIES: COMPANY, CPQ_PAGE_SIZE: '4', SYNC_MERGE_BATCH_USERS: '2', SYNC_DIRECT_FIRST_LOAD: String(direct) },
            );
            try {
              // The users' identities before the first run: its first copies.
              h.sim.users(COMPANY).forEach((u, i) => h.sim.updateUser(COMPANY, String(u.login), firstIdentities[i % firstIdentities.length]!));
              // Each run's second page of users starts again with a user of its first page, `twice`
              // its identity: the user added last where it is there (new to the database, so a full
              // read that merges in batches reinserts it), else the page's last (the first run's is
              // new too; a stored one is an update read twice).
              let twice: Identity | null = null;
              let lastAdded: string | undefined;
              const reads = repeatInEveryRead(h.sim, (firstPage) => {
                const user = firstPage.find((u) => u.login === lastAdded) ?? firstPage.at(-1);
                return twice === null || user === undefined ? undefined : { ...user, ...twice };
              });
              const run = async (read: 'full' | 'incremental' | 'csv', sentTwice: Identity | null, what: string) => {
                twice = sentTwice;
                reads.startRead();
                if (read === 'csv')
                  await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log }, { full: true });
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
                else if (s.kind === 'add') lastAdded = h.sim.addUser(COMPANY, { login: `added${added++}`, ...s.fields });
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
          },
        ),
        {
          ...runs(4, propertyTimeout(200_000)),
          // Review GN's case first: merge batches, the user's first copy with both fields, its later one with neither.
          examples: [[false, [{ id: 1111, dateAdded: DATES[1] }], { id: null, dateAdded: null }, []]] as [boolean, Identity[], Identity, Step[]][],
        },
      );
    },
    propertyTimeout(200_000),
  );
});
