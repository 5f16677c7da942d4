import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import { runSync } from '../../src/sync/run.js';
import { expectChangeLogConsistent, expectIdentityFromHistory } from '../helpers/db-equals-simulator.js';
import { startHarness } from '../helpers/harness.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * Who holds a login (README, One-feed fields; src/db/sql/last-known-identity.ts): a user deleted
 * in CPQ and its login given to someone new between two runs, told apart by another dateAdded or
 * CPQ id than the last one known (a read may send either as null, and the one before it still
 * counts), while runs read JSON pages (which carry access permissions) or a CSV export (which
 * carries none). The truth after every run: a login's permission rows are those its holder was
 * last sent with by a JSON read since it took the login, none where no JSON read has seen that
 * holder yet; the run's change row removes exactly the permissions that went; the run warns
 * of as many logins held by someone new as it found; and the identity the merge keeps
 * (cpq.user_known_identity) is the one the history says, as migration 0038 reads it from the
 * versions by the rule cpq.admin_rights_as_of follows: the merge and the function agree.
 */

const COMPANY = '_host';
const PERMISSIONS = ['laptops', 'servers', 'storage'] as const;
type Permission = (typeof PERMISSIONS)[number];

type Step =
  | { kind: 'run'; format: 'json' | 'csv' }
  | { kind: 'give the login to someone new'; who: number; by: 'dateAdded' | 'id' | 'both'; permissions: Permission[] }
  | { kind: 'send a field as null'; who: number; field: 'dateAdded' | 'id' }
  | { kind: 'send the field again'; who: number; field: 'dateAdded' | 'id' }
  | { kind: 'grant'; who: number; permission: Permission; hasAccess: boolean };

const who = fc.integer({ min: 0, max: 1 });
const permission = fc.constantFrom(...PERMISSIONS);
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('run' as const), format: fc.constantFrom<'json' | 'csv'>('json', 'csv') }),
  fc.record({
    kind: fc.constant('give the login to someone new' as const),
    who,
    by: fc.constantFrom<'dateAdded' | 'id' | 'both'>('dateAdded', 'id', 'both'),
    permissions: fc.subarray([...PERMISSIONS]),
  }),
  fc.record({ kind: fc.constant('send a field as null' as const), who, field: fc.constantFrom<'dateAdded' | 'id'>('dateAdded', 'id') }),
  fc.record({ kind: fc.constant('send the field again' as const), who, field: fc.constantFrom<'dateAdded' | 'id'>('dateAdded', 'id') }),
  fc.record({ kind: fc.constant('grant' as const), who, permission, hasAccess: fc.boolean() }),
);

/** A holder of a login: its own dateAdded and CPQ id, whether each is sent, and its permissions in CPQ. */
interface Holder {
  dateAdded: string;
  id: number;
  sends: { dateAdded: boolean; id: boolean };
  permissions: Map<Permission, boolean>;
}

/** What the database must hold of a login: its holder's dateAdded and id last read (not null), and its permissions. */
interface Stored {
  dateAdded: string | undefined;
  id: number | undefined;
  permissions: Map<Permission, boolean>;
}

const asRecord = (p: Map<Permission, boolean>) => Object.fromEntries([...p].sort(([a], [b]) => (a < b ? -1 : 1)));

describe('who holds a login, read from JSON pages and a CSV export (property)', () => {
  it(
    "after every run a login's permissions are its holder's as a JSON read last sent them, none of a former holder's; the change row removes exactly those that went",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (steps) => {
          const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0, zipExport: { entries: [{ format: 'csv' }] } });
          try {
            let next = 0;
            const fresh = () => ++next;
            const newHolder = (permissions: Iterable<Permission>, like?: Holder): Holder => ({
              dateAdded: new Date(Date.UTC(2030, 0, 1) + fresh() * 86_400_000).toISOString(),
              id: 10_000 + fresh(),
              sends: { dateAdded: true, id: true },
              permissions: new Map([...permissions].map((p) => [p, true])),
              ...(like ? { dateAdded: like.dateAdded, id: like.id } : {}),
            });
            // Each holder is put into the simulator as it is: its fields as sent, its permissions.
            const put = (login: string, holder: Holder, create: boolean) => {
              const fields = { dateAdded: holder.sends.dateAdded ? holder.dateAdded : null, id: holder.sends.id ? holder.id : null };
              if (create) {
                h.sim.addUser(COMPANY, { login, ...fields });
                h.sim.updateUser(COMPANY, login, { accessPermissions: { items: [] } });
              } else h.sim.updateUser(COMPANY, login, fields);
              for (const [p, hasAccess] of holder.permissions)
                h.sim.setAccessPermission(COMPANY, login, { type: 'productFamily', variableName: p, name: p, hasAccess });
            };
            const logins = [0, 1].map((i) => `holder-${i}`);
            const holders = logins.map(() => newHolder(['servers']));
            logins.forEach((login, i) => put(login, holders[i]!, true));
            const stored: Stored[] = logins.map(() => ({ dateAdded: undefined, id: undefined, permissions: new Map() }));

            const permissionsStored = async (login: string) => {
              const rows = await h.t.query<{ variable_name: Permission; has_access: boolean }>(
                `SELECT p.variable_name, p.has_access FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id
                 WHERE u.company_login = $1 AND u.login = $2 AND p.type = 'productFamily'`,
                [COMPANY, login],
              );
              return asRecord(new Map(rows.map((r) => [r.variable_name, r.has_access])));
            };
            const run = async (format: 'json' | 'csv', what: string) => {
              const result =
                format === 'json'
                  ? await h.sync({ full: true })
                  : await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log }, { full: true });
              let taken = 0;
              for (const [i, login] of logins.entries()) {
                const holder = holders[i]!;
                const before = stored[i]!;
                const sent = { dateAdded: holder.sends.dateAdded ? holder.dateAdded : undefined, id: holder.sends.id ? holder.id : undefined };
                const differ = <T>(a: T | undefined, b: T | undefined) => a !== undefined && b !== undefined && a !== b;
                const another = differ(sent.dateAdded, before.dateAdded) || differ(sent.id, before.id);
                if (another) taken++;
                const permissions = format === 'json' ? new Map(holder.permissions) : another ? new Map<Permission, boolean>() : before.permissions;
                // A new holder's own values only: none of the former holder's counts for it (review GL).
                const known = another ? { dateAdded: undefined, id: undefined } : before;
                stored[i] = { dateAdded: sent.dateAdded ?? known.dateAdded, id: sent.id ?? known.id, permissions };
                expect(await permissionsStored(login), `${what}: ${login}'s permissions`).toEqual(asRecord(permissions));
                const [change] = await h.t.query<{ diff: { accessPermissions?: { removed: { variableName: string }[] } } | null }>(
                  `SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`,
                  [result.runId, login],
                );
                const removed = (change?.diff?.accessPermissions?.removed ?? [])
                  .map((p) => p.variableName)
                  .filter((p) => (PERMISSIONS as readonly string[]).includes(p));
                expect(removed.sort(), `${what}: ${login}'s permissions the change row removes`).toEqual(
                  [...before.permissions.keys()].filter((p) => !permissions.has(p)).sort(),
                );
              }
              await expectIdentityFromHistory(h.t, `${what}: the identity the merge keeps`);
              const warned = result.warnings.filter((w) => /held by another user/.test(w));
              expect(warned, `${what}: the run's warning of logins held by someone new`).toEqual(
                taken === 0 ? [] : [expect.stringMatching(new RegExp(`^${taken} logins? (is|are) now held by another user`))],
              );
            };

            await run('json', 'the first run (JSON)');
            for (const [n, s] of [...steps, { kind: 'run', format: 'csv' } as const].entries()) {
              const what = `step ${n + 1} (${JSON.stringify(s)})`;
              if (s.kind === 'run') {
                await run(s.format, what);
                continue;
              }
              const login = logins[s.who]!;
              const holder = holders[s.who]!;
              if (s.kind === 'give the login to someone new') {
                h.sim.deleteUser(COMPANY, login);
                const taken = newHolder(s.permissions);
                // Told apart by one field, or both: the other the former holder's.
                if (s.by === 'dateAdded') taken.id = holder.id;
                if (s.by === 'id') taken.dateAdded = holder.dateAdded;
                holders[s.who] = taken;
                put(login, taken, true);
              } else if (s.kind === 'send a field as null' || s.kind === 'send the field again') {
                holder.sends[s.field] = s.kind === 'send the field again';
                put(login, holder, false);
              } else {
                holder.permissions.set(s.permission, s.hasAccess);
                put(login, holder, false);
              }
            }
            await expectChangeLogConsistent(h.t);
          } finally {
            await h.close();
          }
        }),
        runs(6, propertyTimeout(240_000)),
      );
    },
    propertyTimeout(240_000),
  );
});
