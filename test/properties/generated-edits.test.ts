import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import type { ZipExportOptions } from '../../src/simulator/index.js';
import { runSync } from '../../src/sync/run.js';
import { snapshotTables, startHarness } from '../helpers/harness.js';
import { LONE_SURROGATE, companyUser, integrationUser, propertyTimeout, refusalOf, runs, type GeneratedUser } from './arbitraries.js';
import {
  SITE_COMPANIES,
  addToSimulator,
  expectStored,
  expectedColumns,
  expectedRelations,
  resetSite,
  sentText,
  siteCase,
  winningEntries,
  type PlacedUser,
} from './site.js';

/*
 * Generated users loaded, then edited on the site: each kept, replaced by another generated
 * record of the same login (integration users keep their partyNumber and OAuth client), or
 * deleted, and new users added; the edited and added ones with a dateModified after the first
 * run, as CPQ moves it. A second run, incremental or full, from JSON pages or a zip export, must
 * then leave the database equal to the reference model:
 *  - an incremental read takes the edits and additions and keeps the deleted users (it cannot see
 *    them go); a full read takes the site as it is, deleted users marked deleted;
 *  - a record without group or permission items leaves the memberships or permissions it had;
 *  - raw is the record as last sent, or (the content digest seeing no change) as sent before;
 *  - change rows: an insert per added user, a delete per user a full read no longer finds, an
 *    update for each edit that changed a typed column, a membership or a permission, no row for
 *    a user not edited, never a row of another kind;
 *  - a second run meeting a record the documented rules refuse fails naming it, and leaves every
 *    table as the first run left it, its run record saying it failed.
 */

type Edit = { kind: 'keep' } | { kind: 'delete' } | { kind: 'replace'; user: GeneratedUser };

/** The user with its dateModified (every spelling of it) replaced by `stamp`, as CPQ moves it on an edit. */
function stamped(user: GeneratedUser, stamp: string): GeneratedUser {
  return { ...user, fields: [...user.fields.filter((f) => f.field !== 'dateModified'), { field: 'dateModified', key: 'dateModified', value: stamp }] };
}

/** A replacement keeps an integration user's keys (partyNumber and OAuth client do not change on an edit). */
function sameKeys(before: GeneratedUser, after: GeneratedUser): GeneratedUser {
  if (!before.company) return after;
  const keys = new Set(['partyNumber', 'oauthClientId']);
  // A partyNumber that cannot be a URL path segment is refused when the groups must be read from
  // the user's own endpoint, the list carrying no items (as integrationUser marks it).
  const kept = before.fields
    .filter((f) => keys.has(f.field))
    .map(({ refused: _, ...f }) =>
      f.field === 'partyNumber' && after.groups.kind !== 'items' && typeof f.value === 'string' && /[/\\]/.test(f.value) ? { ...f, refused: 'partyNumber' } : f,
    );
  return { ...after, fields: [...after.fields.filter((f) => !keys.has(f.field)), ...kept] };
}

const editCase = siteCase
  .map(({ groups, users }) => ({ groups, users: users.filter((p) => refusalOf(p.user) === undefined) }))
  .filter(({ users }) => users.length > 0)
  .chain(({ groups, users }) =>
    fc.record({
      groups: fc.constant(groups),
      users: fc.constant(users),
      edits: fc.tuple(
        ...users.map((p, i) =>
          fc.oneof(
            { weight: 2, arbitrary: fc.constant<Edit>({ kind: 'keep' }) },
            { weight: 1, arbitrary: fc.constant<Edit>({ kind: 'delete' }) },
            {
              weight: 3,
              arbitrary: (p.user.company ? integrationUser(i, groups.length, 11, true) : companyUser(i, groups.length, 11, true)).map((user): Edit => ({
                kind: 'replace',
                user: sameKeys(p.user, { ...user, login: p.user.login }),
              })),
            },
          ),
        ),
      ),
      // Logins u5 and u6: no generated login of the first run (u0 to u4, with any suffix) is one of them.
      added: fc
        .array(fc.constantFrom(...SITE_COMPANIES), { maxLength: 2 })
        .chain((companies) =>
          fc.tuple(...companies.map((company, k) => companyUser(5 + k, groups.length, 11, true).map((user): PlacedUser => ({ company, user })))),
        ),
      second: fc.record({
        full: fc.boolean(),
        // Both runs' CPQ_PAGE_SIZE: pages of a few users (an edited, added or deleted user moves the
        // others to another page between the runs), or one page.
        pageSize: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.constant(1000)),
        format: fc.constantFrom<'json' | 'zip'>('json', 'zip'),
        entries: fc.constantFrom<NonNullable<ZipExportOptions['entries']>>(
          [{ format: 'json' }],
          [{ format: 'jsonl' }],
          [{ format: 'json-array' }, { format: 'json' }],
        ),
      }),
    }),
  );

const key = (p: PlacedUser) => `${p.company}\u0001${p.user.login}`;

describe('generated users edited between runs (property)', () => {
  it(
    'a second run, incremental or full, JSON or zip, leaves the database equal to the model, or fails leaving it as it was',
    async () => {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 0, integrationUsers: 0, drift: false, zipExport: {} },
        { CPQ_COMPANIES: SITE_COMPANIES.join(','), SYNC_MAX_DELETE_FRACTION: '1' },
      );
      const run = (format: 'json' | 'zip', full: boolean, pageSize: number) =>
        runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: format, pageSize }), log: h.log }, { full });
      try {
        await fc.assert(
          fc.asyncProperty(editCase, async ({ groups, users, edits, added, second }) => {
            await resetSite(h.sim, h.t);
            for (const p of users) addToSimulator(h.sim, p, groups);
            expect((await run('json', false, second.pageSize)).status).toBe('succeeded');
            await expectStored(h.t, users, groups);

            // The site's edits, dated after the first run.
            const stamp = new Date().toISOString();
            const now = new Map<string, PlacedUser>();
            const edited = new Map<string, { before: PlacedUser; after: PlacedUser }>();
            users.forEach((p, i) => {
              const edit = edits[i]!;
              if (edit.kind === 'keep') now.set(key(p), p);
              if (edit.kind === 'replace') {
                const after = { company: p.company, user: stamped(edit.user, stamp) };
                now.set(key(p), after);
                edited.set(key(p), { before: p, after });
              }
            });
            const fresh = added.map((p) => ({ ...p, user: stamped(p.user, stamp) }));
            for (const p of fresh) now.set(key(p), p);
            for (const p of users) h.sim.deleteUser(p.company, p.user.login);
            for (const p of now.values()) addToSimulator(h.sim, p, groups);
            h.sim.setZipExport({ entries: second.entries });

            const before = await snapshotTables(h.t);
            const read = [...edited.values()].map((e) => e.after).concat(fresh);
            const refused = read.filter((p) => refusalOf(p.user) !== undefined);
            // Which company reads are full (README "Change log, deletions and history"): all when
            // asked or from a zip export; else a company whose first read gave no dateModified has
            // no cursor to go on from, and is read in full. The integration feed is read in full
            // whenever a company is, and an integration user it no longer returns has its
            // company, the host, read in full too.
            const cursorFrom = (ps: PlacedUser[]) => ps.some((p) => ![undefined, null, ''].includes(winningEntries(p.user).get('dateModified') as string));
            const fullCompanies = new Set<string>(
              SITE_COMPANIES.filter((c) => second.full || second.format === 'zip' || !cursorFrom(users.filter((p) => p.company === c))),
            );
            const integrationFull = fullCompanies.size > 0 || !cursorFrom(users.filter((p) => p.user.company));
            if (integrationFull && users.some((p, i) => p.user.company && edits[i]!.kind === 'delete')) fullCompanies.add('_host');
            const fullRead = (p: PlacedUser) => fullCompanies.has(p.company);
            const outcome = await run(second.format, second.full, second.pageSize).catch((err: unknown) => err as Error);
            if (refused.length > 0) {
              expect(outcome, 'the second run is refused').toBeInstanceOf(Error);
              expect((outcome as Error).message, 'one line').not.toContain('\n');
              // Names past 100 units are cut, a surrogate pair never in half.
              expect(LONE_SURROGATE.test((outcome as Error).message), 'a lone surrogate in the error').toBe(false);
              expect(await snapshotTables(h.t), 'every table as the first run left it').toEqual(before);
              const [last] = await h.t.query<{ status: string; error: string | null }>(`SELECT status, error FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
              expect(last!.status).toBe('failed');
              expect(last!.error, 'the run record says why').toBeTruthy();
              return;
            }
            if (outcome instanceof Error) throw outcome;
            expect(outcome.status).toBe('succeeded');

            // The model: what each present user's row must hold.
            // A company read in full: its users as they are now. One read incrementally: the first
            // run's users (the deleted ones too), with the edits and additions it read.
            const expected = new Map<string, PlacedUser>([...users.filter((p) => !fullRead(p)), ...[...now.values()].filter(fullRead)].map((p) => [key(p), p]));
            for (const p of read) expected.set(key(p), p);
            // A replacement dated to another creation, or of another CPQ id, than the first run stored is
            // another user given the login (src/db/sql/last-known-identity.ts): a relation it does not
            // carry is empty, none of the former holder's; for the same user, left as it was.
            const anotherHolder = (before: PlacedUser, after: PlacedUser) => {
              const [was, now] = [expectedColumns(before), expectedColumns(after)];
              const differ = (column: string) => was[column] != null && now[column] != null && was[column] !== now[column];
              return differ('date_added') || differ('cpq_id');
            };
            const relationsOf = (p: PlacedUser): GeneratedUser => {
              const e = edited.get(key(p));
              if (!e || e.after !== p) return p.user;
              const { user } = p;
              const none = anotherHolder(e.before, e.after);
              return {
                ...user,
                groups: user.groups.kind === 'items' ? user.groups : none ? { kind: 'items', items: [] } : e.before.user.groups,
                accessPermissions:
                  user.accessPermissions.kind === 'items' ? user.accessPermissions : none ? { kind: 'items', items: [] } : e.before.user.accessPermissions,
              };
            };
            const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
            const changedColumns = (e: { before: PlacedUser; after: PlacedUser }) =>
              !same(expectedColumns(e.before), expectedColumns(e.after)) ||
              !same(expectedRelations(e.before, groups), expectedRelations({ ...e.after, user: relationsOf(e.after) }, groups));
            await expectStored(h.t, [...expected.values()], groups, 'default', {
              relationsOf,
              rawAlso: (p) => {
                const e = edited.get(key(p));
                return e && e.after === p && !changedColumns(e) ? [sentText(e.before.user, groups)] : [];
              },
            });

            const changes = await h.t.query<{ change: string; company_login: string; login: string }>(
              `SELECT change, company_login, login FROM cpq.user_changes WHERE run_id = $1`,
              [outcome.runId],
            );
            const logged = new Map(changes.map((c) => [`${c.company_login}\u0001${c.login}`, c.change]));
            expect(logged.size, 'one change row per user at most').toBe(changes.length);
            for (const p of fresh) expect(logged.get(key(p)), `added ${key(p)}`).toBe('insert');
            for (const [k, e] of edited) {
              if (changedColumns(e)) expect(logged.get(k), `edited ${k}`).toBe('update');
              else expect([undefined, 'update'], `edited ${k}`).toContain(logged.get(k));
            }
            users.forEach((p, i) => {
              const kind = edits[i]!.kind;
              if (kind === 'keep') expect(logged.get(key(p)), `kept ${key(p)}`).toBeUndefined();
              if (kind === 'delete') expect(logged.get(key(p)), `deleted ${key(p)}`).toBe(fullRead(p) ? 'delete' : undefined);
            });
            const known = new Set([...users, ...fresh].map(key));
            for (const k of logged.keys()) expect(known.has(k), `a change row for ${k}, a user the site never had`).toBe(true);
          }),
          runs(15, propertyTimeout(240_000)),
        );
      } finally {
        await h.close();
      }
    },
    propertyTimeout(240_000),
  );
});
