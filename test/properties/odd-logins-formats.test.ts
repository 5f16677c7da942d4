import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import type { ZipEntryFormat } from '../../src/simulator/zip-export.js';
import { runSync } from '../../src/sync/run.js';
import { startHarness } from '../helpers/harness.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { oddLogin } from './odd-login-pieces.js';

/*
 * The same site of odd logins (see odd-logins.test.ts: normalization and case twins, characters
 * whose UTF-16 order is not their code-point order, URL and JSON-filter characters, blanks at either
 * end, a login that is another's prefix) read by a JSON run, then by zip exports of one to three
 * entries of any format, then by a key-ranged incremental and a full JSON run. Each login is one
 * user in its company whatever the format: the database's present (company, login) pairs equal the
 * site's after every run, and no run after the first inserts, deletes or restores a user (a JSON or
 * JSON-lines export changes nothing at all; a CSV one may restate what a cell cannot say).
 */

const withForms = (ls: string[]) => [...new Set(ls.flatMap((l) => [l, l.normalize('NFD'), l.normalize('NFC'), `${l}x`]))].filter((l) => l.trim() !== '');

const COMPANIES = ['_host', 'partner1'];
const format = fc.constantFrom<ZipEntryFormat>('json', 'json-array', 'jsonl', 'csv');

describe('odd logins through every export format (property)', () => {
  it(
    'one user per login and company, whatever reads it',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(oddLogin, { minLength: 1, maxLength: 8 }),
          fc.uniqueArray(oddLogin, { minLength: 0, maxLength: 4 }),
          fc.array(fc.array(format, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
          async (hostLogins, partnerLogins, zipRuns) => {
            const h = await startHarness(
              { partnerCompanies: 1, usersPerCompany: 1, integrationUsers: 0, drift: false, zipExport: {} },
              { CPQ_COMPANIES: COMPANIES.join(','), CPQ_PAGE_SIZE: '2', SYNC_MAX_DELETE_FRACTION: '1' },
            );
            try {
              for (const l of withForms(hostLogins)) if (!h.sim.user('_host', l)) h.sim.addUser('_host', { login: l });
              // the same logins in the partner company too: the same login in two companies is two users
              for (const l of [...withForms(partnerLogins), ...hostLogins.slice(0, 2)]) if (!h.sim.user('partner1', l)) h.sim.addUser('partner1', { login: l });
              const present = async () =>
                (await h.t.query<{ k: string }>(`SELECT company_login || E'\\u0001' || login AS k FROM cpq.users WHERE deleted_at IS NULL`))
                  .map((r) => r.k)
                  .sort();
              const site = COMPANIES.flatMap((c) => h.sim.users(c).map((u) => `${c}\u0001${String(u.login)}`)).sort();
              const changes = async (runId: string) =>
                (await h.t.query<{ change: string; login: string }>(`SELECT change, login FROM cpq.user_change_log WHERE run_id = $1`, [runId])).map(
                  (r) => `${r.change} ${JSON.stringify(r.login)}`,
                );
              const first = await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'json' }), log: h.log }, { full: true });
              expect(first.status).toBe('succeeded');
              expect(await present(), 'after the first JSON run').toEqual(site);
              for (const entries of zipRuns) {
                h.sim.setZipExport({ entries: entries.map((f) => ({ format: f })) });
                const r = await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log }, { full: true });
                expect(r.status, `zip ${entries.join('+')}`).toBe('succeeded');
                expect(await present(), `after a zip run of ${entries.join('+')}`).toEqual(site);
                const logged = await changes(r.runId);
                if (entries.includes('csv'))
                  expect(
                    logged.filter((c) => !c.startsWith('update')),
                    `zip ${entries.join('+')}: users inserted, deleted or restored`,
                  ).toEqual([]);
                else expect(logged, `zip ${entries.join('+')} after a JSON read: changes`).toEqual([]);
              }
              for (const [full, ranged] of [
                [false, true],
                [true, false],
              ] as const) {
                const config = withCpq(h.config, { exportFormat: 'json', ...(ranged ? { keyRanges: 3, splitSlowerThanMs: 0 } : {}) });
                const r = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { full });
                expect(r.status).toBe('succeeded');
                expect(await present(), `after a ${full ? 'full' : 'incremental'} JSON run`).toEqual(site);
                expect(
                  (await changes(r.runId)).filter((c) => !c.startsWith('update')),
                  'users inserted, deleted or restored',
                ).toEqual([]);
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
