import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect } from 'vitest';
import { alertPayload, deliverPendingAlerts, describe as describeAlert, postAlert } from '../src/alerts/delivery.js';
import { signBody, verifySignature } from '../src/alerts/signing.js';
import { globToIlike } from '../src/db/sql/insert-alerts.js';
import pg from 'pg';
import pino from 'pino';
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { ALERT_FLOOD_RULE, ALERT_RULE_NAMES, loadConfig } from '../src/config.js';
import { claimDueAlerts } from '../src/db/sql/claim-due-alerts.js';
import { countAlerts } from '../src/db/sql/count-alerts.js';
import { requeueUndeliveredAlerts } from '../src/db/sql/requeue-undelivered-alerts.js';
import { WorkerMetrics, type WorkerMetricsOptions } from '../src/worker/metrics.js';
import { SyncWorker } from '../src/worker/sync-worker.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { createDb, createPool } from '../src/db/database.js';
import { ALERT_TEST_SECRET as SECRET, TESTED_ALERT_RULES, alertEnv } from './helpers/alerts.js';
import { createTestDatabase, untilWaitingForLock } from './helpers/database.js';
import { CliProcess, cli, until } from './helpers/cli-process.js';
import { type Harness, it } from './helpers/harness.js';
import { editPage, holdRequests, scriptRequests } from './helpers/scripted-pages.js';

/*
 * Alerts on privileged access, end to end: the simulator changes users between runs, the run
 * writes alerts in its transaction, and a real HTTP server on loopback receives them, checking
 * the signature as a receiver would.
 */

/** Every rule these tests were written for (their expected alerts), watching groups zz*Admin*. */
const TESTED = { rules: TESTED_ALERT_RULES, groups: 'zz*Admin*' };

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
}

/** A webhook receiver on loopback: answers `status` (200 by default), records every request. */
class Receiver {
  readonly requests: Received[] = [];
  status = 200;
  /** When set, requests get no answer at all (a receiver that hangs). */
  hang = false;
  /** How long each answer takes (a slow receiver). */
  delayMs = 0;
  /** Run before each answer (something else happening while the alert is sent). */
  beforeAnswer: (() => Promise<unknown>) | undefined;
  /** When each request arrived (Date.now()), in order. */
  readonly arrivals: number[] = [];
  private server: Server | undefined;
  private held: (() => void)[] = [];
  url = '';

  async start(headers: Record<string, string> = {}): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.requests.push({ headers: req.headers, body, json: JSON.parse(body) as Record<string, unknown> });
        this.arrivals.push(Date.now());
        if (this.hang) {
          this.held.push(() => res.destroy());
          return;
        }
        setTimeout(() => {
          void (this.beforeAnswer?.() ?? Promise.resolve()).then(() => {
            res.writeHead(this.status, { 'content-type': 'text/plain', ...headers });
            res.end(this.status === 200 ? 'ok' : 'no_service');
          });
        }, this.delayMs);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/T000/B000/tokenpart`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const release of this.held) release();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const receivers: Receiver[] = [];
async function receiver(headers?: Record<string, string>): Promise<Receiver> {
  const r = new Receiver();
  receivers.push(r);
  await r.start(headers);
  return r;
}
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.stop();
});

interface OutboxRow {
  id: string;
  site: string;
  run_id: string;
  company_login: string;
  login: string;
  rule: string;
  subject: string;
  old_value: unknown;
  new_value: unknown;
  idempotency_key: string;
  status: string;
  attempts: number;
  last_error: string | null;
}

const outbox = (h: Harness) => h.t.query<OutboxRow>(`SELECT * FROM cpq.alert_outbox ORDER BY id`);
const brief = (rows: OutboxRow[]) => rows.map((r) => [r.company_login, r.login, r.rule, r.subject]).sort();

/**
 * The harness's site as `emea` and a second simulated site, `apac`, in one sites file, synced one
 * site at a time: the simulator of apac (to stop) and the environment that runs both with `settings`.
 */
async function withApac(h: Harness, settings: Record<string, string>): Promise<{ other: CpqSimulator; env: Record<string, string> }> {
  const other = new CpqSimulator({ seed: 9, partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
  await other.start();
  const sitesFile = join(mkdtempSync(join(tmpdir(), 'cpq-alerts-sites-')), 'sites.json');
  writeFileSync(
    sitesFile,
    JSON.stringify([
      { name: 'emea', baseUrl: h.sim.baseUrl },
      { name: 'apac', baseUrl: other.baseUrl },
    ]),
  );
  return { other, env: { ...settings, CPQ_SITES_FILE: sitesFile, DATABASE_URL: h.t.url, SYNC_SITE_CONCURRENCY: '1' } };
}

type Raw = Record<string, unknown>;
const items = (user: Raw | undefined, relation: 'groups' | 'accessPermissions') => (user?.[relation] as { items?: Raw[] } | undefined)?.items ?? [];

describe('alerts on privileged access', () => {
  it('raises nothing on a first load, then one alert per rule that fired, each delivered once, signed', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 8, integrationUsers: 0, seed: 3 }, alertEnv(hook.url, TESTED, { CPQ_COMPANIES: '*' }));
    await h.sync();
    expect(await outbox(h)).toEqual([]);
    expect(hook.requests).toEqual([]);

    const [a, b, c, d, e, f] = h.sim.users('_host').map((u) => String(u.login));
    const partner = h.sim.companyLogins().find((x) => x !== '_host')!;
    const p = String(h.sim.users(partner)[0]!.login);
    const aUser = h.sim.user('_host', a!)!;
    // a: user admin flipped (gained or lost, whichever it was), proxy flag unchanged.
    const aWas = aUser.isUserAdminPermEnabled === true;
    h.sim.updateUser('_host', a!, { isUserAdminPermEnabled: !aWas });
    // b: joins a watched group (matches zz*Admin*, in another case) and one that is not watched.
    h.sim.addGroup('_host', b!, { variableName: 'zzSalesADMINS', label: 'Sales admins', type: 'Administrator' });
    h.sim.addGroup('_host', b!, { variableName: 'zzReaders', label: 'Readers', type: 'Sales' });
    // c: an access permission without access gets it; one with access loses it (no alert).
    const perms = items(h.sim.user('_host', c!), 'accessPermissions');
    for (const perm of perms)
      h.sim.setAccessPermission('_host', c!, { ...(perm as { type: string; variableName: string; name: string }), hasAccess: !perm.hasAccess });
    const granted = perms.filter((x) => x.hasAccess !== true).map((x) => `${String(x.type)}:${String(x.variableName)}`);
    // d: an edit that is not privileged.
    h.sim.updateUser('_host', d!, { lastName: 'Plain' });
    // e: deleted by this full run, restored by the next.
    h.sim.deleteUser('_host', e!);
    // f: leaves a watched group it may be in: no alert (only gains are).
    h.sim.removeGroup('_host', f!, 'zzSalesADMINS');
    // A new user of a known company: its admin flags, watched groups and granted permissions.
    const n = h.sim.addUser(partner, {
      isAccessAdminPermEnabled: true,
      isUserAdminPermEnabled: false,
      isApplicationAdminPermEnabled: false,
      isProxyPermEnabled: false,
    });
    h.sim.addGroup(partner, n, { variableName: 'zzAdminTeam', label: 'Admin team', type: 'Administrator' });
    h.sim.updateUser(partner, p, { lastName: 'Also plain' });

    const run = await h.sync({ full: true });
    const newPerms = items(h.sim.user(partner, n), 'accessPermissions')
      .filter((x) => x.hasAccess === true)
      .map((x) => ['access_permission', `${String(x.type)}:${String(x.variableName)}`]);
    const expected = [
      ['_host', a, 'admin_flag', 'is_user_admin_perm_enabled'],
      ['_host', b, 'group_membership', 'zzSalesADMINS'],
      ...granted.map((s) => ['_host', c, 'access_permission', s]),
      [partner, n, 'admin_flag', 'is_access_admin_perm_enabled'],
      [partner, n, 'group_membership', 'zzAdminTeam'],
      ...newPerms.map(([rule, s]) => [partner, n, rule, s]),
    ].sort();
    const rows = await outbox(h);
    expect(brief(rows)).toEqual(expected);
    const flag = rows.find((r) => r.rule === 'admin_flag' && r.login === a)!;
    expect([flag.old_value ?? false, flag.new_value]).toEqual([aWas, !aWas]);
    expect(rows.every((r) => r.run_id === run.runId && r.site === 'default' && r.status === 'delivered' && r.attempts === 1)).toBe(true);

    // Delivered once each, signed over the raw body, the key in header and body.
    expect(hook.requests.map((r) => r.json.idempotencyKey).sort()).toEqual(rows.map((r) => r.idempotency_key).sort());
    for (const req of hook.requests) {
      expect(verifySignature(req.body, req.headers['x-cpq-sync-signature'] as string, SECRET)).toBe(true);
      expect(verifySignature(req.body, req.headers['x-cpq-sync-signature'] as string, 'another secret')).toBe(false);
      expect(req.headers['idempotency-key']).toBe(req.json.idempotencyKey);
      expect(req.headers['content-type']).toBe('application/json');
    }
    const sent = hook.requests.find((r) => r.json.idempotencyKey === flag.idempotency_key)!.json;
    expect(sent).toMatchObject({
      site: 'default',
      company: '_host',
      login: a,
      rule: 'admin_flag',
      subject: 'is_user_admin_perm_enabled',
      new: !aWas,
      runId: run.runId,
    });
    expect(sent.text).toBe(`CPQ default: \`_host/${a!}\` ${aWas ? 'lost' : 'gained'} admin flag \`is_user_admin_perm_enabled\` (run ${run.runId})`);

    // The next full run restores e: one user_restored alert naming when it was deleted.
    h.sim.addUser('_host', { login: e });
    const restoreRun = await h.sync({ full: true });
    const restored = (await outbox(h)).filter((r) => r.run_id === restoreRun.runId);
    expect(brief(restored.filter((r) => r.rule === 'user_restored'))).toEqual([['_host', e, 'user_restored', 'deleted_at']]);
    expect(typeof restored.find((r) => r.rule === 'user_restored')!.old_value).toBe('string');

    // A run that changes nothing raises nothing, and sends nothing again.
    const count = hook.requests.length;
    await h.sync({ full: true });
    expect(hook.requests).toHaveLength(count);
    // Nothing secret reached the log or the table.
    const everything = JSON.stringify(await outbox(h)) + h.logLines.join('\n');
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain('tokenpart');
  });

  it('alerts roll back with a run that fails after writing them: none is kept or sent, and the next run raises them', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    // Saving the cursors, after the alerts are written, fails.
    await h.t.query(`CREATE FUNCTION cpq.refuse_cursor() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'cursor refused by the test'; END$$`);
    await h.t.query(`CREATE TRIGGER refuse_cursor BEFORE UPDATE ON cpq.sync_state FOR EACH ROW EXECUTE FUNCTION cpq.refuse_cursor()`);
    expect((await h.syncError()).message).toContain('cursor refused by the test');
    expect(await outbox(h)).toEqual([]);
    expect(hook.requests).toEqual([]);
    await h.t.query('DROP TRIGGER refuse_cursor ON cpq.sync_state');
    const run = await h.sync();
    const rows = await outbox(h);
    expect(brief(rows)).toEqual([['_host', a, 'group_membership', 'zzAdmins']]);
    expect(rows[0]).toMatchObject({ run_id: run.runId, status: 'delivered' });
    expect(hook.requests).toHaveLength(1);
  });

  it('names the site; the first load of a site raises nothing though another site holds the same company and logins', async () => {
    const hook = await receiver();
    const sims = [
      new CpqSimulator({ seed: 5, partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }),
      new CpqSimulator({ seed: 5, partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }),
    ];
    const t = await createTestDatabase();
    try {
      const urls = [await sims[0]!.start(), await sims[1]!.start()];
      const dir = mkdtempSync(join(tmpdir(), 'cpq-alerts-sites-'));
      writeFileSync(
        join(dir, 'sites.json'),
        JSON.stringify([
          { name: 'emea', baseUrl: urls[0] },
          { name: 'apac', baseUrl: urls[1] },
        ]),
      );
      const config = loadConfig({ CPQ_SITES_FILE: join(dir, 'sites.json'), DATABASE_URL: t.url, ...alertEnv(hook.url, TESTED) });
      const deps = { pool: t.pool, db: t.db, config, log: pino({ level: 'silent' }) };
      await runSync(deps, { site: 'emea' });
      const [a] = sims[1]!.users('_host').map((u) => String(u.login));
      // apac holds the same logins as emea; before its first run, one joins a watched group.
      sims[1]!.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
      await runSync(deps, { site: 'apac' });
      expect(await t.query(`SELECT * FROM cpq.alert_outbox`)).toEqual([]);
      sims[1]!.addGroup('_host', a!, { variableName: 'zzAdminsToo', label: 'Admins', type: 'Administrator' });
      await runSync(deps, { site: 'emea' });
      const apac = await runSync(deps, { site: 'apac' });
      await deliverPendingAlerts({ on: t.pool, config: config.alerts, log: deps.log });
      const rows = await t.query<OutboxRow>(`SELECT * FROM cpq.alert_outbox`);
      expect(rows.map((r) => [r.site, r.run_id, r.login, r.rule, r.subject])).toEqual([['apac', apac.runId, a, 'group_membership', 'zzAdminsToo']]);
      expect(hook.requests.map((r) => [r.json.site, r.json.text])).toEqual([
        ['apac', `CPQ apac: \`_host/${a!}\` joined group \`zzAdminsToo\` (run ${apac.runId})`],
      ]);
    } finally {
      for (const sim of sims) await sim.stop();
      await t.drop();
    }
  });

  it('alerts on an integration user created, on a Fusion site', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 1 },
      alertEnv(hook.url, { rules: ['integration_user'] }),
    );
    await h.sync();
    const created = await fetch(`${h.sim.baseUrl}/cpq/rest/v19/integrationUsers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oauthClientId: 'c0ffee', groups: { items: [{ variableName: 'adminAccessGroupsOnly' }] } }),
    });
    expect(created.status).toBe(201);
    await h.sync();
    const rows = await outbox(h);
    expect(brief(rows)).toEqual([['_host', '_custom_c0ffee', 'integration_user', 'is_integration_user']]);
    expect(rows[0]!.status).toBe('delivered');
    expect(hook.requests.map((r) => r.json.text)).toEqual([
      `CPQ default: \`_host/_custom_c0ffee\` was created as an integration user (run ${rows[0]!.run_id})`,
    ]);
  });

  it("no integration_user alert for the _host rows of users an earlier release filed under the host's own login name, as the run that retires those rows gives _host their integration fields (review X)", async ({
    startHarness,
  }) => {
    const hook = await receiver();
    const h = await startHarness(
      { pathPrefix: '/cpq', partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 2, hostLoginName: 'cpq-mdb' },
      alertEnv(hook.url, { rules: ['integration_user'] }),
    );
    // As an earlier release did (test/sync.test.ts does the same): integration users filed under
    // cpq-mdb beside their _host rows, made by a company list naming the host _host.
    let listNamesHost = true;
    scriptRequests(h.sim, async (req) => {
      if (!listNamesHost || !req.path.endsWith('/companies')) return;
      req.reply(editPage(await req.real(), (page) => page.items.forEach((c) => c.isHost === true && (c.loginName = '_host'))));
    });
    await h.sync();
    await h.sync();
    expect(await outbox(h)).toEqual([]);
    listNamesHost = false;
    // The first run after the upgrade is incremental (the schedule's): it gives the _host rows their
    // integration fields while the alias rows stay (only a full read retires them): no alert either (review Z).
    const incremental = await h.sync();
    expect(incremental.mode).toBe('incremental');
    const becameOne = (runIds: string[]) =>
      h.t.query<{ login: string }>(
        `SELECT login FROM cpq.user_changes WHERE run_id = ANY($1::bigint[]) AND company_login = '_host' AND change = 'update' AND diff -> 'is_integration_user' ->> 'new' = 'true' ORDER BY login`,
        [runIds],
      );
    expect((await becameOne([incremental.runId])).length).toBeGreaterThan(0);
    expect(await outbox(h)).toEqual([]);
    // In the run that retires them, a new integration user too: that one is news.
    const created = await fetch(`${h.sim.baseUrl}/cpq/rest/v19/integrationUsers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oauthClientId: 'c0ffee' }),
    });
    expect(created.status).toBe(201);
    const run = await h.sync({ full: true });
    expect(run.warnings).toEqual([
      '2 users an earlier release filed under the host\'s own login name "cpq-mdb" ended as deleted: the host\'s users are under _host',
    ]);
    // Over the two runs, both _host rows became integration users (the change log says so, README: upgrades).
    expect(await becameOne([incremental.runId, run.runId])).toHaveLength(2);
    expect(brief(await outbox(h))).toEqual([['_host', '_custom_c0ffee', 'integration_user', 'is_integration_user']]);
  });

  it('ALERT_RULES turns rules off: none writes nothing', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }, alertEnv(hook.url, { rules: [] }));
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', a!, { isAccessAdminPermEnabled: !h.sim.user('_host', a!)!.isAccessAdminPermEnabled });
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    const run = await h.sync();
    expect(run.updated).toBe(1);
    expect(await outbox(h)).toEqual([]);
    expect(hook.requests).toEqual([]);
  });

  it("two permissions granted whose `type:variableName` texts are the same (type a:b, name c; type a, name b:c) are two alerts, each with its own key: one was dropped as the other's duplicate (review IJ)", async ({
    startHarness,
  }) => {
    const hook = await receiver();
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 }, alertEnv(hook.url, { rules: ['access_permission'] }));
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.setAccessPermission('_host', a!, { type: 'zz:Quote', variableName: 'edit', name: 'First', hasAccess: true });
    h.sim.setAccessPermission('_host', a!, { type: 'zz', variableName: 'Quote:edit', name: 'Second', hasAccess: true });
    await h.sync();
    const rows = (await outbox(h)).filter((r) => r.subject === 'zz:Quote:edit');
    expect(rows.map((r) => (r.new_value as { name: string }).name).sort()).toEqual(['First', 'Second']);
    expect(new Set(rows.map((r) => r.idempotency_key)).size).toBe(2);
  });

  it('a webhook that is down fails no run: the alert stays pending and goes out on a later run, with the same key', async ({ startHarness }) => {
    const hook = await receiver();
    hook.status = 503;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    h.sim.addGroup('_host', b!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    const run = await h.sync();
    expect(run.status).toBe('succeeded');
    let rows = await outbox(h);
    expect(rows.map((r) => [r.status, r.attempts])).toEqual([
      ['pending', 1],
      ['pending', 0],
    ]);
    // The first refusal ended the pass: one request, not one per alert.
    expect(hook.requests).toHaveLength(1);
    expect(rows[0]!.last_error).toBe('the webhook answered HTTP 503: no_service');

    // The receiver is back: the next run, which changes nothing, delivers both.
    hook.status = 200;
    await h.sync();
    rows = await outbox(h);
    expect(rows.map((r) => [r.status, r.attempts])).toEqual([
      ['delivered', 2],
      ['delivered', 1],
    ]);
    expect(hook.requests.map((r) => r.json.idempotencyKey)).toEqual([rows[0]!.idempotency_key, rows[0]!.idempotency_key, rows[1]!.idempotency_key]);
    for (const req of hook.requests) expect(verifySignature(req.body, req.headers['x-cpq-sync-signature'] as string, SECRET)).toBe(true);
  });

  it('a run that fails still sends the alerts earlier runs left pending: a cron of runs that keep failing does not hold them (review EC)', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    hook.status = 503;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    await h.sync();
    expect((await outbox(h)).map((r) => r.status)).toEqual(['pending']);

    hook.status = 200;
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, status: 400, times: 1000 });
    const failed = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, ...alertEnv(hook.url, TESTED) });
    expect(failed.code).not.toBe(0);
    expect((await h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`))[0]!.status).toBe('failed');
    expect((await outbox(h)).map((r) => r.status)).toEqual(['delivered']);
    expect(hook.requests.at(-1)!.json).toMatchObject({ login: a, rule: 'group_membership' });
  });

  it('a receiver that is unreachable or hangs costs one bounded attempt; a refusal marks the alert failed until requeued', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 },
      // 2 s, not less: the answers that come (404, 200) must come within it on a loaded machine too (review GU).
      alertEnv(hook.url, TESTED, { ALERT_WEBHOOK_TIMEOUT: '2s', ALERT_RETRY_BASE_DELAY: '1h', ALERT_RETRY_MAX_DELAY: '1d' }),
    );
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    hook.hang = true;
    const started = Date.now();
    await h.sync();
    expect(Date.now() - started).toBeLessThan(10_000);
    let [row] = await outbox(h);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, last_error: 'the webhook did not answer within 2000 ms' });
    // Backoff: after the first attempt, ALERT_RETRY_BASE_DELAY itself, well under the maximum (review EK: twice it passed every test).
    const [{ wait }] = (await h.t.query<{ wait: number }>(`SELECT extract(epoch FROM next_attempt_at - now())::float8 AS wait FROM cpq.alert_outbox`)) as [
      { wait: number },
    ];
    expect(wait).toBeGreaterThan(3600 - 60);
    expect(wait).toBeLessThanOrEqual(3600);
    // Not due for an hour, so a delivery pass now sends nothing.
    hook.hang = false;
    const before = hook.requests.length;
    expect(await deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log })).toEqual({ delivered: 0, failed: 0, retrying: 0 });
    expect(hook.requests).toHaveLength(before);

    // Due again; the receiver refuses it for good (404): failed, not retried by later passes.
    await h.t.query(`UPDATE cpq.alert_outbox SET next_attempt_at = now()`);
    hook.status = 404;
    expect(await deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log })).toEqual({ delivered: 0, failed: 1, retrying: 0 });
    [row] = await outbox(h);
    expect(row).toMatchObject({ status: 'failed', attempts: 2, last_error: 'the webhook answered HTTP 404: no_service' });
    expect(await deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log })).toEqual({ delivered: 0, failed: 0, retrying: 0 });

    // Fixed: requeued, delivered.
    hook.status = 200;
    expect(await requeueUndeliveredAlerts(h.t.pool)).toEqual({ failed: 1, waiting: 0 });
    expect(await deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log })).toEqual({ delivered: 1, failed: 0, retrying: 0 });
    [row] = await outbox(h);
    expect(row).toMatchObject({ status: 'delivered', attempts: 3 });

    // Unreachable (nothing listens): pending, named by the network error, never by the URL.
    await h.t.query(`UPDATE cpq.alert_outbox SET status = 'pending', next_attempt_at = now()`);
    await hook.stop();
    expect(await deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log })).toEqual({ delivered: 0, failed: 0, retrying: 1 });
    [row] = await outbox(h);
    // Refused, or (when the POST took a kept-alive connection whose close it had not yet seen) cut off.
    expect(row!.last_error).toMatch(/^the webhook could not be reached \((ECONNREFUSED|UND_ERR_SOCKET)\)$/);
  });

  it('a refusal is for good but for 408, 425, 429 and 5xx, which are tried again; any 3xx is a redirect, not followed (review EK)', async () => {
    const hook = await receiver();
    const answer = async (status: number) => {
      hook.status = status;
      return postAlert({ url: hook.url, secret: SECRET, timeoutMs: 10_000 }, '{}', 'k1');
    };
    for (const status of [408, 425, 429, 500, 503, 599]) {
      expect(await answer(status), `HTTP ${status}`).toEqual({
        ok: false,
        permanent: false,
        error: `the webhook answered HTTP ${status}: no_service`,
        bare: `the webhook answered HTTP ${status}`,
      });
    }
    for (const status of [400, 401, 404, 409, 499]) {
      expect(await answer(status), `HTTP ${status}`).toEqual({
        ok: false,
        permanent: true,
        error: `the webhook answered HTTP ${status}: no_service`,
        bare: `the webhook answered HTTP ${status}`,
      });
    }
    for (const status of [300, 302, 308, 399]) {
      expect(await answer(status), `HTTP ${status}`).toEqual({
        ok: false,
        permanent: true,
        error: `the webhook answered HTTP ${status}: no_service (a redirect, not followed)`,
        bare: `the webhook answered HTTP ${status} (a redirect, not followed)`,
      });
    }
    expect(await answer(200)).toEqual({ ok: true });
  });

  it('alerts retry whose pass a database error ends exits 6 with that error, not 0 as if it had delivered what it tried', async ({ startHarness }) => {
    const hook = await receiver();
    hook.status = 400;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    const env = { ...alertEnv(hook.url, TESTED), CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    await h.sync();
    h.sim.addGroup('_host', String(h.sim.users('_host')[0]!.login), { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    await h.sync();
    expect((await outbox(h)).map((r) => r.status)).toEqual(['failed']);
    // The webhook refuses it again, and the outbox cannot be written meanwhile: the refusal is recorded nowhere.
    hook.beforeAnswer = () => h.t.query(`ALTER TABLE cpq.alert_outbox RENAME TO alert_outbox_away`);
    try {
      const retried = await cli(['alerts', 'retry'], env);
      expect(hook.requests).toHaveLength(2);
      expect({ code: retried.code, stderr: retried.stderr }).toEqual({
        code: 6,
        stderr: 'cpq-sync: alert delivery stopped by a database error: relation "cpq.alert_outbox" does not exist\n',
      });
    } finally {
      await h.t.query(`ALTER TABLE cpq.alert_outbox_away RENAME TO alert_outbox`);
    }
  });

  it('a run whose database has no outbox (its migration refused: a read-only role, a LATIN1 database) logs no delivery error: there is no alert to send', async () => {
    const hook = await receiver();
    const t = await createTestDatabase();
    try {
      // As in a database no run could migrate: the run's one line says why, and the pass after it
      // added a warning that alert delivery was stopped by a database error (relation does not exist).
      await t.query(`ALTER TABLE cpq.alert_outbox RENAME TO alert_outbox_away`);
      const lines: string[] = [];
      const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
      const config = loadConfig({ CPQ_BASE_URL: 'https://cpq.example.com', ...alertEnv(hook.url, TESTED) });
      expect(await deliverPendingAlerts({ on: t.pool, config: config.alerts, log })).toEqual({ delivered: 0, failed: 0, retrying: 0 });
      expect(lines).toEqual([]);
      expect(hook.requests).toEqual([]);
    } finally {
      await t.drop();
    }
  });

  it('a webhook refusing every alert (400) is one log line per delivery pass, not one per alert, naming the answer, the count and `alerts retry` (review DN)', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    hook.status = 400;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    const env = { ...alertEnv(hook.url, TESTED), CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    await h.sync();
    for (const login of h.sim.users('_host').map((u) => String(u.login))) {
      h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    }
    const alertLines = (stdout: string) =>
      stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .filter((l) => /alert/i.test(l.msg));
    const expected = {
      level: 50,
      msg: '30 alerts refused by the webhook (the webhook answered HTTP 400: no_service): marked failed; fix the receiver or ALERT_WEBHOOK_URL, then `cpq-sync alerts retry` sends them again (`cpq-sync alerts list` shows them)',
    };
    const run = await cli(['run'], env);
    expect(run.code).toBe(0);
    expect(hook.requests).toHaveLength(30);
    expect(alertLines(run.stdout)).toEqual([
      expect.objectContaining({ msg: 'alerts on privileged access written to the outbox' }),
      expect.objectContaining(expected),
    ]);
    expect((await outbox(h)).map((r) => r.status)).toEqual(Array(30).fill('failed'));

    // alerts retry against the same refusal: one line for the pass, and the requeue's.
    const retried = await cli(['alerts', 'retry'], env);
    // Not delivered: exit code 1, as `alerts test`, and one line saying so.
    expect({ code: retried.code, stderr: retried.stderr }).toEqual({
      code: 1,
      stderr: 'cpq-sync: not every alert was delivered: 30 refused by the webhook (failed); `cpq-sync alerts list` shows them\n',
    });
    expect(hook.requests).toHaveLength(60);
    expect(alertLines(retried.stdout).map((l) => l.msg)).toEqual([
      expected.msg,
      'alerts retry: 30 made due (30 failed, 0 pending waiting for a later attempt), 0 delivered',
    ]);

    // The webhook down: they stay pending, exit code 1 too.
    hook.status = 503;
    const down = await cli(['alerts', 'retry'], env);
    expect({ code: down.code, stderr: down.stderr }).toEqual({
      code: 1,
      stderr:
        'cpq-sync: not every alert was delivered: the webhook could not take them now (they stay pending, sent by the next run or worker pass); `cpq-sync alerts list` shows them\n',
    });
    expect(hook.requests).toHaveLength(61);
    expect(new Set((await outbox(h)).map((r) => r.status))).toEqual(new Set(['pending']));
    await h.t.query(`UPDATE cpq.alert_outbox SET next_attempt_at = now()`);

    // Fixed: retry sends them all, one line for the pass.
    hook.status = 200;
    const fixed = await cli(['alerts', 'retry'], env);
    expect({ code: fixed.code, stderr: fixed.stderr }).toEqual({ code: 0, stderr: '' });
    expect(alertLines(fixed.stdout).map((l) => l.msg)).toEqual([
      'alert delivery pass',
      'alerts retry: 0 made due (0 failed, 0 pending waiting for a later attempt), 30 delivered',
    ]);
    expect((await outbox(h)).map((r) => r.status)).toEqual(Array(30).fill('delivered'));
    expect(fixed.stdout).not.toContain('tokenpart');

    // Without a webhook, retry is refused, and no failed alert is made pending (it did, sent nothing, and exited 0: review EC).
    await h.t.query(`UPDATE cpq.alert_outbox SET status = 'failed'`);
    const nowhere = await cli(['alerts', 'retry'], { CPQ_BASE_URL: env.CPQ_BASE_URL, DATABASE_URL: env.DATABASE_URL });
    expect({ code: nowhere.code, stderr: nowhere.stderr }).toEqual({
      code: 2,
      stderr: 'cpq-sync: ALERT_WEBHOOK_URL is not set: name the webhook that receives alerts (and ALERT_WEBHOOK_SECRET)\n',
    });
    expect(new Set((await outbox(h)).map((r) => r.status))).toEqual(new Set(['failed']));
  });

  it('alerts retry sends at once the pending alerts waiting for a later attempt (a 5xx since fixed), not those another pass holds (review JB)', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    hook.status = 500;
    const env = alertEnv(hook.url, TESTED, { ALERT_RETRY_BASE_DELAY: '60s' });
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, env);
    await h.sync();
    for (const login of h.sim.users('_host').map((u) => String(u.login))) {
      h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    }
    // The run's pass: the first alert answered 500, pending for 60 s; the two after it given back, due then too.
    await h.sync();
    expect(hook.requests).toHaveLength(1);
    const waiting = await h.t.query<{ id: string; attempts: number; wait: number }>(
      `SELECT id, attempts, extract(epoch FROM next_attempt_at - now())::float8 AS wait FROM cpq.alert_outbox WHERE status = 'pending' ORDER BY id`,
    );
    expect(waiting.map((r) => [r.attempts, r.wait > 50])).toEqual([
      [1, true],
      [0, true],
      [0, true],
    ]);
    const [first, second, third] = waiting.map((r) => r.id);
    // The third due and taken by another process's pass, still sending it: its lease is left alone.
    await h.t.query(`UPDATE cpq.alert_outbox SET next_attempt_at = now() WHERE id = $1`, [third]);
    expect((await claimDueAlerts(h.t.pool, 20, 600_000)).map((r) => r.id)).toEqual([third]);

    // The webhook fixed: retry sends the two waiting now, exit code 0. Before, it made only failed
    // alerts due: it sent nothing, exited 0, and they stayed pending for the minute.
    hook.status = 200;
    const retried = await cli(['alerts', 'retry'], { ...env, CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url });
    expect({ code: retried.code, stderr: retried.stderr }).toEqual({ code: 0, stderr: '' });
    expect(hook.requests.slice(1).map((r) => r.json.idempotencyKey)).toEqual(
      (await outbox(h)).filter((r) => r.id === first || r.id === second).map((r) => r.idempotency_key),
    );
    const said = retried.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; madeDue?: number; delivered?: number })
      .filter((l) => l.msg.startsWith('alerts retry'));
    expect(said).toEqual([
      expect.objectContaining({
        msg: 'alerts retry: 2 made due (0 failed, 2 pending waiting for a later attempt), 2 delivered',
        madeDue: 2,
        delivered: 2,
      }),
    ]);
    const rows = await h.t.query<{ id: string; status: string; attempts: number; leased: boolean }>(
      `SELECT id, status, attempts, coalesce(claimed_until > now() AND next_attempt_at = claimed_until, false) AS leased FROM cpq.alert_outbox ORDER BY id`,
    );
    expect(rows.map((r) => [r.id, r.status, r.attempts, r.leased])).toEqual([
      [first, 'delivered', 2, false],
      [second, 'delivered', 1, false],
      [third, 'pending', 0, true],
    ]);
  });

  it("a shutdown while an alert is being sent gives the pass's alerts back, due at once, and says so in one line", async ({ startHarness }) => {
    const hook = await receiver();
    hook.hang = true;
    const env = alertEnv(hook.url, TESTED, { ALERT_WEBHOOK_TIMEOUT: '60s' });
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, env);
    await h.sync();
    for (const login of h.sim
      .users('_host')
      .map((u) => String(u.login))
      .slice(0, 2)) {
      h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    }
    const run = new CliProcess(['run'], { ...env, CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url });
    await until('the first alert reaches the webhook', () => hook.requests.length === 1);
    run.child.kill('SIGTERM');
    await run.exited;
    const rows = await h.t.query<OutboxRow & { due: boolean }>(`SELECT *, next_attempt_at <= now() AS due FROM cpq.alert_outbox ORDER BY id`);
    expect(rows.map((r) => [r.status, r.attempts, r.due])).toEqual([
      ['pending', 0, true],
      ['pending', 0, true],
    ]);
    // The pass logged nothing: the operator, told the run "rolls back", could not tell the alerts were not sent.
    const alertLines = run.lines().filter((l) => /alert/i.test(l.msg ?? ''));
    expect(alertLines.map((l) => [l.level, l.msg])).toEqual([
      [30, 'alerts on privileged access written to the outbox'],
      [40, 'alert delivery interrupted by shutdown: 2 alerts given back, pending and due at once; the next run or delivery pass sends them'],
    ]);
  });

  it('`alerts retry` stopped by SIGTERM while an alert is being sent gives the alerts back, due at once, exit code 130 (they stayed claimed for the lease: review EL)', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    hook.status = 400;
    const env = alertEnv(hook.url, TESTED, { ALERT_WEBHOOK_TIMEOUT: '60s' });
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, env);
    await h.sync();
    for (const login of h.sim
      .users('_host')
      .map((u) => String(u.login))
      .slice(0, 2)) {
      h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    }
    await h.sync();
    expect((await outbox(h)).map((r) => r.status)).toEqual(['failed', 'failed']);
    hook.hang = true;
    const retry = new CliProcess(['alerts', 'retry'], { ...env, CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url });
    await until('the first requeued alert reaches the webhook', () => hook.requests.length === 3);
    retry.child.kill('SIGTERM');
    const { code, stderr } = await retry.exited;
    expect({ code, stderr }).toEqual({
      code: 130,
      stderr: 'cpq-sync: alerts retry interrupted: the alerts not yet sent are pending and due at once; the next run, worker pass or alerts retry sends them\n',
    });
    const rows = await h.t.query<OutboxRow & { due: boolean }>(`SELECT *, next_attempt_at <= now() AS due FROM cpq.alert_outbox ORDER BY id`);
    expect(rows.map((r) => [r.status, r.due])).toEqual([
      ['pending', true],
      ['pending', true],
    ]);
  });

  it('`alerts retry` stopped by SIGTERM while its requeue waits for a lock another session holds: cancelled, exit code 130 within SHUTDOWN_TIMEOUT, no alert changed', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    hook.status = 400;
    const env = alertEnv(hook.url, TESTED);
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, env);
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    await h.sync();
    const before = await outbox(h);
    expect(before.map((r) => r.status)).toEqual(['failed']);
    // A report's session holding the outbox against writes: the requeue's UPDATE waits for it.
    const holder = new pg.Client({ connectionString: h.t.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE cpq.alert_outbox IN EXCLUSIVE MODE');
      const retry = new CliProcess(['alerts', 'retry'], { ...env, CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, SHUTDOWN_TIMEOUT: '6s' });
      await untilWaitingForLock(h.t);
      const asked = Date.now();
      retry.child.kill('SIGTERM');
      const { code, stderr } = await retry.exited;
      // Before: the UPDATE waited on; SHUTDOWN_TIMEOUT (6 s) ended the process by force, exit code 1.
      expect({ code, within5s: Date.now() - asked < 5000, stderr }).toEqual({
        code: 130,
        within5s: true,
        stderr: 'cpq-sync: alerts retry interrupted before it made the alerts due: no alert was changed\n',
      });
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    expect(await outbox(h)).toEqual(before);
    expect(hook.requests).toHaveLength(1);
  });

  it('does not follow a redirect', async ({ startHarness }) => {
    const elsewhere = await receiver();
    const hook = await receiver({ location: elsewhere.url });
    hook.status = 307;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    await h.sync();
    const [row] = await outbox(h);
    expect(row).toMatchObject({ status: 'failed', last_error: 'the webhook answered HTTP 307: no_service (a redirect, not followed)' });
    expect(hook.requests).toHaveLength(1);
    expect(elsewhere.requests).toEqual([]);
  });

  it('writes no alert without a webhook', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, { ALERT_GROUPS: '*' });
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    expect((await h.sync()).updated).toBe(1);
    expect(await outbox(h)).toEqual([]);
  });
});

describe('alerts between runs, metrics and the command line', () => {
  it('schedule retries pending alerts between runs; the metrics count them by status', async ({ startHarness }) => {
    const hook = await receiver();
    hook.status = 500;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, alertEnv(hook.url, TESTED, { ALERT_RETRY_EVERY: '100ms' }));
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    await h.sync();
    // sites: what the worker's metrics take once there are several sites; ignored before.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- needed where the options have no sites yet
    const metrics = new WorkerMetrics({ sites: ['default'], alertCounts: () => countAlerts(h.t.pool), processMetrics: false } as WorkerMetricsOptions);
    let text = await metrics.text();
    expect(text).toContain('cpq_sync_alerts{status="pending"} 1');
    expect(text).toContain('cpq_sync_alerts{status="delivered"} 0');

    hook.status = 200;
    const worker = new SyncWorker({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log });
    await worker.start();
    try {
      // Waited for up to until's minute, not for 100 turns of 50 ms (5 s and the queries): the
      // worker's start and its first pass are what a loaded machine stretches.
      await until('the pending alert delivered by the worker', async () => (await outbox(h))[0]!.status === 'delivered');
    } finally {
      await worker.stop();
    }
    expect((await outbox(h))[0]!.status).toBe('delivered');
    text = await worker.metrics.text();
    expect(text).toContain('cpq_sync_alerts{status="pending"} 0');
    expect(text).toContain('cpq_sync_alerts{status="delivered"} 1');
    expect(text).toContain('cpq_sync_alerts{status="failed"} 0');
  });

  it('a slow webhook holds up no site: run sends the alerts once after every site, the worker in the background (review EC)', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 },
      alertEnv(hook.url, TESTED, { ALERT_WEBHOOK_TIMEOUT: '60s' }),
    );
    const { other, env } = await withApac(h, alertEnv(hook.url, TESTED, { ALERT_WEBHOOK_TIMEOUT: '60s' }));
    try {
      expect((await cli(['run'], env)).code).toBe(0);
      for (const login of h.sim.users('_host').map((u) => String(u.login))) {
        h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
      }
      // Each alert takes a second to be taken: sent after emea's run, they kept apac waiting its turn 3 s.
      hook.delayMs = 1000;
      expect((await cli(['run'], env)).code).toBe(0);
      const [apac] = await h.t.query<{ started_at: Date }>(`SELECT started_at FROM cpq.sync_runs WHERE site = 'apac' ORDER BY id DESC LIMIT 1`);
      expect(apac!.started_at.getTime()).toBeLessThan(hook.arrivals[0]!);
      expect((await outbox(h)).map((r) => r.status)).toEqual(['delivered', 'delivered', 'delivered']);

      // The worker: a run's alerts go out in its background pass, and the run ends without waiting for a webhook that hangs.
      hook.hang = true;
      const [a] = h.sim.users('_host').map((u) => String(u.login));
      h.sim.addGroup('_host', a!, { variableName: 'zzAdminsToo', label: 'Admins', type: 'Administrator' });
      const config = loadConfig(env);
      const worker = new SyncWorker({ pool: h.t.pool, db: h.t.db, config, log: h.log });
      try {
        const started = Date.now();
        await worker.runOnce('emea');
        expect(Date.now() - started).toBeLessThan(10_000);
        await until('the background pass reaches the webhook', () => hook.requests.length === 4);
      } finally {
        await worker.stop();
      }
      // Stopped mid-pass: the alert is given back, pending, to be sent by the next pass.
      expect((await outbox(h)).map((r) => r.status)).toEqual(['delivered', 'delivered', 'delivered', 'pending']);
    } finally {
      await other.stop();
    }
  });

  it('schedule: an alert raised while a background pass is going is sent by another pass right after it, not at the next ALERT_RETRY_EVERY', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 },
      alertEnv(hook.url, TESTED, { ALERT_RETRY_EVERY: '1h', ALERT_RETRY_BASE_DELAY: '1h' }),
    );
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    const worker = new SyncWorker({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log });
    await worker.start();
    try {
      // a's alert: its pass waits for the webhook's answer (a refusal to retry in an hour), and
      // meanwhile another run commits b's alert; the webhook takes the next one.
      hook.status = 500;
      hook.beforeAnswer = async () => {
        hook.beforeAnswer = async () => {
          hook.status = 200;
        };
        h.sim.addGroup('_host', b!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
        await worker.runOnce();
      };
      h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
      await worker.runOnce();
      await until("b's alert delivered", async () => (await outbox(h)).some((r) => r.login === b && r.status === 'delivered'), 15_000);
    } finally {
      await worker.stop();
    }
    expect((await outbox(h)).map((r) => [r.login, r.status, r.attempts])).toEqual([
      [a, 'pending', 1],
      [b, 'delivered', 1],
    ]);
  });

  it('schedule stopped while its background pass waits on the webhook: stop() returns once the alert is given back, due at once, before the database closes', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 },
      alertEnv(hook.url, TESTED, { ALERT_WEBHOOK_TIMEOUT: '60s', ALERT_RETRY_EVERY: '1h' }),
    );
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    hook.hang = true;
    // The worker's own pool, ended right after stop() as `cpq-sync schedule` closes its database.
    const pool = createPool(h.t.url);
    const worker = new SyncWorker({ pool, db: createDb(pool), config: h.config, log: h.log });
    await worker.start();
    await worker.runOnce();
    await until('the background pass reaches the webhook', () => hook.requests.length === 1);
    await worker.stop();
    await pool.end();
    const rows = await h.t.query<{ status: string; due: boolean; attempts: number }>(
      `SELECT status, next_attempt_at <= now() AS due, attempts FROM cpq.alert_outbox`,
    );
    expect(rows).toEqual([{ status: 'pending', due: true, attempts: 0 }]);
  });

  it('run asked to stop while a later site runs sends no alert, and says so in a warning: they stay pending (review ED)', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    const { other, env } = await withApac(h, alertEnv(hook.url, TESTED));
    let release: () => void = () => undefined;
    try {
      expect((await cli(['run'], env)).code).toBe(0);
      for (const login of h.sim.users('_host').map((u) => String(u.login))) {
        h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
      }
      // emea commits its alerts; apac's first request is held, and the run is asked to stop then.
      const apacHeld = holdRequests(other, 0);
      release = apacHeld.release;
      const run = new CliProcess(['run'], env);
      await apacHeld.reached;
      run.kill('SIGTERM');
      const out = await run.exited;
      apacHeld.release();
      expect(out.code).toBe(130);
      expect(
        run
          .lines()
          .filter((l) => /alert/i.test(l.msg ?? ''))
          .map((l) => [l.level, l.msg]),
      ).toEqual([
        [30, 'alerts on privileged access written to the outbox'],
        [40, 'alerts not sent: asked to stop; the pending ones go out with the next run, the worker, or `cpq-sync alerts retry`'],
      ]);
      expect(hook.requests).toEqual([]);
      expect((await outbox(h)).map((r) => r.status)).toEqual(['pending', 'pending', 'pending']);
    } finally {
      release();
      await other.stop();
    }
  });

  it('cpq-sync alerts test sends a signed sample; alerts list shows pending and failed ones, as a table or JSON', async ({ startHarness }) => {
    const hook = await receiver();
    const env = { ALERT_WEBHOOK_URL: hook.url, ALERT_WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'warn' };
    const sent = await cli(['alerts', 'test'], env);
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    expect(hook.requests).toHaveLength(1);
    const [sample] = hook.requests;
    expect(verifySignature(sample!.body, sample!.headers['x-cpq-sync-signature'] as string, SECRET)).toBe(true);
    expect(sample!.json).toMatchObject({ type: 'cpq-sync.alert', site: 'default', rule: 'admin_flag', runId: '0' });
    expect(sent.stdout).toContain(String(sample!.json.idempotencyKey));
    // With a sites file, the sample names its first site, not "default" (review CM); --site another.
    const sitesFile = join(mkdtempSync(join(tmpdir(), 'cpq-alerts-test-')), 'sites.yaml');
    writeFileSync(sitesFile, '- {name: emea, baseUrl: "https://emea.example.com"}\n- {name: apac, baseUrl: "https://apac.example.com"}\n');
    expect((await cli(['alerts', 'test'], { ...env, CPQ_SITES_FILE: sitesFile })).code).toBe(0);
    expect((await cli(['alerts', 'test', '--site', 'apac'], { ...env, CPQ_SITES_FILE: sitesFile })).code).toBe(0);
    expect(hook.requests.slice(1).map((r) => r.json.site)).toEqual(['emea', 'apac']);
    hook.requests.splice(1);
    // A site no configuration names is refused, naming those it has: such a sample tests nothing a receiver routes on (review EC).
    const unknown = await cli(['alerts', 'test', '--site', 'nosuch'], { ...env, CPQ_SITES_FILE: sitesFile });
    expect({ code: unknown.code, stderr: unknown.stderr }).toEqual({ code: 2, stderr: 'cpq-sync: --site: no site is named "nosuch" (sites: emea, apac)\n' });
    expect(hook.requests).toHaveLength(1);

    hook.status = 403;
    const refused = await cli(['alerts', 'test'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('cpq-sync: test alert not delivered: the webhook answered HTTP 403: no_service\n');
    const unset = await cli(['alerts', 'test'], { LOG_LEVEL: 'warn' });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('ALERT_WEBHOOK_URL is not set');

    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, alertEnv(hook.url, TESTED));
    await h.sync();
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.addGroup('_host', a!, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    h.sim.updateUser('_host', b!, { login: `${b!}\u001b[31m` });
    h.sim.addGroup('_host', `${b!}\u001b[31m`, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
    hook.status = 503;
    await h.sync();
    const rows = await outbox(h);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    expect(rows.every((r) => r.status === 'pending')).toBe(true);
    await h.t.query(`UPDATE cpq.alert_outbox SET status = 'failed' WHERE id = $1`, [rows[0]!.id]);

    const list = await cli(['alerts', 'list'], { DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' });
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+SITE\s+COMPANY\s+LOGIN\s+RULE\s+SUBJECT\s+OLD\s+NEW\s+RUN\s+ATTEMPTS\s+NEXT ATTEMPT\s+LAST ERROR$/);
    expect(lines).toHaveLength(rows.length + 1);
    expect(list.stdout).not.toContain('\u001b');
    expect(lines.some((l) => l.includes('failed') && l.includes('group_membership') && l.includes('zzAdmins'))).toBe(true);

    const listed = await cli(['alerts', 'list', '--json'], { DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' });
    const parsed = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(parsed.map((r) => [r.id, r.status, r.rule, r.subject, r.idempotencyKey]).sort()).toEqual(
      rows.map((r, i) => [r.id, i === 0 ? 'failed' : 'pending', r.rule, r.subject, r.idempotency_key]).sort(),
    );

    // An older schema: one line saying to migrate, and nothing migrated.
    await h.t.query('DROP TABLE cpq.alert_outbox');
    const old = await cli(['alerts', 'list'], { DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' });
    expect(old.code).toBe(6);
    expect(old.stderr).toBe('cpq-sync: the database has no alert outbox (cpq.alert_outbox) yet: run cpq-sync migrate\n');
    expect(await h.t.query(`SELECT to_regclass('cpq.alert_outbox') AS t`)).toEqual([{ t: null }]);
  });
});

describe('alert pieces', () => {
  it('alerts retry without ALERT_WEBHOOK_URL is refused as a setting missing, exit code 2, before any database is opened (it was exit code 6 with the database away)', async () => {
    const away = await cli(['alerts', 'retry'], { DATABASE_URL: 'postgres://sync:pw@127.0.0.1:1/warehouse' });
    expect({ code: away.code, stderr: away.stderr }).toEqual({
      code: 2,
      stderr: 'cpq-sync: ALERT_WEBHOOK_URL is not set: name the webhook that receives alerts (and ALERT_WEBHOOK_SECRET)\n',
    });
  });

  it('reads the ALERT_* settings, with one-line errors that never show the URL or the secret', () => {
    const base = { CPQ_BASE_URL: 'https://site.example.com' };
    expect(loadConfig(base).alerts).toEqual({
      webhook: undefined,
      rules: { rules: [...ALERT_RULE_NAMES], groups: [] },
      retryBaseDelayMs: 60_000,
      retryMaxDelayMs: 3_600_000,
      retryEveryMs: 60_000,
      maxPerRun: 100,
    });
    const url = 'https://hooks.slack.com/services/T0/B0/sekrit-token';
    const config = loadConfig({
      ...base,
      ALERT_WEBHOOK_URL: url,
      ALERT_WEBHOOK_SECRET: 's3cret',
      ALERT_RULES: ' Admin_Flag, user_restored ',
      ALERT_GROUPS: 'admin*, *Approver*,',
    });
    expect(config.alerts.webhook).toEqual({ url, secret: 's3cret', timeoutMs: 10_000 });
    expect(config.alerts.rules).toEqual({ rules: ['admin_flag', 'user_restored'], groups: ['admin*', '*Approver*'] });
    expect(loadConfig({ ...base, ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: 's', ALERT_RULES: 'none' }).alerts.rules.rules).toEqual([]);

    const refused: [Record<string, string>, string][] = [
      [{ ALERT_WEBHOOK_URL: url }, 'ALERT_WEBHOOK_SECRET (or ALERT_WEBHOOK_SECRET_FILE) is required with ALERT_WEBHOOK_URL: every alert is signed'],
      [{ ALERT_WEBHOOK_SECRET: 's3cret' }, 'ALERT_WEBHOOK_SECRET is set but ALERT_WEBHOOK_URL is not: set the URL too, or neither (no alerts)'],
      [
        { ALERT_WEBHOOK_URL: 'http://hooks.example.com/sekrit-token', ALERT_WEBHOOK_SECRET: 's3cret' },
        'ALERT_WEBHOOK_URL uses plain http to hooks.example.com: use https, or set CPQ_ALLOW_INSECURE_HTTP=true if you really mean it',
      ],
      // A host whose first label is the key (Pipedream's <id>.m.pipedream.net) is named without it (review IM).
      [
        { ALERT_WEBHOOK_URL: 'http://sekrit9token42.m.pipedream.net/', ALERT_WEBHOOK_SECRET: 's3cret' },
        'ALERT_WEBHOOK_URL uses plain http to ….m.pipedream.net: use https, or set CPQ_ALLOW_INSECURE_HTTP=true if you really mean it',
      ],
      [
        { ALERT_WEBHOOK_URL: 'https://user:sekrit-token@hooks.example.com/', ALERT_WEBHOOK_SECRET: 's3cret' },
        'ALERT_WEBHOOK_URL must not contain a user name or password',
      ],
      [
        { ALERT_WEBHOOK_URL: 'sekrit-token', ALERT_WEBHOOK_SECRET: 's3cret' },
        'ALERT_WEBHOOK_URL is not a URL Node can read (a port above 65535, a space in the host?)',
      ],
      [{ ALERT_WEBHOOK_URL: 'ftp://hooks.example.com/sekrit-token', ALERT_WEBHOOK_SECRET: 's3cret' }, 'ALERT_WEBHOOK_URL must be an http(s) URL'],
      [{ ALERT_RULES: 'admin_flag,sekrit-token' }, `ALERT_RULES: unknown rule sekrit-token (rules: ${ALERT_RULE_NAMES.join(', ')}, all, none)`],
      [{ ALERT_WEBHOOK_TIMEOUT: 'soon' }, 'invalid configuration: ALERT_WEBHOOK_TIMEOUT: "soon" is not a duration such as 90s, 10m, 1h or 7d'],
    ];
    for (const [env, message] of refused) {
      expect(() => loadConfig({ ...base, ...env }), message).toThrow(message);
      if (!message.includes('unknown rule')) expect(() => loadConfig({ ...base, ...env })).not.toThrow(/sekrit|s3cret/);
    }
    // The _FILE forms, as for the CPQ secrets (one trailing newline dropped).
    const dir = mkdtempSync(join(tmpdir(), 'cpq-alerts-'));
    writeFileSync(join(dir, 'url'), `${url}\n`);
    writeFileSync(join(dir, 'secret'), 'from-a-file\n');
    const fromFiles = loadConfig({ ...base, ALERT_WEBHOOK_URL_FILE: join(dir, 'url'), ALERT_WEBHOOK_SECRET_FILE: join(dir, 'secret') });
    expect(fromFiles.alerts.webhook).toEqual({ url, secret: 'from-a-file', timeoutMs: 10_000 });
    // Plain http to loopback is fine (the tests' receivers), and to elsewhere when asked for.
    expect(loadConfig({ ...base, ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/x', ALERT_WEBHOOK_SECRET: 's' }).alerts.webhook?.url).toBe('http://127.0.0.1:9/x');
    expect(
      loadConfig({ ...base, ALERT_WEBHOOK_URL: 'http://h.example.com/x', ALERT_WEBHOOK_SECRET: 's', CPQ_ALLOW_INSECURE_HTTP: 'true' }).alerts.webhook,
    ).toBeDefined();
  });

  // Node's fetch ends a request after 300 s without an answer (its default dispatcher's
  // headersTimeout), whatever ALERT_WEBHOOK_TIMEOUT says; here a default dispatcher with 1 s
  // timeouts stands in for those 300 s, as in zip-download.test.ts.
  it('an ALERT_WEBHOOK_TIMEOUT past the default dispatcher timeouts of fetch bounds the POST, not those timeouts', async () => {
    const slow = createServer((req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(204).end(), 3000);
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const before = getGlobalDispatcher();
    setGlobalDispatcher(new Agent({ headersTimeout: 1000, bodyTimeout: 1000 }));
    try {
      const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/hook`;
      expect(await postAlert({ url, secret: SECRET, timeoutMs: 600_000 }, '{}', 'k1')).toEqual({ ok: true });
    } finally {
      setGlobalDispatcher(before);
      await new Promise((resolve) => slow.close(resolve));
    }
  }, 30_000);

  it('globs become ILIKE patterns with %, _ and \\ taken literally', () => {
    expect(globToIlike('admin*')).toBe('admin%');
    expect(globToIlike('*Approver?')).toBe('%Approver_');
    expect(globToIlike('a_b%c\\d')).toBe('a\\_b\\%c\\\\d');
  });

  const groupAlert = (login: string, subject: string) =>
    alertPayload({
      id: '1',
      site: 'default',
      run_id: '7',
      user_id: '3',
      company_login: '_host',
      login,
      rule: 'group_membership',
      subject,
      old_value: false,
      new_value: true,
      detected_at: new Date('2026-01-02T03:04:05Z'),
      idempotency_key: 'k',
      status: 'pending',
      attempts: 0,
      next_attempt_at: new Date(),
      last_attempt_at: null,
      delivered_at: null,
      last_error: null,
      created_at: new Date(),
      claimed_until: null,
    });

  it('escapes what Slack reads as markup in the text', () => {
    const payload = groupAlert('<!channel>&co', 'zz<Admins>');
    expect(payload.text).toBe('CPQ default: `_host/&lt;!channel&gt;&amp;co` joined group `zz&lt;Admins&gt;` (run 7)');
    expect(payload.login).toBe('<!channel>&co');
  });

  it("keeps a CPQ value in one code span of the text: a login cannot add lines, links or emoji to the channel's message", () => {
    const login = 'bob\n\n:white_check_mark: CPQ prod: nightly review complete https://intranet.example/ok `x`\u001b[2K';
    const payload = groupAlert(login, 'Admins\r\n`*bold*`');
    expect(payload.text).toBe(
      "CPQ default: `_host/bob\\x0a\\x0a:white_check_mark: CPQ prod: nightly review complete https://intranet.example/ok 'x'\\x1b[2K` joined group `Admins\\x0d\\x0a'*bold*'` (run 7)",
    );
    expect(payload.text.split('').filter((c) => c < ' ')).toEqual([]);
    // The fields for programs keep the value as CPQ sent it.
    expect(payload.login).toBe(login);
  });

  it("signs as the README's receiver checks: sha256= and the hex HMAC-SHA256 of the body's UTF-8 bytes under the secret, computed here apart from signBody (review EK)", () => {
    const body = JSON.stringify(groupAlert('zoë.müller', 'Admins'));
    const expected = `sha256=${createHmac('sha256', SECRET).update(Buffer.from(body, 'utf8')).digest('hex')}`;
    expect(signBody(body, SECRET)).toBe(expected);
    expect(verifySignature(body, expected, SECRET)).toBe(true);
    expect(verifySignature(body, undefined, SECRET)).toBe(false);
    // A header of another length is refused, not thrown on (timingSafeEqual throws on one).
    expect(verifySignature(body, expected.slice(0, -1), SECRET)).toBe(false);
    expect(verifySignature(`${body} `, expected, SECRET)).toBe(false);
  });
});

describe('adding an alert rule', () => {
  it("every rule of ALERT_RULE_NAMES is in README's rule table, allowed by the CHECK on the alert tables' rule column and given a text by delivery, and neither place names a rule the code does not know (alert_flood aside: the summary); each gap named", async () => {
    const problems: string[] = [];
    const known = new Set<string>(ALERT_RULE_NAMES);

    // README, "Alerts on privileged access": the table whose first column is `rule (ALERT_RULES)`.
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Alerts on privileged access\n'));
    const table = /^\| rule \(`ALERT_RULES`\) \|.*\n\|[-|]+\|\n((?:\|.*\n)+)/m.exec(section)?.[1] ?? '';
    const inReadme = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
    expect(inReadme, 'README: the rule table of "Alerts on privileged access" is not found').not.toEqual([]);
    for (const rule of ALERT_RULE_NAMES) if (!inReadme.includes(rule)) problems.push(`${rule}: not in README's rule table ("Alerts on privileged access")`);
    for (const rule of inReadme) if (!known.has(rule)) problems.push(`${rule}: in README's rule table, not in ALERT_RULE_NAMES (src/config.ts)`);
    if (problems.length === 0 && inReadme.join() !== ALERT_RULE_NAMES.join())
      problems.push(`README's rule table lists ${inReadme.join(', ')}: ALERT_RULE_NAMES (src/config.ts) keeps its order`);

    // The migrated schema: every CHECK on a table's rule column alone (a rule it lacks fails every
    // run that fires it: review CR). The summary's rule is allowed beside them.
    const t = await createTestDatabase();
    let checks: { name: string; definition: string }[];
    try {
      checks = await t.query(
        `SELECT c.conrelid::regclass::text || ' ' || c.conname AS name, pg_get_constraintdef(c.oid) AS definition
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'c' AND c.connamespace = 'cpq'::regnamespace AND cardinality(c.conkey) = 1 AND a.attname = 'rule'`,
      );
    } finally {
      await t.drop();
    }
    expect(checks, 'no CHECK on a rule column in the migrated schema').not.toEqual([]);
    for (const { name, definition } of checks) {
      const allowed = [...definition.matchAll(/'([^']+)'::text/g)].map((m) => m[1]!);
      for (const rule of [...ALERT_RULE_NAMES, ALERT_FLOOD_RULE])
        if (!allowed.includes(rule)) problems.push(`${rule}: not allowed by the CHECK ${name} of the migrated schema (write a migration)`);
      for (const rule of allowed)
        if (!known.has(rule) && rule !== ALERT_FLOOD_RULE)
          problems.push(`${rule}: allowed by the CHECK ${name} of the migrated schema, not in ALERT_RULE_NAMES`);
    }

    // Delivery: the words of the alert's text (describe in src/alerts/delivery.ts).
    for (const rule of ALERT_RULE_NAMES) {
      const text: unknown = describeAlert({ rule, subject: 'zzAdmins', old_value: false, new_value: true });
      if (typeof text !== 'string' || text === '') problems.push(`${rule}: no text in describe (src/alerts/delivery.ts)`);
    }

    expect(problems).toEqual([]);
  });
});
