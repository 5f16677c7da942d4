import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exportChanges, exportSnapshot, parseAfter } from '../../src/history/export.js';
import { collect } from '../helpers/export-output.js';
import { startHarness } from '../helpers/harness.js';
import { propertyTimeout, refusalOf, runs } from './arbitraries.js';
import { SITE_COMPANIES, addToSimulator, resetSite, sentText, siteCase, withoutLinks } from './site.js';

/*
 * Review CF: the exports of generated users. After a first run, every line of `snapshot --format
 * jsonl --with-raw` must carry the user's raw equal (as jsonb) to what CPQ sent (links aside),
 * its groups exactly as the database holds them, and `changes --format jsonl` one insert per user
 * whose line parses; each export's lines are valid JSON whatever the strings hold.
 */

describe('exports of generated users (property, review CF)', () => {
  it(
    'snapshot jsonl --with-raw gives raw as sent and the stored groups; changes jsonl one insert per user',
    async () => {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 0, integrationUsers: 0, drift: false },
        { CPQ_COMPANIES: SITE_COMPANIES.join(','), SYNC_MAX_DELETE_FRACTION: '1' },
      );
      try {
        await fc.assert(
          fc.asyncProperty(siteCase, async ({ groups, users }) => {
            await resetSite(h.sim, h.t);
            for (const placed of users) addToSimulator(h.sim, placed, groups);
            if (users.some((p) => refusalOf(p.user) !== undefined)) return;
            const run = await h.sync();
            expect(run.status).toBe('succeeded');
            const snapshot = await collect((out) => exportSnapshot(h.t.pool, new Date(), 'jsonl', out, { withRaw: true }));
            const lines = snapshot.split('\n').filter((l) => l !== '');
            expect(lines.length, 'one line per user').toBe(users.length);
            for (const line of lines) {
              expect(() => JSON.parse(line) as unknown, `a snapshot line is JSON: ${line.slice(0, 200)}`).not.toThrow();
              const [check] = await h.t.query<{ found: boolean; raw_ok: boolean; groups_ok: boolean }>(
                `WITH l AS (SELECT $1::jsonb AS j)
                 SELECT u.id IS NOT NULL AS found,
                        ${withoutLinks("(l.j->'raw')")} = ${withoutLinks('u.raw')} AS raw_ok,
                        (SELECT coalesce(jsonb_agg(x->'variableName'), '[]'::jsonb) FROM jsonb_array_elements(l.j->'groups') x) =
                          coalesce((SELECT jsonb_agg(to_jsonb(g.group_variable_name) ORDER BY g.group_variable_name COLLATE "C") FROM cpq.user_groups g WHERE g.user_id = u.id), '[]'::jsonb) AS groups_ok
                 FROM l LEFT JOIN cpq.users u ON u.company_login = l.j->>'company_login' AND u.login = l.j->>'login'`,
                [line],
              );
              expect(check, `snapshot line against its row: ${line.slice(0, 300)}`).toMatchObject({ found: true, raw_ok: true, groups_ok: true });
              const { company_login: company, login } = JSON.parse(line) as { company_login: string; login: string };
              const placed = users.find((p) => p.company === company && p.user.login === login)!;
              const [same] = await h.t.query<{ equal: boolean }>(`SELECT ${withoutLinks("($1::jsonb->'raw')")} = $2::jsonb AS equal`, [
                line,
                sentText(placed.user, groups),
              ]);
              expect(same!.equal, `snapshot raw = sent\n${line.slice(0, 400)}\n${sentText(placed.user, groups).slice(0, 400)}`).toBe(true);
            }
            const changes = await collect((out) => exportChanges(h.t.pool, parseAfter('0'), 'jsonl', out));
            const changeLines = changes
              .split('\n')
              .filter((l) => l !== '')
              .map((l) => JSON.parse(l) as { change: string; run_id: unknown });
            const ofRun = changeLines.filter((c) => String(c.run_id) === run.runId);
            expect(ofRun.map((c) => c.change).sort(), 'one insert per user').toEqual(users.map(() => 'insert'));
          }),
          runs(30, propertyTimeout(240_000)),
        );
      } finally {
        await h.close();
      }
    },
    propertyTimeout(240_000),
  );
});
