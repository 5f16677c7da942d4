import { describe, expect } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { rowVersions } from '../helpers/db-equals-simulator.js';
import { it } from '../helpers/harness.js';
import { editPage, scriptRequests } from '../helpers/scripted-pages.js';

/*
 * Review DD: a gateway or debug endpoint in front of CPQ that reflects the request into a 200
 * answer put the Basic credential into a user's field. In a field that takes text it went into
 * cpq.users.raw, which cpq_reader and `snapshot --with-raw` read; in a field that must be a
 * number, its error quoted it into cpq.sync_runs.error and the logs. A page holding a credential
 * the run sent is now refused, naming where in the page, never what.
 */

const USERNAME = 'syncuser';
const PASSWORD = 'S3cretPassw0rdXYZ';
const BASIC = Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64');

describe('a page that holds a credential the run sent is refused without repeating it', () => {
  const cases: [string, (user: Record<string, unknown>) => void][] = [
    ['the Basic credential in a text field', (u) => (u.notes = `Basic ${BASIC}`)],
    ['the Basic credential in a number field (its error would quote it)', (u) => (u.partyId = `Basic ${BASIC}`)],
    ['the password alone in a custom field', (u) => (u.debugEcho = `password=${PASSWORD}`)],
  ];
  for (const [what, reflect] of cases)
    it(what, async ({ startHarness }) => {
      const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_USERNAME: USERNAME, CPQ_PASSWORD: PASSWORD });
      expect((await h.sync()).status).toBe('succeeded');
      const before = await rowVersions(h.t);
      scriptRequests(h.sim, async (req) => {
        if (req.path.endsWith('/users')) req.reply(editPage(await req.real(), (page) => page.items[1] && reflect(page.items[1])));
      });
      const error = await h.syncError({ full: true });
      expect(error).toBeInstanceOf(SyncError);
      expect(error.message).toMatch(
        /^GET \S+: the response holds a credential this run sent \(at character \d+\); refused, so that it reaches neither the database nor the logs$/,
      );
      expect(await rowVersions(h.t)).toEqual(before);
      const said = [
        error.message,
        ...h.logLines,
        JSON.stringify(await h.t.query(`SELECT error, warnings FROM cpq.sync_runs`)),
        JSON.stringify(await h.t.query(`SELECT raw FROM cpq.users`)),
      ].join('\n');
      expect(said).not.toContain(BASIC.slice(0, 12));
      expect(said).not.toContain(PASSWORD);
    });
});
