import { readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { canonicalFieldName } from '../src/cpq/user-fields.js';
import { INTEGRATION_FEED_FIELDS } from '../src/normalize/feed-fields.js';
import { LosslessNumber, parseExactJson, stringifyExactJson } from '../src/exact-json.js';
import { matchesFilter, parseFilter } from '../src/simulator/filter.js';
import type { SimulatorOptions } from '../src/simulator/index.js';
import { parseOrderBy, sortByKeys } from '../src/simulator/orderby.js';
import { type Harness, it } from './helpers/harness.js';
import { editPage, scriptRequests } from './helpers/scripted-pages.js';

/**
 * A field only one feed provides is never cleared by a read that did not include that feed
 * (src/normalize/feed-fields.ts). The user under test is a host user that is also an integration
 * user, like Oracle's `_custom_user_…` sample: the company feed (v16) sends it without partyId,
 * partyNumber or company, the integration feed (v19) with them and its OAuth client.
 */

type Raw = Record<string, unknown>;
const INTEGRATION_USERS_PATH = '/cpq/rest/v19/integrationUsers';
const HOST_USERS_PATH = '/cpq/rest/v16/companies/_host/users';
const EMPTY_PAGE = '{"items":[],"hasMore":false}';

/** What the database holds of a user: every column a one-feed read could clear, the digest and raw. */
async function stored(h: Harness, login: string) {
  const [row] = await h.t.query<Raw>(
    `SELECT is_integration_user, oauth_client_id, party_id::text AS party_id, party_number, cpq_id::text AS cpq_id, company_name,
            content_hash, raw::text AS raw, last_changed_run_id::text AS last_changed_run_id, deleted_at
     FROM cpq.users WHERE company_login = '_host' AND login = $1`,
    [login],
  );
  return row!;
}

/** The change rows of a run: login, change, and the fields its diff names. */
async function changesOf(h: Harness, runId: string) {
  const rows = await h.t.query<{ login: string; change: string; diff: Raw | null }>(
    `SELECT login, change, diff FROM cpq.user_changes WHERE run_id = $1 ORDER BY login`,
    [runId],
  );
  return rows.map((r) => ({ login: r.login, change: r.change, fields: Object.keys(r.diff ?? {}).sort() }));
}

/** The host read of a run: how many users it returned. */
const hostReceived = (result: Awaited<ReturnType<Harness['sync']>>) => result.streams.find((s) => s.stream === 'companies/_host')!.received;

/**
 * A host user as Oracle's v16 sample sends it: none of the integration feed's fields, and no
 * isApplicationAdminPermEnabled, which the v19 samples have and the v16 one does not (review AA:
 * a one-feed read cleared it, and alerted on it).
 */
function asV16Record(user: Raw): Raw {
  const {
    partyId: _partyId,
    partyNumber: _partyNumber,
    id: _id,
    oauthClientId: _client,
    company: _company,
    isApplicationAdminPermEnabled: _applicationAdmin,
    ...rest
  } = user;
  return rest;
}

const site: SimulatorOptions = { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 2 };

/**
 * The integration user edited longest ago: an incremental integration read (whose lookback
 * re-reads the newest) does not return it.
 */
function oldestIntegrationUser(h: Harness): Raw {
  return h.sim.integrationUsers().sort((a, b) => (String(a.dateModified) < String(b.dateModified) ? -1 : 1))[0]!;
}

describe('an integration user read by the company feed alone keeps what the integration feed gave it', () => {
  it('JSON: an incremental run whose integration read returns nothing, while the host read re-reads the user in its lookback, logs nothing', async ({
    startHarness,
  }) => {
    const h = await startHarness(site);
    await h.sync();
    const user = h.sim.integrationUsers()[0]!;
    const login = String(user.login);
    // An edit makes the user the newest host user: from now on every host read re-reads it in its lookback window.
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    const edited = await h.sync();
    expect(await changesOf(h, edited.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    const before = await stored(h, login);
    expect(before).toMatchObject({
      is_integration_user: true,
      oauth_client_id: user.oauthClientId,
      party_number: user.partyNumber,
      party_id: String(user.partyId),
    });

    // The integration read's window holds no edit this time: it returns nothing.
    h.sim.addFault({ match: { path: INTEGRATION_USERS_PATH }, times: 1, status: 200, body: EMPTY_PAGE });
    const reread = await h.sync();
    expect(reread.mode).toBe('incremental');
    expect(hostReceived(reread)).toBeGreaterThanOrEqual(1);
    expect(reread).toMatchObject({ updated: 0, inserted: 0 });
    expect(await changesOf(h, reread.runId)).toEqual([]);
    expect(await stored(h, login)).toEqual(before);

    // Both feeds again (the next full read of the integration feed is not needed to set anything back).
    const both = await h.sync();
    expect(hostReceived(both)).toBeGreaterThanOrEqual(1);
    expect(await changesOf(h, both.runId)).toEqual([]);
    expect(await stored(h, login)).toEqual(before);
  });

  it('a field only the company feed sends, left out of its record, is gone for an integration user as for any other (review BA)', async ({ startHarness }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { costCenter: 'CC1', jobTitle: 'Engineer' });
    // The integration feed sends neither (Oracle's v19 samples have no names; the simulator sends every field).
    let hostOmits: string[] = [];
    let integrationMisses = false;
    feedsSend(h, login, () => ({ host: { omit: hostOmits }, integration: { omit: ['costCenter', 'jobTitle'] } }), { integration: () => integrationMisses });
    await h.sync();
    expect(await stored(h, login)).toMatchObject({ is_integration_user: true });
    // The host feed now leaves both out (and re-reads the user); the integration read returns nothing.
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    hostOmits = ['costCenter', 'jobTitle'];
    integrationMisses = true;
    const run = await h.sync();
    expect(run.mode).toBe('incremental');
    expect(await changesOf(h, run.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'job_title', 'last_login', 'raw.costCenter'] }]);
    // What the integration feed gave stays.
    expect(await stored(h, login)).toMatchObject({ is_integration_user: true, party_number: expect.any(String) as unknown });
  });

  it("the fields it keeps are those of Oracle's v19 integration-user samples, but the login, links and groups", () => {
    // Oracle's samples, as ../shared/cpq-api/integration-users-v19.txt shows them (test/fixtures/cpq-api).
    const doc = readFileSync(new URL('./fixtures/cpq-api/integration-users-v19-samples.jsonl', import.meta.url), 'utf8');
    const samples = doc
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        const parsed = parseExactJson(line) as Raw;
        return Array.isArray(parsed.items) ? (parsed.items as Raw[]) : [parsed];
      })
      .filter((record) => 'login' in record);
    expect(samples.length).toBeGreaterThanOrEqual(3);
    const names = new Set(samples.flatMap((record) => Object.keys(record).map((key) => canonicalFieldName(key) ?? key)));
    for (const structural of ['login', 'links', 'groups']) names.delete(structural);
    expect([...INTEGRATION_FEED_FIELDS].sort()).toEqual([...names].sort());
  });

  it('JSON: an edit between the integration read and the host read logs the edit alone', async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const user = oldestIntegrationUser(h);
    const login = String(user.login);
    const before = await stored(h, login);
    const lastLogin = new Date().toISOString();
    // The integration feed is read first (nothing changed there); the user logs in before the host read.
    h.sim.onRequest = (req) => {
      if (req.path === HOST_USERS_PATH) {
        h.sim.onRequest = undefined;
        h.sim.updateUser('_host', login, { lastLogin });
      }
    };
    const raced = await h.sync();
    expect(raced.mode).toBe('incremental');
    expect(await changesOf(h, raced.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    const after = await stored(h, login);
    expect(after).toMatchObject({
      is_integration_user: true,
      oauth_client_id: before.oauth_client_id,
      party_id: before.party_id,
      party_number: before.party_number,
      cpq_id: before.cpq_id,
      company_name: before.company_name,
    });
    // raw still holds what the integration feed sent, int64 digit for digit.
    expect(after.raw).toContain(`"partyId": ${String(user.partyId)}`);

    // The next run reads the edit from the integration feed too: the same content, nothing logged.
    const next = await h.sync();
    expect(next.streams.find((s) => s.stream === 'integrationUsers')!.received).toBeGreaterThanOrEqual(1);
    expect(await changesOf(h, next.runId)).toEqual([]);
    expect((await stored(h, login)).content_hash).toBe(after.content_hash);
  });

  it("JSON: a v16 record without partyId, partyNumber, id, oauthClientId or company (Oracle's sample shape) clears none of them", async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const user = h.sim.integrationUsers()[0]!;
    const login = String(user.login);
    const before = await stored(h, login);
    expect(before.cpq_id === null && before.party_id === null).toBe(false);
    // The host read returns the user as Oracle's v16 sample shows users; the integration read returns nothing.
    const record = asV16Record(h.sim.user('_host', login)!);
    h.sim.addFault({ match: { path: HOST_USERS_PATH }, times: 1, status: 200, body: JSON.stringify({ items: [record], hasMore: false }) });
    h.sim.addFault({ match: { path: INTEGRATION_USERS_PATH }, times: 1, status: 200, body: EMPTY_PAGE });
    const result = await h.sync();
    expect(result).toMatchObject({ mode: 'incremental', updated: 0, unchanged: 1 });
    expect(await changesOf(h, result.runId)).toEqual([]);
    expect(await stored(h, login)).toEqual(before);
  });

  it('zip: every zip read re-reads the user, and the integration feed is read in full beside it; nothing is logged', async ({ startHarness }) => {
    const h = await startHarness({ ...site, zipExport: {} }, { CPQ_EXPORT_FORMAT: 'zip' });
    const first = await h.sync();
    expect(first.inserted).toBe(5 + 2);
    const logins = h.sim.integrationUsers().map((u) => String(u.login));
    const before = await Promise.all(logins.map((login) => stored(h, login)));
    for (const row of before) expect(row).toMatchObject({ is_integration_user: true });
    for (let run = 0; run < 2; run++) {
      const result = await h.sync();
      // A window narrower than the zip read's would leave users to the zip export alone, merged with
      // their stored integration fields, which lose any field only that feed sends (sync.test.ts).
      expect(result.streams.map((s) => [s.stream, s.mode, s.received])).toEqual([
        ['integrationUsers', 'full', 2],
        ['companies/_host', 'full', 7],
      ]);
      expect(result).toMatchObject({ updated: 0, unchanged: 7 });
      expect(await changesOf(h, result.runId)).toEqual([]);
      expect(await Promise.all(logins.map((login) => stored(h, login)))).toEqual(before);
    }
  });
});

describe('a one-feed field changed by its own feed is still logged', () => {
  it('a rotated OAuth client, read from the integration feed', async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const login = String(h.sim.integrationUsers()[0]!.login);
    const before = await stored(h, login);
    // The host read returns the user without the integration feed's fields; the integration read brings the new client.
    h.sim.updateUser('_host', login, { oauthClientId: 'rotated-client' });
    const record = asV16Record(h.sim.user('_host', login)!);
    h.sim.addFault({ match: { path: HOST_USERS_PATH }, times: 1, status: 200, body: JSON.stringify({ items: [record], hasMore: false }) });
    const result = await h.sync();
    const [change] = await h.t.query<{ diff: Raw }>(`SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [result.runId, login]);
    expect(change!.diff.oauth_client_id).toEqual({ old: before.oauth_client_id, new: 'rotated-client' });
    expect(Object.keys(change!.diff).sort()).toEqual(['date_modified', 'oauth_client_id']);
    expect(await stored(h, login)).toMatchObject({ is_integration_user: true, oauth_client_id: 'rotated-client', party_id: before.party_id });
  });

  it("an admin flag revoked, read from the integration feed alone under the detail endpoint's spelling, is revoked and logged", async ({ startHarness }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: true });
    await h.sync();
    expect(await h.t.query(`SELECT is_user_admin_perm_enabled FROM cpq.users WHERE login = $1`, [login])).toEqual([{ is_user_admin_perm_enabled: true }]);
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: false });
    scriptRequests(h.sim, async (req) => {
      // The host read misses the user (an incremental window); the integration list comes without
      // groups, so the user's detail is read, which spells the flag as Oracle's detail sample does.
      if (req.path === HOST_USERS_PATH) req.reply(EMPTY_PAGE);
      if (req.path === INTEGRATION_USERS_PATH) req.reply(editPage(await req.real(), (p) => p.items.forEach((u) => delete u.groups)));
      if (req.path.startsWith(`${INTEGRATION_USERS_PATH}/`)) {
        const { isUserAdminPermEnabled, ...rest } = parseExactJson(await req.real()) as Raw;
        req.reply(stringifyExactJson({ ...rest, isSuperUserPermEnabled: isUserAdminPermEnabled }));
      }
    });
    const result = await h.sync();
    const [after] = await h.t.query<Raw>(
      `SELECT is_user_admin_perm_enabled, raw ? 'isUserAdminPermEnabled' AS stored_spelling, raw->'isSuperUserPermEnabled' AS detail_spelling FROM cpq.users WHERE login = $1`,
      [login],
    );
    expect(after).toEqual({ is_user_admin_perm_enabled: false, stored_spelling: false, detail_spelling: false });
    const [change] = await h.t.query<{ diff: Raw }>(`SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [result.runId, login]);
    expect(change!.diff.is_user_admin_perm_enabled).toEqual({ old: true, new: false });
  });

  it("a user both feeds return, each spelling the admin flag its own way: the integration feed's value, under one spelling", async ({ startHarness }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    scriptRequests(h.sim, async (req) => {
      // The company feed (v16) says admin under the v19 spelling; the integration detail says not, as isSuperUserPermEnabled.
      if (req.path === HOST_USERS_PATH)
        req.reply(editPage(await req.real(), (p) => p.items.filter((u) => u.login === login).forEach((u) => (u.isUserAdminPermEnabled = true))));
      if (req.path === INTEGRATION_USERS_PATH) req.reply(editPage(await req.real(), (p) => p.items.forEach((u) => delete u.groups)));
      if (req.path.startsWith(`${INTEGRATION_USERS_PATH}/`)) {
        const { isUserAdminPermEnabled: _flag, ...rest } = parseExactJson(await req.real()) as Raw;
        req.reply(stringifyExactJson({ ...rest, isSuperUserPermEnabled: false }));
      }
    });
    await h.sync({ full: true });
    const [row] = await h.t.query<Raw>(
      `SELECT is_user_admin_perm_enabled, raw ? 'isUserAdminPermEnabled' AS v19_spelling, raw->'isSuperUserPermEnabled' AS detail_spelling FROM cpq.users WHERE login = $1`,
      [login],
    );
    expect(row).toEqual({ is_user_admin_perm_enabled: false, v19_spelling: false, detail_spelling: false });
  });

  it.for([
    ['in a first load', true],
    ['in a later full run', false],
  ] as const)('an integration user the company feed sends twice stays an integration user, with its fields, %s', async ([, firstLoad], { startHarness }) => {
    const h = await startHarness(site);
    const user = h.sim.integrationUsers()[0]!;
    const login = String(user.login);
    const sendTwice = () =>
      scriptRequests(h.sim, async (req) => {
        if (req.path === HOST_USERS_PATH) req.reply(editPage(await req.real(), (p) => p.items.push({ ...p.items.find((u) => u.login === login)! })));
      });
    if (!firstLoad) await h.sync();
    sendTwice();
    const result = await h.sync({ full: true });
    expect(await stored(h, login)).toMatchObject({ is_integration_user: true, party_number: String(user.partyNumber), oauth_client_id: user.oauthClientId });
    if (!firstLoad) expect(await changesOf(h, result.runId)).toEqual([]);
  });

  it('a repeated integration user cannot hide one left out: the integration read is short, and the one left out stays an integration user', async ({
    startHarness,
  }) => {
    const h = await startHarness({ ...site, integrationUsers: 3 });
    await h.sync({ full: true });
    let dropped = '';
    scriptRequests(h.sim, async (req) => {
      if (req.path === INTEGRATION_USERS_PATH)
        req.reply(
          editPage(await req.real(), (p) => {
            dropped = String(p.items[1]!.login);
            p.items[1] = { ...p.items[0]! };
          }),
        );
    });
    const result = await h.sync({ full: true });
    expect(result.warnings).toContain(
      'integrationUsers: read 2 of 3 users that CPQ reported (totalResults) (3 records, for 2 different users); the read was short',
    );
    expect(await stored(h, dropped)).toMatchObject({ is_integration_user: true });
    expect(await changesOf(h, result.runId)).toEqual([]);
  });

  it('a full, complete integration read that no longer returns the user ends is_integration_user', async ({ startHarness }) => {
    const h = await startHarness(site);
    await h.sync();
    const login = String(h.sim.integrationUsers()[0]!.login);
    // Only a full read can say the user is not an integration user any more (an incremental read
    // that does not return it changes nothing: see above), and only a complete one: a short read
    // (fewer users than its totalResults) changes nothing either.
    h.sim.addFault({ match: { path: INTEGRATION_USERS_PATH }, times: 1, status: 200, body: '{"items":[],"hasMore":false,"totalResults":2}' });
    const short = await h.sync({ full: true });
    expect(short.streams.find((s) => s.stream === 'integrationUsers')).toMatchObject({ mode: 'full', shortRead: true });
    expect(await changesOf(h, short.runId)).toEqual([]);
    expect((await stored(h, login)).is_integration_user).toBe(true);
    // Complete: CPQ says how many there are (none), as only totalResults shows a keyset read is whole.
    h.sim.addFault({ match: { path: INTEGRATION_USERS_PATH }, times: 1, status: 200, body: '{"items":[],"hasMore":false,"totalResults":0}' });
    const full = await h.sync({ full: true });
    const [change] = await h.t.query<{ change: string; diff: Raw }>(`SELECT change, diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [
      full.runId,
      login,
    ]);
    expect(change).toMatchObject({ change: 'update' });
    expect(change!.diff.is_integration_user).toEqual({ old: true, new: false });
    expect((await stored(h, login)).is_integration_user).toBe(false);
    // Which feed gave which field is kept for integration users only.
    expect(await feedFieldsOf(h, login)).toBeUndefined();
  });
});

/** The fields each feed's record had at its last read of the user, as cpq.user_feed_fields holds them (undefined: no row). */
async function feedFieldsOf(h: Harness, login: string): Promise<{ company: string[] | null; integration: string[] | null } | undefined> {
  const rows = await h.t.query<{ company: string[] | null; integration: string[] | null }>(
    `SELECT f.company_fields AS company, f.integration_fields AS integration
     FROM cpq.user_feed_fields f JOIN cpq.users u ON u.id = f.user_id WHERE u.company_login = '_host' AND u.login = $1`,
    [login],
  );
  return rows[0];
}

/** The top-level keys of the user's stored raw. */
async function rawKeys(h: Harness, login: string): Promise<string[]> {
  return Object.keys(JSON.parse(String((await stored(h, login)).raw)) as Raw).sort();
}

/** What each feed sends of the user beyond what the simulator gives it: fields added, and fields left out. */
interface FeedEdit {
  add?: Raw;
  omit?: string[];
}

/**
 * Serves the user `login` edited in each feed (the integration feed's list and detail alike):
 * `edits()` says how, read at each request; while `misses.host()` (or `misses.integration()`), a
 * read of that feed that does not return the user (an incremental window that missed it).
 */
function feedsSend(
  h: Harness,
  login: string,
  edits: () => { host?: FeedEdit; integration?: FeedEdit },
  misses: { host?: () => boolean; integration?: () => boolean } = {},
): void {
  const edited = (user: Raw, edit: FeedEdit | undefined) => {
    for (const key of edit?.omit ?? []) Reflect.deleteProperty(user, key);
    return Object.assign(user, edit?.add ?? {});
  };
  scriptRequests(h.sim, async (req) => {
    const host = req.path === HOST_USERS_PATH;
    if (host || req.path === INTEGRATION_USERS_PATH) {
      if ((host ? misses.host : misses.integration)?.() === true) req.reply(EMPTY_PAGE);
      else req.reply(editPage(await req.real(), (p) => p.items.forEach((u) => u.login === login && edited(u, host ? edits().host : edits().integration))));
    }
    if (req.path.startsWith(`${INTEGRATION_USERS_PATH}/`)) req.reply(stringifyExactJson(edited(parseExactJson(await req.real()) as Raw, edits().integration)));
  });
}

describe("a field no column names: a read of one feed keeps it only if the other feed's last record had it (cpq.user_feed_fields)", () => {
  it("a custom field the integration feed stops sending is gone after a read of that feed alone; the company feed's own custom field stays, and the row does not grow", async ({
    startHarness,
  }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.updateUser('_host', login, { costCenter: 'CC1' });
    // costCenter is the company feed's alone; c7, then c8, then c9 the integration feed's alone.
    let integrationAdds: Raw = { c7: 1 };
    let hostMisses = false;
    feedsSend(h, login, () => ({ integration: { add: integrationAdds, omit: ['costCenter'] } }), { host: () => hostMisses });
    await h.sync();
    expect(await rawKeys(h, login)).toEqual(expect.arrayContaining(['c7', 'costCenter']));
    const lists = await feedFieldsOf(h, login);
    expect(lists?.company).toEqual(expect.arrayContaining(['costCenter', 'login']));
    expect(lists?.company).not.toContain('c7');
    expect(lists?.integration).toEqual(expect.arrayContaining(['c7', 'login', 'oauthClientId']));
    expect(lists?.integration).not.toContain('costCenter');

    // Only the integration feed returns the user now (an edit dates it in that read's window; the host read misses it).
    hostMisses = true;
    const keysBefore = (await rawKeys(h, login)).length;
    for (const field of ['c8', 'c9']) {
      integrationAdds = { [field]: 2 };
      h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
      const run = await h.sync();
      expect(hostReceived(run)).toBe(0);
      const keys = await rawKeys(h, login);
      expect(keys, `after the integration feed alone sent ${field}`).toContain(field);
      expect(keys).toContain('costCenter');
      expect(
        keys.filter((k) => /^c\d$/.test(k)),
        'custom fields of the integration feed kept',
      ).toEqual([field]);
      expect(keys).toHaveLength(keysBefore);
      const [change] = await changesOf(h, run.runId);
      expect(change).toMatchObject({ login, change: 'update' });
      expect(change!.fields).toContain(`raw.${field}`);
    }
  });

  it('a custom field only the integration feed sends is kept by a read of the company feed alone: no removal logged, none added back', async ({
    startHarness,
  }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    let integrationMisses = false;
    feedsSend(h, login, () => ({ integration: { add: { c7: 1 } } }), { integration: () => integrationMisses });
    await h.sync();
    expect(await rawKeys(h, login)).toContain('c7');

    // The host read re-reads the user (edited); the integration read returns nothing.
    integrationMisses = true;
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    const companyAlone = await h.sync();
    expect(hostReceived(companyAlone)).toBeGreaterThanOrEqual(1);
    expect(await changesOf(h, companyAlone.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    expect(await rawKeys(h, login)).toContain('c7');

    // Both feeds again: nothing to log.
    integrationMisses = false;
    const both = await h.sync();
    expect(await changesOf(h, both.runId)).toEqual([]);
    expect(await rawKeys(h, login)).toContain('c7');
  });

  it('a custom field both feeds sent, that the company feed stops sending, stays while the integration feed alone was read last; gone when neither sends it', async ({
    startHarness,
  }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    let hostSends = true;
    let integrationSends = true;
    let integrationMisses = false;
    feedsSend(h, login, () => ({ host: hostSends ? { add: { shared: 'S' } } : {}, integration: integrationSends ? { add: { shared: 'S' } } : {} }), {
      integration: () => integrationMisses,
    });
    await h.sync();
    expect(await rawKeys(h, login)).toContain('shared');
    // The company feed no longer sends it, and alone returns the user: the integration feed's last record had it.
    hostSends = false;
    integrationMisses = true;
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    const companyAlone = await h.sync();
    expect(await changesOf(h, companyAlone.runId)).toEqual([{ login, change: 'update', fields: ['date_modified', 'last_login'] }]);
    expect(await rawKeys(h, login)).toContain('shared');
    // Both feeds, neither sending it: gone, and logged.
    integrationSends = false;
    integrationMisses = false;
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    const both = await h.sync();
    expect(await rawKeys(h, login)).not.toContain('shared');
    expect((await changesOf(h, both.runId))[0]!.fields).toContain('raw.shared');
  });

  // [told apart by, what the integration feed adds for the former holder, for the new one, what the new one's raw then says]
  for (const [told, formerHolder, newHolder, says] of [
    ['another dateAdded (review GI)', {}, { dateAdded: '2031-01-01T00:00:00.000Z' }, { dateAdded: '2031-01-01T00:00:00.000Z' }],
    ['another CPQ id, its dateAdded the same (review GJ)', { id: 1111 }, { id: 2222 }, { id: 2222 }],
    [
      'another CPQ id written as a decimal, 2222.0, which the normalizer reads as 2222 (review GL)',
      { id: 1111 },
      { id: new LosslessNumber('2222.0') },
      { id: 2222 },
    ],
  ] as const) {
    it(`a login given to another integration user, told apart by ${told}, read by the integration feed alone, keeps nothing of the former holder's`, async ({
      startHarness,
    }) => {
      const h = await startHarness(site);
      const login = String(h.sim.integrationUsers()[0]!.login);
      h.sim.updateUser('_host', login, { costCenter: 'FORMER-HOLDER' });
      let reused = false;
      feedsSend(h, login, () => ({ integration: { omit: ['costCenter'], add: reused ? newHolder : formerHolder } }), { host: () => reused });
      await h.sync();
      expect(await rawKeys(h, login)).toContain('costCenter');
      // The former holder is deleted in CPQ and its login given to a new integration user; only the integration feed returns it.
      reused = true;
      h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
      await h.sync();
      const raw = JSON.parse(String((await stored(h, login)).raw)) as Raw;
      expect(raw).toMatchObject(says);
      expect(raw.costCenter, "the former holder's company field").toBeUndefined();
      expect((await feedFieldsOf(h, login))?.company).toEqual([]);
    });
  }

  it("a login given to another integration user, read by the integration feed alone (it sends no permissions): the former holder's access permissions are removed, and logged", async ({
    startHarness,
  }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    h.sim.setAccessPermission('_host', login, { type: 'productFamily', variableName: 'servers', name: 'Servers', hasAccess: true });
    let newHolder = false;
    feedsSend(h, login, () => ({ integration: newHolder ? { add: { dateAdded: '2031-01-01T00:00:00.000Z' } } : {} }), { host: () => newHolder });
    await h.sync();
    const permissions = () =>
      h.t.query<{ variable_name: string }>(
        `SELECT p.variable_name FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id WHERE u.company_login = '_host' AND u.login = $1`,
        [login],
      );
    expect((await permissions()).map((p) => p.variable_name)).toContain('servers');
    newHolder = true;
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    const reused = await h.sync();
    expect(hostReceived(reused)).toBe(0);
    expect(await permissions(), "the former holder's permissions").toEqual([]);
    const [change] = await h.t.query<{ diff: Raw }>(`SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [reused.runId, login]);
    expect((change!.diff.accessPermissions as { removed: { variableName: string }[] }).removed.map((p) => p.variableName)).toContain('servers');
    expect(JSON.parse(String((await stored(h, login)).raw)) as Raw).not.toHaveProperty('accessPermissions');
    // Read again the same way: nothing more to say.
    h.sim.updateUser('_host', login, { lastLogin: new Date(Date.now() + 1000).toISOString() });
    const again = await h.sync();
    expect((await changesOf(h, again.runId)).map((c) => c.fields.filter((f) => f === 'accessPermissions'))).toEqual([[]]);
    expect(await permissions()).toEqual([]);
  });

  it('a first load read in key ranges that returns an integration user twice keeps the lists of the copy it stores, not of the copy read last (review GI)', async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { ...site, usersPerCompany: 40, integrationUsers: 0 },
      { CPQ_PAGE_SIZE: '4', CPQ_KEY_RANGES: '3', CPQ_SPLIT_SLOWER_THAN: '0ms' },
    );
    // An integration user in the middle of the logins: read by a range before the last one.
    const middle = String(h.sim.users('_host')[12]!.login);
    const login = h.sim.addUser('_host', { login: `${middle}-int`, oauthClientId: 'client-in-the-middle' });
    let lastRangeServed: () => void = () => {};
    const served = new Promise<void>((resolve) => (lastRangeServed = resolve));
    let injected = false;
    scriptRequests(h.sim, async (req) => {
      if (req.path !== HOST_USERS_PATH || req.query.limit !== '4') return;
      const q = req.query.q ?? '';
      const body = await req.real();
      const items = (parseExactJson(body) as { items: unknown[] }).items.length;
      if (!injected && !q.includes('$lt') && q.includes('login') && items < 4) {
        // The last range's last page sends the user again, out of its bounds (staged, and kept
        // over the copy loaded directly), with a field the other copy lacks.
        injected = true;
        req.reply(editPage(body, (p) => p.items.push({ ...(p.items[0] ?? {}), ...h.sim.user('_host', login)!, costCenter: 'STAGED' })));
        setTimeout(lastRangeServed, 300);
      } else if (body.includes(`"${login}"`)) {
        // Its own range's copy is read after it.
        await served;
        req.reply(body);
      }
    });
    const run = await h.sync();
    expect(injected).toBe(true);
    expect(run.streams.find((s) => s.stream === 'companies/_host')).toMatchObject({ keyRanges: 3 });
    const raw = JSON.parse(String((await stored(h, login)).raw)) as Raw;
    expect(raw.costCenter, 'the staged copy is stored').toBe('STAGED');
    expect((await feedFieldsOf(h, login))?.company, "the stored copy's company fields").toContain('costCenter');
  });

  it('a row stored without the lists (before migration 0035) is read as before, until a read of both feeds records them', async ({ startHarness }) => {
    const h = await startHarness(site);
    const login = String(h.sim.integrationUsers()[0]!.login);
    let integrationAdds: Raw = { c7: 1 };
    let hostMisses = false;
    feedsSend(h, login, () => ({ integration: { add: integrationAdds } }), { host: () => hostMisses });
    await h.sync();
    await h.t.query(`DELETE FROM cpq.user_feed_fields`);
    hostMisses = true;
    integrationAdds = {};
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    await h.sync();
    // Which feed gave c7 is not known: it is taken for the company feed's, and kept.
    expect(await rawKeys(h, login)).toContain('c7');
    expect((await feedFieldsOf(h, login))?.company).toContain('c7');
    // A read of both feeds records what each gives, and c7, which neither sends, is gone.
    hostMisses = false;
    h.sim.updateUser('_host', login, { lastLogin: new Date().toISOString() });
    await h.sync();
    expect(await rawKeys(h, login)).not.toContain('c7');
    expect((await feedFieldsOf(h, login))?.company).not.toContain('c7');
  });
});

describe('groups the integration list does not expand', () => {
  it('an integration list whose groups come without items ({links}): the detail is read, and a membership removed in CPQ is removed', async ({
    startHarness,
  }) => {
    const h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 1, integrationListIncludesGroups: true });
    scriptRequests(h.sim, async (req) => {
      if (!req.path.endsWith('/integrationUsers')) return;
      req.reply(editPage(await req.real(), (page) => page.items.forEach((u) => (u.groups = { links: [{ rel: 'self', href: `${h.sim.baseUrl}/x/groups` }] }))));
    });
    const login = String(h.sim.integrationUsers()[0]!.login);
    const stored = async () =>
      (
        await h.t.query<{ g: string }>(
          `SELECT ug.group_variable_name AS g FROM cpq.user_groups ug JOIN cpq.users u ON u.id = ug.user_id WHERE u.login = $1 ORDER BY 1`,
          [login],
        )
      ).map((r) => r.g);
    const inCpq = () => (h.sim.user('_host', login)!.groups as { items: { variableName: string }[] }).items.map((g) => g.variableName).sort();
    await h.sync({ full: true });
    expect(await stored()).toEqual(inCpq());
    h.sim.removeGroup('_host', login, inCpq()[0]!);
    await h.sync({ full: true });
    expect(await stored()).toEqual(inCpq());
  });
});

describe('cursors', () => {
  it('a read that returns no user leaves its cursor unset, so a user added later on a site whose clock is behind ours is still read', async ({
    startHarness,
  }) => {
    // The site's clock runs a day behind the machine running the sync.
    const dayBehind = () => new Date(Date.now() - 24 * 3600_000);
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0, pathPrefix: '/cpq', now: dayBehind });
    await h.sync();
    const [state] = await h.t.query<{ cursor: Date | null }>(`SELECT cursor FROM cpq.sync_state WHERE stream = 'integrationUsers'`);
    expect(state!.cursor).toBeNull();
    const response = await fetch(`${h.config.cpq!.baseUrl}/cpq/rest/v19/integrationUsers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oauthClientId: 'late-client' }),
    });
    expect(response.status).toBe(201);
    await h.sync();
    const [user] = await h.t.query<{ is_integration_user: boolean }>(`SELECT is_integration_user FROM cpq.users WHERE login = '_custom_late-client'`);
    expect(user).toEqual({ is_integration_user: true });
  });
});

describe('integration users are read across companies', () => {
  /**
   * GET /cpq/rest/v19/integrationUsers "returns a list of integration users across all companies":
   * a login is unique per company only. The feed is answered here with the simulator's own q and
   * orderby engine over users of three companies, two of which share the login `api`.
   */
  const USERS = [
    { login: 'aaa', company: { loginName: '_host', name: 'Host' } },
    { login: 'api', company: { loginName: 'acme', name: 'Acme' } },
    { login: 'api', company: { loginName: 'globex', name: 'Globex' } },
    { login: 'zeta', company: { loginName: '_host', name: 'Host' } },
  ].map((u, i) => ({ ...u, partyNumber: `P${i}`, oauthClientId: `c${i}`, dateModified: '2025-01-01T00:00:00.000Z', groups: { items: [] } }));

  function integrationPage(query: Record<string, string>, users: readonly Record<string, unknown>[] = USERS): string {
    const filter = query.q === undefined ? undefined : parseFilter(query.q);
    const matching = users.filter((u) => filter === undefined || matchesFilter(filter, u));
    const sorted = sortByKeys(matching, parseOrderBy(query.orderby ?? ''), (u) => u);
    const page = sorted.slice(0, Number(query.limit));
    return JSON.stringify({ items: page, hasMore: sorted.length > page.length, ...(query.totalResults ? { totalResults: sorted.length } : {}) });
  }

  it("two companies' users with one login, either side of a page boundary, are both read, in full and incremental runs", async ({ startHarness }) => {
    const h = await startHarness({ ...site, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '2' });
    const asked: string[] = [];
    scriptRequests(h.sim, (req) => {
      if (req.path !== INTEGRATION_USERS_PATH) return;
      asked.push(req.query.orderby ?? '');
      req.reply(integrationPage(req.query));
    });
    for (const full of [true, false]) {
      const result = await h.sync({ full });
      expect(result.streams.find((s) => s.stream === 'integrationUsers')).toMatchObject({ received: 4, totalResults: 4, shortRead: false });
      const stored = await h.t.query(`SELECT company_login, login, party_number FROM cpq.users WHERE is_integration_user ORDER BY party_number`);
      expect(stored).toEqual(USERS.map((u) => ({ company_login: u.company.loginName, login: u.login, party_number: u.partyNumber })));
    }
    expect(new Set(asked)).toEqual(new Set(['login:asc,partyNumber:asc']));
  });

  it('a partyNumber sent as a number is paged on as that number: both users of the login are read (review GR; it paged on the login alone, a short read)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ ...site, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '2' });
    const numbered = USERS.map((u, i) => ({ ...u, partyNumber: 1000 + i }));
    scriptRequests(h.sim, (req) => {
      if (req.path === INTEGRATION_USERS_PATH) req.reply(integrationPage(req.query, numbered));
    });
    const result = await h.sync({ full: true });
    expect(result.streams.find((s) => s.stream === 'integrationUsers')).toMatchObject({ received: 4, totalResults: 4, shortRead: false });
    const stored = await h.t.query(`SELECT company_login, login, party_number FROM cpq.users WHERE is_integration_user ORDER BY party_number`);
    expect(stored).toEqual(numbered.map((u) => ({ company_login: u.company.loginName, login: u.login, party_number: String(u.partyNumber) })));
  });
});
