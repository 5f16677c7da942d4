import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { userKey } from '../src/sync/integration-users.js';
import { SyncError } from '../src/errors.js';
import { parseExactJson, stringifyExactJson } from '../src/exact-json.js';
import { rowVersions } from './helpers/db-equals-simulator.js';
import { it, type Harness } from './helpers/harness.js';
import { editPage, scriptRequests } from './helpers/scripted-pages.js';

/*
 * Integration users come with their company (company.loginName) and, when the list does not
 * expand groups, from the detail endpoint too. A company that is there but unusable, or a detail
 * answering for someone else, would file the user under another company's user of the same
 * login (review AA: a partner's integration user merged into the host user "bob"): refused, naming
 * the record, the database left as it was.
 */

const LIST_PATH = '/cpq/rest/v19/integrationUsers';

async function refused(h: Harness): Promise<string> {
  const before = await rowVersions(h.t);
  const error = await h.syncError({ full: true });
  if (!(error instanceof SyncError)) throw error;
  expect(error.kind).toBe('data');
  expect(await rowVersions(h.t)).toEqual(before);
  return error.message;
}

/** Edits the first integration user of every list page the run reads. */
function editFirstListed(h: Harness, edit: (user: Record<string, unknown>) => void): void {
  scriptRequests(h.sim, async (req) => {
    if (req.path !== LIST_PATH) return;
    req.reply(editPage(await req.real(), (page) => page.items[0] && edit(page.items[0])));
  });
}

/** Edits every detail of an integration user the run reads, exactly (partyId is beyond a double). */
function editDetails(h: Harness, edit: (detail: Record<string, unknown>) => Record<string, unknown>): void {
  scriptRequests(h.sim, async (req) => {
    if (!req.path.startsWith(`${LIST_PATH}/`)) return;
    req.reply(stringifyExactJson(edit(parseExactJson(await req.real()) as Record<string, unknown>)));
  });
}

describe('an integration user whose company or detail cannot be trusted is refused, not filed under _host', () => {
  it('a company that is text, not an object', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 2 });
    await h.sync();
    editFirstListed(h, (user) => (user.company = 'p1'));
    expect(await refused(h)).toMatch(/^record 0 of \S+: field "company" must be an object with a loginName, got "p1"$/);
  });

  it('a company.loginName that is a number or blank', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 2 });
    await h.sync();
    editFirstListed(h, (user) => (user.company = { loginName: 42 }));
    expect(await refused(h)).toMatch(
      /^record 0 of \S+: field "company\.loginName" must be a company's login name, got 42, so the user's company is not known$/,
    );
    editFirstListed(h, (user) => (user.company = { loginName: ' ' }));
    expect(await refused(h)).toMatch(
      /^record 0 of \S+: field "company\.loginName" must be a company's login name, got " ", so the user's company is not known$/,
    );
  });

  it('a company without loginName (only its name)', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 2 });
    await h.sync();
    editFirstListed(h, (user) => (user.company = { name: 'Partner One' }));
    expect(await refused(h)).toMatch(/^record 0 of \S+: field "company\.loginName" is missing, so the user's company is not known$/);
  });

  it("a detail naming another company than the list's (review BA)", async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 2, integrationListIncludesGroups: false });
    await h.sync();
    editDetails(h, (detail) => ({ ...detail, company: { name: 'Partner', loginName: 'partner1' } }));
    expect(await refused(h)).toMatch(/the detail of partyNumber "[^"]+" names another company \("partner1"\); refused rather than merge two users$/);
  });

  it("Oracle's samples: the list names the host _host and the detail by its own login (cpq-mdb), which the company list does not have: one _host user, no warning; a partner's user so named is refused (review CB)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 2, integrationListIncludesGroups: false });
    editDetails(h, (detail) => ({ ...detail, company: { name: 'cpq-mdb', loginName: 'cpq-mdb' } }));
    const result = await h.sync();
    expect(result.warnings.filter((w) => w.includes('cpq-mdb'))).toEqual([]);
    expect(await h.t.query(`SELECT company_login, count(*)::int AS n FROM cpq.users WHERE is_integration_user GROUP BY 1`)).toEqual([
      { company_login: '_host', n: 2 },
    ]);
    scriptRequests(h.sim, async (req) => {
      if (req.path === LIST_PATH) {
        req.reply(editPage(await req.real(), (page) => page.items[0] && (page.items[0].company = { name: 'Partner', loginName: 'partner1' })));
      } else if (req.path.startsWith(`${LIST_PATH}/`)) {
        req.reply(stringifyExactJson({ ...(parseExactJson(await req.real()) as object), company: { name: 'cpq-mdb', loginName: 'cpq-mdb' } }));
      }
    });
    expect(await refused(h)).toMatch(/the detail of partyNumber "[^"]+" names another company \("cpq-mdb"\); refused rather than merge two users$/);
    // A list record naming no company (filed under _host for want of one) is no list saying _host (review CD).
    scriptRequests(h.sim, async (req) => {
      if (req.path === LIST_PATH) {
        req.reply(editPage(await req.real(), (page) => page.items[0] && delete page.items[0].company));
      } else if (req.path.startsWith(`${LIST_PATH}/`)) {
        req.reply(stringifyExactJson({ ...(parseExactJson(await req.real()) as object), company: { name: 'cpq-mdb', loginName: 'cpq-mdb' } }));
      }
    });
    expect(await refused(h)).toMatch(/the detail of partyNumber "[^"]+" names another company \("cpq-mdb"\); refused rather than merge two users$/);
  });

  it("a detail answering for another login than the list's", async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 2, integrationListIncludesGroups: false });
    await h.sync();
    editDetails(h, (detail) => ({ ...detail, login: 'someone.else' }));
    expect(await refused(h)).toMatch(/the detail of partyNumber "[^"]+" names another login \("someone\.else"\); refused rather than merge two users$/);
  });

  it("a detail saying company null, or partyNumber null, while the list names them: refused, not taken for the list's (review BB)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 2, integrationUsers: 2, integrationListIncludesGroups: false });
    await h.sync();
    let nulled = 'company';
    scriptRequests(h.sim, async (req) => {
      if (req.path === LIST_PATH) {
        req.reply(editPage(await req.real(), (page) => page.items[0] && (page.items[0].company = { name: 'Partner', loginName: 'partner1' })));
      } else if (req.path.startsWith(`${LIST_PATH}/`)) {
        req.reply(stringifyExactJson({ ...(parseExactJson(await req.real()) as object), company: { name: 'Partner', loginName: 'partner1' }, [nulled]: null }));
      }
    });
    expect(await refused(h)).toMatch(/the detail of partyNumber "[^"]+" names another company \("_host"\); refused rather than merge two users$/);
    nulled = 'partyNumber';
    expect(await refused(h)).toMatch(/the detail of partyNumber "[^"]+" names another partyNumber \(null\); refused rather than merge two users$/);
  });

  it('one group sent where the list belongs, by the list and the detail alike, is refused as for a company user (review BA)', async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 2, integrationListIncludesGroups: false });
    await h.sync();
    const oneGroup = { variableName: 'sales', label: 'Sales', type: 'Sales' };
    scriptRequests(h.sim, async (req) => {
      if (req.path === LIST_PATH) req.reply(editPage(await req.real(), (page) => page.items[0] && (page.items[0].groups = oneGroup)));
      else if (req.path.startsWith(`${LIST_PATH}/`)) req.reply(stringifyExactJson({ ...(parseExactJson(await req.real()) as object), groups: oneGroup }));
    });
    expect(await refused(h)).toMatch(/field "groups" is one item, not a list of items/);
  });

  it("a detail that leaves out the company keeps the list's, and a run of the same data changes nothing", async ({ startHarness }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 2, integrationListIncludesGroups: false });
    await h.sync();
    const users = `SELECT company_login, login, raw::text, content_hash, last_changed_run_id FROM cpq.users ORDER BY company_login, login`;
    const before = await h.t.query(users);
    editDetails(h, ({ company: _company, ...detail }) => detail);
    const result = await h.sync({ full: true });
    expect({ inserted: result.inserted, updated: result.updated, deleted: result.deleted }).toEqual({ inserted: 0, updated: 0, deleted: 0 });
    expect(await h.t.query(users)).toEqual(before);
  });
});

describe('the integration users a run holds are bounded together like one page (review DD)', () => {
  // Each detail within the page bound, but held until the run's end: 1,000 details of 8 MiB on
  // one list page took 4 GB of heap before the first was normalized.
  it('details adding up to more than CPQ_MAX_PAGE_BYTES fail the run, naming the bound; the same number of smaller ones load', async ({ startHarness }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 8, integrationListIncludesGroups: false },
      { CPQ_MAX_PAGE_BYTES: String(64 * 1024) },
    );
    await h.sync();
    editDetails(h, (detail) => ({ ...detail, notes: 'x'.repeat(4_000) }));
    expect((await h.sync({ full: true })).status).toBe('succeeded');
    editDetails(h, (detail) => ({ ...detail, notes: 'y'.repeat(10_000) }));
    expect(await refused(h)).toMatch(
      /^GET \S+\/integrationUsers\S*: the integration users read add up to more than CPQ_MAX_PAGE_BYTES \(65536\) characters, and a run holds them all; refused$/,
    );
  });

  it('so do the list’s records, large on page after page while the details are small (review DJ)', async ({ startHarness }) => {
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 8, integrationListIncludesGroups: false },
      { CPQ_MAX_PAGE_BYTES: String(64 * 1024), CPQ_PAGE_SIZE: '2' },
    );
    await h.sync();
    // The first user of each of the four list pages: 80,000 characters, each page within the bound.
    editFirstListed(h, (user) => (user.notes = 'z'.repeat(20_000)));
    expect(await refused(h)).toMatch(
      /: the integration users read add up to more than CPQ_MAX_PAGE_BYTES \(65536\) characters, and a run holds them all; refused$/,
    );
  });
});

describe('integration users are keyed by company and login apart', () => {
  test('two users whose company and login run together alike (partner1/0ops, partner10/ops) have two keys', () => {
    expect(userKey('partner1', '0ops')).not.toBe(userKey('partner10', 'ops'));
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (c1, l1, c2, l2) => {
        fc.pre(c1 !== c2 || l1 !== l2);
        expect(userKey(c1, l1)).not.toBe(userKey(c2, l2));
      }),
      { numRuns: 500 },
    );
  });
});
