import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq, type AppConfig } from '../../src/config.js';
import type { ZipExportOptions } from '../../src/simulator/index.js';
import { runSync } from '../../src/sync/run.js';
import { type Harness, startHarness } from '../helpers/harness.js';
import { respell, withDecoys, type Spelling } from '../helpers/json-spelling.js';
import { editPage, scriptRequests } from '../helpers/scripted-pages.js';
import { LONE_SURROGATE, propertyTimeout, refusalOf, runs, shownInError, type GeneratedUser } from './arbitraries.js';
import { SITE_COMPANIES, addToSimulator, expectStored, resetSite, siteCaseOf } from './site.js';

/*
 * Properties of one sync of generated users (test/properties/arbitraries.ts) through the real
 * simulator over HTTP into a real Postgres:
 *  - the run succeeds, or fails naming the one record it refused (company/login and field);
 *  - raw equals what was sent, as jsonb (compared in Postgres with the exact text sent);
 *  - typed columns, memberships and permissions follow the documented mapping;
 *  - the first run reads JSON pages or a zip export (JSON, JSON-array or JSON-lines entries, one
 *    or two): the database is the same either way;
 *  - an immediate second run, incremental or full, JSON or zip, logs no change, also when its
 *    pages spell the same values otherwise, write every key of a record twice (a decoy first),
 *    lie about the collection (totalResults, hasMore) or send a user twice;
 *  - JSON reads page by few users or all at once, in one or three key ranges, so users move
 *    between pages from the first run to the second.
 * The site is a Fusion one: users of either company may be integration users, read from both
 * feeds; logins may be shared in the other case, or as they are across companies (siteCaseOf).
 * fast-check shrinks a failure to a minimal case and prints its seed and path; FC_NUM_RUNS
 * (npm run test:deep) runs more cases.
 */

/**
 * The entries of a zip export: a collection body, an array, JSON lines, or the users split between
 * entries of two kinds. Each loads exactly what the JSON pages load (README "Zip export").
 */
const zipEntries = fc.constantFrom<NonNullable<ZipExportOptions['entries']>>(
  [{ format: 'json' }],
  [{ format: 'json-array' }],
  [{ format: 'jsonl' }],
  [{ format: 'jsonl' }, { format: 'json' }],
  [{ format: 'json-array' }, { format: 'jsonl' }],
);

/**
 * How a JSON read pages: CPQ_PAGE_SIZE (pages of a few users, so that users of one case span
 * several pages and, between runs, move from one page to another; or all in one) and
 * CPQ_KEY_RANGES (one range, or logins split into ranges read at once).
 */
const paging = fc.record({ pageSize: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.constant(1000)), keyRanges: fc.constantFrom(1, 3) });

// The first run reads JSON pages or a zip export: the database must be the same either way; its
// JSON pages may hold every key of every record twice, a decoy first (read as JSON: the last wins).
const firstRun = fc.record({ format: fc.constantFrom<'json' | 'zip'>('json', 'zip'), entries: zipEntries, paging, decoys: fc.boolean() });

// The second run's JSON pages may spell the same values otherwise (escapes, whitespace): it must log nothing either way.
const secondRun = fc.record({
  full: fc.boolean(),
  format: fc.constantFrom<'json' | 'zip'>('json', 'zip'),
  entries: zipEntries,
  paging,
  spelling: fc.constantFrom<'as sent' | Spelling | 'decoys'>('as sent', 'escaped', 'spaced', 'decoys'),
  // What each page of users says of the collection may lie (JSON pages): a totalResults one more
  // (a short read: nothing may be deleted) or one less, a hasMore true on the last page; or a page
  // with room for it may send its first user again at its end (a user read twice, out of login order).
  lie: fc.constantFrom<Lie>('none', 'total+1', 'total-1', 'hasMore', 'repeat'),
});

type Lie = 'none' | 'total+1' | 'total-1' | 'hasMore' | 'repeat';

/** A page of users (`text` as the simulator writes it: the envelope's keys after the items) telling `lie`. */
function lying(text: string, lie: Lie): string {
  // Only where the page has room for it: one holding more items than its limit is refused.
  if (lie === 'repeat') return editPage(text, (p) => p.items.length > 0 && p.items.length < Number(p.limit) && p.items.push(p.items[0]!));
  const at = (key: string) => text.lastIndexOf(`"${key}":`);
  if (lie === 'hasMore' && !text.startsWith('{"items":[]') && at('hasMore') > 0)
    return text.slice(0, at('hasMore')) + text.slice(at('hasMore')).replace('"hasMore":false', '"hasMore":true');
  if ((lie === 'total+1' || lie === 'total-1') && at('totalResults') > 0) {
    const [, count = '0'] = /^"totalResults":(\d+)/.exec(text.slice(at('totalResults'))) ?? [];
    const told = Math.max(0, Number(count) + (lie === 'total+1' ? 1 : -1));
    return text.slice(0, at('totalResults')) + text.slice(at('totalResults')).replace(/^"totalResults":\d+/, `"totalResults":${told}`);
  }
  return text;
}

/**
 * Answers every JSON request of the site (user pages, integration users, the company list) in
 * `spelling`; with decoys, every key of a user record (not of the company list) comes twice. Pages
 * of users tell `lie`.
 */
function respellAnswers(h: Harness, spelling: Spelling | 'decoys' | 'as sent', lie: Lie = 'none'): void {
  scriptRequests(h.sim, async (req) => {
    if (!/\/(users|integrationUsers|companies)(\/|$)/.test(req.path)) return;
    const users = /\/(users|integrationUsers)$/.test(req.path);
    if (spelling === 'decoys' && !users) return;
    const { status, body } = await req.realAnswer();
    const told = users && status === 200 ? lying(body, lie) : body;
    req.reply(spelling === 'decoys' ? withDecoys(told) : spelling === 'as sent' ? told : respell(told, spelling), { status });
  });
}

function withFormat(config: AppConfig, format: 'json' | 'zip', pages: { pageSize: number; keyRanges: number }): AppConfig {
  return withCpq(config, { exportFormat: format, ...pages });
}

function describeUser(u: GeneratedUser): string {
  return JSON.stringify(u, (_k, v: unknown) =>
    v && typeof v === 'object' && 'text' in v && Object.keys(v).length === 1 ? `#${(v as { text: string }).text}` : v,
  );
}

describe('generated CPQ users (property)', () => {
  it(
    'load exactly by the documented mapping, or the run names the one record refused; a second run logs nothing',
    async () => {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 0, integrationUsers: 0, drift: false, zipExport: {} },
        { CPQ_COMPANIES: SITE_COMPANIES.join(','), SYNC_MAX_DELETE_FRACTION: '1' },
      );
      try {
        await fc.assert(
          fc.asyncProperty(siteCaseOf(true), firstRun, secondRun, async ({ groups, users }, first, second) => {
            h.sim.onRequest = undefined;
            await resetSite(h.sim, h.t);
            let pages = first.paging;
            const run = (format: 'json' | 'zip', full: boolean) =>
              runSync({ pool: h.t.pool, db: h.t.db, config: withFormat(h.config, format, pages), log: h.log }, { full });
            try {
              for (const placed of users) addToSimulator(h.sim, placed, groups);
              h.sim.setZipExport({ entries: first.entries });
              if (first.format === 'json' && first.decoys) respellAnswers(h, 'decoys');
              const refused = users.filter((p) => refusalOf(p.user) !== undefined);
              if (refused.length > 0) {
                const error = await run(first.format, false).then(
                  () => new Error('expected the sync run to fail, but it succeeded'),
                  (err: unknown) => err as Error,
                );
                const message = error.message.split('\n')[0]!;
                expect(error.message, 'one line').not.toContain('\n');
                // Names past 100 units are cut, a surrogate pair never in half: the error holds no lone surrogate.
                expect(LONE_SURROGATE.test(error.message), `a lone surrogate in the error: ${JSON.stringify(error.message)}`).toBe(false);
                // A record breaking two rules is refused for whichever its reader meets first. Errors show
                // logins cut at 100 units, control characters as \u escapes.
                const named = refused.filter(
                  (p) =>
                    (message.includes(`"${p.company}/${shownInError(p.user.login)}"`) &&
                      (p.user.fields.some((f) => f.refused !== undefined && message.includes(`field "${f.refused}"`)) ||
                        (p.user.customRefused !== undefined && message.includes(`field "${p.user.customRefused}"`)))) ||
                    // A company that names none is refused before the user's company, and so the user, is known: by its place in the feed.
                    (p.user.brokenCompany !== undefined &&
                      /^record \d+ of \S+\/integrationUsers\?/.test(message) &&
                      message.includes(`field "${p.user.brokenCompany.refused}"`)),
                );
                expect(named.length, `the error names a refused record and its field: ${message}`).toBeGreaterThan(0);
                const [{ count }] = (await h.t.query<{ count: string }>(`SELECT count(*)::text AS count FROM cpq.users`)) as [{ count: string }];
                expect(count, 'nothing loaded').toBe('0');
                return;
              }
              const loaded = await run(first.format, false).finally(() => (h.sim.onRequest = undefined));
              expect(loaded.status).toBe('succeeded');
              await expectStored(h.t, users, groups);

              pages = second.paging;
              h.sim.setZipExport({ entries: second.entries });
              // Only JSON pages: a zip read's requests ask for the archive, which a JSON answer is not.
              if (second.format === 'json' && (second.spelling !== 'as sent' || second.lie !== 'none')) respellAnswers(h, second.spelling, second.lie);
              const again = await run(second.format, second.full).finally(() => (h.sim.onRequest = undefined));
              expect(again.status).toBe('succeeded');
              const changes = await h.t.query(`SELECT change, login, diff::text FROM cpq.user_changes WHERE run_id = $1`, [again.runId]);
              const how = `${first.format} then ${second.full ? 'full' : 'incremental'} ${second.format} (${second.format === 'zip' ? JSON.stringify(second.entries) : `${second.spelling}, ${JSON.stringify(second.paging)}, lie ${second.lie}`})`;
              expect(changes, `changes logged by a second run: ${how}`).toEqual([]);
              expect({ inserted: again.inserted, updated: again.updated, deleted: again.deleted, restored: again.restored }).toEqual({
                inserted: 0,
                updated: 0,
                deleted: 0,
                restored: 0,
              });
              await expectStored(h.t, users, groups);
            } catch (error) {
              // The shrunk case as data, next to fast-check's seed and path.
              (error as Error).message += `\nusers: ${users.map((p) => `${p.company}: ${describeUser(p.user)}`).join('\n       ')}`;
              throw error;
            }
          }),
          runs(40, propertyTimeout(240_000)),
        );
      } finally {
        await h.close();
      }
    },
    propertyTimeout(240_000),
  );
});
