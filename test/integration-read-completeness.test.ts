import { LosslessNumber, stringify } from 'lossless-json';
import { describe, expect } from 'vitest';
import { matchesFilter, parseFilter } from '../src/simulator/filter.js';
import type { SimulatorOptions } from '../src/simulator/index.js';
import { it } from './helpers/harness.js';
import { scriptRequests } from './helpers/scripted-pages.js';

/**
 * Review CN. The integration feed is a keyset read exactly like a company read
 * (orderby login, then `$gt` on the last login). For company reads the README says: "only
 * totalResults shows that the pages returned every user: where CPQ's sort and its `$gt` disagree
 * on login order, later pages skip users unseen", and a company read without totalResults deletes
 * nothing. The integration read was taken as complete (`IntegrationUsers.complete`) without any
 * totalResults: a user its pages skipped silently was then deleted (a company no company read
 * covers) or stopped being an integration user (a host user), and came back next run.
 *
 * The feed here is CPQ sorting logins without case (a collation) while comparing `$gt` by code
 * unit, and not sending totalResults (Oracle's integration-user list sample has none).
 */
const INTEGRATION_USERS_PATH = '/cpq/rest/v19/integrationUsers';
type Raw = Record<string, unknown>;

const site: SimulatorOptions = { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 };
const LOGINS = ['abc', 'Bcd', 'cde', 'Def'];

function integrationUser(login: string, i: number, company: string): Raw {
  return {
    login,
    partyNumber: `P${i}`,
    partyId: 1000 + i,
    oauthClientId: `client-${i}`,
    dateModified: '2025-01-01T00:00:00.000Z',
    isWebServicesOnly: true,
    company: { loginName: company, name: company },
    groups: { items: [] },
  };
}

/** A page as CPQ would serve it: `q` honoured (code-unit comparison), sorted as `caseless` says, no totalResults. */
function page(users: readonly Raw[], query: Record<string, string>, caseless: boolean, withTotal: boolean): string {
  const filter = query.q === undefined ? undefined : parseFilter(query.q);
  const matching = users.filter((u) => filter === undefined || matchesFilter(filter, u));
  const key = (u: Raw) => (caseless ? String(u.login).toLowerCase() : String(u.login));
  const sorted = [...matching].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const items = sorted.slice(0, Number(query.limit));
  return JSON.stringify({ items, hasMore: sorted.length > items.length, ...(withTotal && query.totalResults ? { totalResults: sorted.length } : {}) });
}

describe('an integration read without totalResults is not complete: nothing stops being an integration user or is deleted by it', () => {
  it('a partner company no company read covers: the integration user the pages skipped is not marked deleted (as a company read deletes nothing without totalResults)', async ({
    startHarness,
  }) => {
    const h = await startHarness(site, { CPQ_PAGE_SIZE: '2' });
    const users = LOGINS.map((login, i) => integrationUser(login, i, 'acme'));
    let caseless = false;
    scriptRequests(h.sim, (req) => {
      if (req.path === INTEGRATION_USERS_PATH) req.reply(page(users, req.query, caseless, !caseless));
    });
    await h.sync({ full: true });
    const present = async () =>
      (await h.t.query<{ login: string }>(`SELECT login FROM cpq.users WHERE company_login = 'acme' AND deleted_at IS NULL ORDER BY login`)).map(
        (r) => r.login,
      );
    expect(await present()).toEqual([...LOGINS].sort());

    // The site now sorts without case and sends no totalResults; nothing changed in CPQ.
    caseless = true;
    const result = await h.sync({ full: true });
    const changes = await h.t.query<{ login: string; change: string }>(`SELECT login, change FROM cpq.user_changes WHERE run_id = $1`, [result.runId]);
    // Def was skipped by the pages (after "cde", $gt by code unit excludes "Def"): nothing says the read was whole.
    expect(changes).toEqual([]);
    expect(result.warnings).toContain(
      'integrationUsers: CPQ sent no totalResults, so the read cannot show that its pages returned every integration user; none stops being one or is marked deleted this run',
    );
    expect(await present()).toEqual([...LOGINS].sort());
  });

  it('a host integration user the pages skipped stays one, with its partyNumber and OAuth client; no change, no alert when the next read returns it', async ({
    startHarness,
  }) => {
    const h = await startHarness(site, {
      CPQ_PAGE_SIZE: '2',
      // Alerts are computed into cpq.alert_outbox (delivery to this closed port just stays pending).
      ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook',
      ALERT_WEBHOOK_SECRET: 'x'.repeat(32),
    });
    for (const login of LOGINS) h.sim.addUser('_host', { login });
    const users = LOGINS.map((login, i) => integrationUser(login, i, '_host'));
    let caseless = false;
    scriptRequests(h.sim, (req) => {
      if (req.path === INTEGRATION_USERS_PATH) req.reply(page(users, req.query, caseless, !caseless));
    });
    await h.sync({ full: true });
    const def = async () =>
      (await h.t.query<Raw>(`SELECT is_integration_user, oauth_client_id, party_number FROM cpq.users WHERE company_login = '_host' AND login = 'Def'`))[0];
    expect(await def()).toEqual({ is_integration_user: true, oauth_client_id: 'client-3', party_number: 'P3' });

    caseless = true;
    const result = await h.sync({ full: true });
    const changes = await h.t.query<{ login: string; change: string }>(`SELECT login, change FROM cpq.user_changes WHERE run_id = $1`, [result.runId]);
    const alerts = async (runId: string) =>
      h.t.query<{ rule: string }>(`SELECT rule FROM cpq.alert_outbox WHERE run_id = $1`, [runId]).catch(() => [{ rule: '(no such column)' }]);
    const afterSkip = { changes, row: await def() };
    // The read after it pages in code-unit order again: the user is an integration user anew, and
    // the security team is told a new integration user appeared.
    caseless = false;
    const back = await h.sync({ full: true });
    const backChanges = await h.t.query<{ login: string; change: string }>(`SELECT login, change FROM cpq.user_changes WHERE run_id = $1`, [back.runId]);
    expect({ afterSkip, backChanges, backAlerts: await alerts(back.runId) }).toEqual({
      afterSkip: { changes: [], row: { is_integration_user: true, oauth_client_id: 'client-3', party_number: 'P3' } },
      backChanges: [],
      backAlerts: [],
    });
  });
});

describe('integration users of two companies that share a login', () => {
  // partyNumber as CPQ may send it: text, or a number (beyond 2^53 too, where a double would make
  // the two keys one). Review GR: a number gave the next page no tie-break, and the second user of
  // the login was never asked for.
  const forms: { name: string; keys: readonly string[]; numbers: boolean }[] = [
    { name: 'as text', keys: ['P0', 'P1', 'P2', 'P3'], numbers: false },
    { name: 'as a number', keys: ['1000', '1001', '1002', '1003'], numbers: true },
    { name: 'as a number past 2^53', keys: ['300000000000000000', '300000000000000001', '300000000000000002', '300000000000000003'], numbers: true },
  ];
  for (const form of forms) {
    it(`a page that ends at one of them is followed by the other: the next page goes on after (login, partyNumber), and both are stored (partyNumber ${form.name})`, async ({
      startHarness,
    }) => {
      const h = await startHarness(site, { CPQ_PAGE_SIZE: '2' });
      const logins = [
        ['aaa', 'acme'],
        ['svc', 'acme'],
        ['svc', 'beta'],
        ['zzz', 'beta'],
      ] as const;
      const users = logins.map(([login, company], i) => ({
        ...integrationUser(login, i, company),
        partyNumber: form.numbers ? new LosslessNumber(form.keys[i]!) : form.keys[i]!,
      }));
      // CPQ honouring q and orderby=login:asc,partyNumber:asc (keys of one length: text order is number order), with totalResults.
      const key = (u: Raw) => `${String(u.login)}\u0000${String(u.partyNumber)}`;
      const asked: string[] = [];
      scriptRequests(h.sim, (req) => {
        if (req.path !== INTEGRATION_USERS_PATH) return;
        if (req.query.q !== undefined) asked.push(req.query.q);
        const filter = req.query.q === undefined ? undefined : parseFilter(req.query.q);
        const sorted = users.filter((u) => filter === undefined || matchesFilter(filter, u)).sort((a, b) => (key(a) < key(b) ? -1 : 1));
        const items = sorted.slice(0, Number(req.query.limit));
        req.reply(stringify({ items, hasMore: sorted.length > items.length, ...(req.query.totalResults ? { totalResults: sorted.length } : {}) })!);
      });
      const result = await h.sync({ full: true });
      // Read whole: no short read (the companies, which the company list does not name, are warned of apart).
      expect(result.warnings.filter((w) => w.startsWith('integrationUsers:'))).toEqual([]);
      // The page after the one ending at acme's svc asks for beta's by its key as sent.
      const tie = form.numbers ? form.keys[1] : JSON.stringify(form.keys[1]);
      expect(asked.some((q) => q.includes(`{"partyNumber":{"$gt":${tie}}}`))).toBe(true);
      const stored = await h.t.query<{ company_login: string; login: string; party_number: string }>(
        `SELECT company_login, login, party_number FROM cpq.users WHERE is_integration_user AND deleted_at IS NULL ORDER BY login, party_number`,
      );
      expect(stored).toEqual(logins.map(([login, company], i) => ({ company_login: company, login, party_number: form.keys[i] })));
    });
  }
});
