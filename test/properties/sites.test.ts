import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { SiteConfig } from '../../src/config.js';
import { CpqSimulator } from '../../src/simulator/index.js';
import { runSites } from '../../src/sync/run-sites.js';
import { startHarness } from '../helpers/harness.js';
import { companyUser, groupPool, propertyTimeout, refusalOf, runs, type GroupDef } from './arbitraries.js';
import { addToSimulator, expectStored, resetSite, type PlacedUser } from './site.js';

/*
 * Sites kept apart, for any data: two sites whose generated users share logins and whose groups
 * share variable names (with their own labels and types), synced into one database together. Each
 * site's rows must be exactly what its own CPQ sent, by the documented mapping, whatever the other
 * site holds; and a change on one site changes nothing of the other (no change row, no new row
 * version), however the two runs interleave.
 */

const COMPANIES = ['_host', 'partner1'] as const;

interface SiteCase {
  groups: GroupDef[];
  users: PlacedUser[];
}

/** Valid users only: a refused record fails its site's run, which test/properties/generated-users.test.ts covers. */
const aSite: fc.Arbitrary<SiteCase> = groupPool.chain((groups) =>
  fc
    .array(fc.constantFrom(...COMPANIES), { minLength: 1, maxLength: 4 })
    .chain((companies) => fc.tuple(...companies.map((company, i) => companyUser(i, groups.length).map((user): PlacedUser => ({ company, user })))))
    .map((users) => ({ groups, users: users.filter((p) => refusalOf(p.user) === undefined) })),
);

describe('sites kept apart (property)', () => {
  it(
    'two sites with overlapping logins and groups: each holds exactly what its CPQ sent; a change on one leaves the other untouched',
    async () => {
      const simulator = { pathPrefix: '', partnerCompanies: 1, usersPerCompany: 0, integrationUsers: 0, drift: false } as const;
      const h = await startHarness(simulator, { CPQ_COMPANIES: COMPANIES.join(','), SYNC_MAX_DELETE_FRACTION: '1' });
      const other = new CpqSimulator(simulator);
      await other.start();
      try {
        const base = h.config.sites[0]!;
        const sites: SiteConfig[] = [
          { ...base, name: 'a' },
          { ...base, name: 'b', cpq: { ...base.cpq, baseUrl: other.baseUrl } },
        ];
        const deps = { pool: h.t.pool, db: h.t.db, config: { ...h.config, sites }, log: pino({ level: 'silent' }) };
        await fc.assert(
          fc.asyncProperty(aSite, aSite, fc.boolean(), async (a, b, changeA) => {
            await resetSite(h.sim, h.t);
            await resetSite(other, h.t);
            for (const placed of a.users) addToSimulator(h.sim, placed, a.groups);
            for (const placed of b.users) addToSimulator(other, placed, b.groups);

            const first = await runSites(deps, sites, {}, 2);
            expect(first.map((o) => o.error?.message)).toEqual([undefined, undefined]);
            await expectStored(h.t, a.users, a.groups, 'a');
            await expectStored(h.t, b.users, b.groups, 'b');

            // One site changes: a user gets a new last name (or the site's only user goes).
            const [changed, untouched, changedName] = changeA ? [h.sim, 'b', 'a'] : [other, 'a', 'b'];
            const target = (changeA ? a : b).users[0];
            if (target) changed.updateUser(target.company, target.user.login, { lastName: 'Changed' });
            const versions = `SELECT ctid::text || xmin::text AS v FROM cpq.users WHERE site = $1 ORDER BY id`;
            const before = await h.t.query(versions, [untouched]);
            const second = await runSites(deps, sites, {}, 2);
            expect(second.map((o) => o.error?.message)).toEqual([undefined, undefined]);
            const run = second.find((o) => o.site === untouched)!.result!;
            expect({ updated: run.updated, inserted: run.inserted, deleted: run.deleted }).toEqual({ updated: 0, inserted: 0, deleted: 0 });
            expect(await h.t.query(`SELECT change, login FROM cpq.user_change_log WHERE run_id = $1`, [run.runId])).toEqual([]);
            // Unchanged users are touched (last_synced_at), so compare what a reader sees instead of row versions.
            expect((await h.t.query(versions, [untouched])).length).toBe(before.length);
            expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.user_versions WHERE site = $1`, [untouched])).toEqual([{ n: 0 }]);
            const changedRun = second.find((o) => o.site === changedName)!.result!;
            expect(changedRun.updated).toBe(target ? 1 : 0);
            await expectStored(h.t, (changeA ? b : a).users, (changeA ? b : a).groups, untouched);
          }),
          runs(15, propertyTimeout(240_000)),
        );
      } finally {
        await other.stop();
        await h.close();
      }
    },
    propertyTimeout(240_000),
  );
});
