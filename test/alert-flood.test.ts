import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect } from 'vitest';
import { verifySignature } from '../src/alerts/signing.js';
import { loadConfig } from '../src/config.js';
import { countAlerts } from '../src/db/sql/count-alerts.js';
import { forgetUser } from '../src/sync/forget.js';
import { WorkerMetrics, type WorkerMetricsOptions } from '../src/worker/metrics.js';
import { ALERT_TEST_SECRET as SECRET, alertEnv } from './helpers/alerts.js';
import { cli } from './helpers/cli-process.js';
import { type Harness, it } from './helpers/harness.js';

/*
 * Review IA: CPQ's data decided how many alerts a run raised, without bound (a site flipping every
 * user's admin flags and adding thousands of watched groups made 90,033 in one run), and delivery
 * sent them one POST at a time, oldest first: an alert after the flood waited hours, and `run`
 * did not return until it had sent them all. A run over ALERT_MAX_PER_RUN now writes one
 * alert_flood summary first, the first ALERT_MAX_PER_RUN alerts as usual, and the rest
 * `suppressed`: kept, never sent. A real webhook receiver on loopback, a real `cpq-sync run`.
 */

/** The rules a flood here is made of: flood() flips admin flags and adds watched groups. */
const FLOOD = { rules: ['admin_flag', 'group_membership'], groups: 'zz*' } as const;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A receiver that records every request and answers `status.code` (200 unless changed), with `words` for the alert. */
async function receiver(
  words: (alert: Record<string, unknown>) => string = () => 'ok',
): Promise<{ url: string; requests: Received[]; status: { code: number } }> {
  const requests: Received[] = [];
  const status = { code: 200 };
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const json = JSON.parse(body) as Record<string, unknown>;
      requests.push({ headers: req.headers, body, json });
      res.writeHead(status.code, { 'content-type': 'text/plain' }).end(words(json));
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, requests, status };
}

interface OutboxRow {
  id: string;
  run_id: string;
  user_id: string | null;
  company_login: string | null;
  login: string | null;
  rule: string;
  subject: string;
  new_value: unknown;
  idempotency_key: string;
  status: string;
  attempts: number;
  last_error: string | null;
}

const outbox = (h: Harness, runId: string) =>
  h.t.query<OutboxRow>(
    `SELECT id::text, run_id::text, user_id::text, company_login, login, rule, subject, new_value, idempotency_key, status, attempts, last_error
                        FROM cpq.alert_outbox o WHERE run_id = $1 ORDER BY o.id`,
    [runId],
  );

/** Every user of _host gains the watched group zzAdmins and has its user-admin flag flipped: two alerts each. */
function flood(h: Harness, logins: readonly string[]) {
  for (const login of logins) {
    const user = h.sim.user('_host', login)!;
    h.sim.updateUser('_host', login, { isUserAdminPermEnabled: user.isUserAdminPermEnabled !== true });
    h.sim.addGroup('_host', login, { variableName: 'zzAdmins', label: 'Admins', type: 'Administrator' });
  }
}

const lastRunId = async (h: Harness) => (await h.t.query<{ id: string }>(`SELECT max(id)::text AS id FROM cpq.sync_runs`))[0]!.id;

describe('ALERT_MAX_PER_RUN', () => {
  it('a run over the cap: exactly cap + 1 POSTs, the alert_flood summary first with the counts, the rest suppressed, listed, counted, never sent nor retried', async ({
    startHarness,
  }) => {
    const hook = await receiver();
    const settings = alertEnv(hook.url, FLOOD, { ALERT_MAX_PER_RUN: '5' });
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0 }, settings);
    const env = { ...settings, CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    await h.sync();
    const logins = h.sim.users('_host').map((u) => String(u.login));
    expect(logins).toHaveLength(30);
    flood(h, logins);

    const run = await cli(['run'], env);
    expect(run.code).toBe(0);
    const runId = await lastRunId(h);
    const rows = await outbox(h, runId);
    // The summary, then the 60 alerts in delivery order: the first 5 sent, 55 kept.
    expect(rows).toHaveLength(61);
    const [summary, ...alerts] = rows;
    expect(summary).toMatchObject({ user_id: null, company_login: null, login: null, rule: 'alert_flood', subject: 'ALERT_MAX_PER_RUN', status: 'delivered' });
    const [{ since }] = (await h.t.query<{ since: string }>(
      `SELECT to_char(date_trunc('milliseconds', started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS since FROM cpq.sync_runs WHERE id = $1`,
      [runId],
    )) as [{ since: string }];
    const changesSince = since;
    expect(summary!.new_value).toEqual({ alerts: 60, sent: 5, suppressed: 55, byRule: { admin_flag: 30, group_membership: 30 }, changesSince });
    expect(alerts.slice(0, 5).map((r) => r.status)).toEqual(Array<string>(5).fill('delivered'));
    expect(alerts.slice(5).map((r) => r.status)).toEqual(Array<string>(55).fill('suppressed'));
    expect(alerts.slice(5).every((r) => r.attempts === 0 && r.last_error === null)).toBe(true);

    // Exactly cap + 1 POSTs, the summary first, each signed as any alert.
    expect(hook.requests.map((r) => r.json.idempotencyKey)).toEqual([summary, ...alerts.slice(0, 5)].map((r) => r!.idempotency_key));
    for (const req of hook.requests) expect(verifySignature(req.body, req.headers['x-cpq-sync-signature'] as string, SECRET)).toBe(true);
    const sent = hook.requests[0]!.json;
    expect(sent).toMatchObject({
      type: 'cpq-sync.alert',
      site: 'default',
      company: null,
      login: null,
      rule: 'alert_flood',
      subject: 'ALERT_MAX_PER_RUN',
      old: null,
      new: { alerts: 60, sent: 5, suppressed: 55, byRule: { admin_flag: 30, group_membership: 30 }, changesSince },
      runId,
    });
    expect(sent.text).toBe(
      `CPQ default: run ${runId} raised 60 alerts, more than ALERT_MAX_PER_RUN (5) (admin_flag 30, group_membership 30): the first 5 follow this one, ` +
        `the other 55 are not sent (\`cpq-sync alerts list --status suppressed\`); every change is in the change log: \`cpq-sync changes --since ${changesSince}\``,
    );
    expect(run.stdout).toContain('more alerts than ALERT_MAX_PER_RUN (5): one summary alert and the first 5 are sent, the other 55 are kept unsent');

    // The command the summary names exports every change of the run (`--since <its id>` would leave them out).
    const changes = await cli(['changes', '--since', changesSince], { DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' });
    expect(changes.code).toBe(0);
    const exported = changes.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(new Set(exported.map((c) => c.login))).toEqual(new Set(logins));
    expect(exported.length).toBeGreaterThanOrEqual(30);

    // Listed by status, counted by the gauge.
    const listed = await cli(['alerts', 'list', '--status', 'suppressed', '--json', '--limit', '1000'], { DATABASE_URL: h.t.url, LOG_LEVEL: 'warn' });
    expect(listed.code).toBe(0);
    const suppressed = JSON.parse(listed.stdout) as { id: string; status: string }[];
    expect(suppressed.map((r) => r.id).sort()).toEqual(
      alerts
        .slice(5)
        .map((r) => r.id)
        .sort(),
    );
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- as in alerts.test.ts
    const metrics = new WorkerMetrics({ sites: ['default'], alertCounts: () => countAlerts(h.t.pool), processMetrics: false } as WorkerMetricsOptions);
    const text = await metrics.text();
    expect(text).toContain('cpq_sync_alerts{status="suppressed"} 55');
    expect(text).toContain('cpq_sync_alerts{status="delivered"} 6');

    // alerts retry leaves them alone and sends nothing more.
    const retried = await cli(['alerts', 'retry'], env);
    expect(retried.code).toBe(0);
    expect(hook.requests).toHaveLength(6);
    expect((await outbox(h, runId)).filter((r) => r.status === 'suppressed')).toHaveLength(55);
  });

  it('a run with exactly the cap sends its alerts alone, as before; one more alert than the cap is a flood', async ({ startHarness }) => {
    const hook = await receiver();
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 }, alertEnv(hook.url, FLOOD, { ALERT_MAX_PER_RUN: '10' }));
    await h.sync();
    const logins = h.sim.users('_host').map((u) => String(u.login));
    // 5 users: 10 alerts, the cap.
    flood(h, logins.slice(0, 5));
    const atCap = await h.sync();
    const rows = await outbox(h, atCap.runId);
    expect(rows.map((r) => r.rule).sort()).toEqual([...Array<string>(5).fill('admin_flag'), ...Array<string>(5).fill('group_membership')]);
    expect(rows.every((r) => r.status === 'delivered' && r.login !== null)).toBe(true);
    expect(hook.requests.map((r) => r.json.idempotencyKey)).toEqual(rows.map((r) => r.idempotency_key));
    const group = hook.requests.find((r) => r.json.rule === 'group_membership')!.json;
    expect(group.text).toBe(`CPQ default: \`_host/${String(group.login)}\` joined group \`zzAdmins\` (run ${atCap.runId})`);
    expect(h.logLines.some((l) => l.includes('ALERT_MAX_PER_RUN'))).toBe(false);

    // 5 more users and one more flag: 11 alerts, one over.
    flood(h, logins.slice(5, 10));
    h.sim.updateUser('_host', logins[10]!, { isUserAdminPermEnabled: h.sim.user('_host', logins[10]!)!.isUserAdminPermEnabled !== true });
    hook.requests.splice(0);
    const over = await h.sync();
    const overRows = await outbox(h, over.runId);
    expect(overRows.map((r) => r.status)).toEqual([...Array<string>(11).fill('delivered'), 'suppressed']);
    expect(overRows[0]).toMatchObject({
      rule: 'alert_flood',
      new_value: { alerts: 11, sent: 10, suppressed: 1, byRule: { admin_flag: 6, group_membership: 5 } },
    });
    expect(hook.requests).toHaveLength(11);
    expect(hook.requests[0]!.json.rule).toBe('alert_flood');
  });

  it("forget scrubs a forgotten user's personal values from its alert rows of every status, suppressed too; the summary holds none", async ({
    startHarness,
  }) => {
    const EMAIL = 'Zorblat.Quuxley@example.org';
    // A refusal of an alert about a user quotes its e-mail, as a receiver that looks the user up may.
    const hook = await receiver((alert) => (alert.login === null ? 'bad request' : `unknown recipient ${EMAIL}`));
    hook.status.code = 400;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }, alertEnv(hook.url, FLOOD, { ALERT_MAX_PER_RUN: '2' }));
    await h.sync();
    const logins = h.sim.users('_host').map((u) => String(u.login));
    for (const login of logins) h.sim.updateUser('_host', login, { email: EMAIL });
    flood(h, logins);
    const run = await h.sync();
    const rows = await outbox(h, run.runId);
    // The summary and the first two refused (their errors quote the e-mail); six kept.
    expect(rows.map((r) => r.status)).toEqual([...Array<string>(3).fill('failed'), ...Array<string>(6).fill('suppressed')]);
    // The last user's alerts come last: suppressed, both.
    const login = rows.at(-1)!.login!;
    expect(rows.filter((r) => r.login === login).map((r) => r.status)).toEqual(['suppressed', 'suppressed']);
    expect(rows.filter((r) => r.last_error?.includes(EMAIL))).toHaveLength(2);

    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    const personal = await h.t.query<{ first_name: string | null; last_name: string | null; email: string | null }>(
      `SELECT first_name, last_name, email FROM cpq.users WHERE login = $1`,
      [login],
    );
    const values = Object.values(personal[0]!).filter((v) => v !== null && v !== '');
    expect(values).toContain(EMAIL);
    const erasure = await forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'request 9', requestedBy: 'dpo' }, h.log);
    expect(erasure.rowsRedacted.alert_outbox).toBe(0);

    const after = await h.t.query<{ row: string; status: string; login: string | null }>(
      `SELECT to_jsonb(o)::text AS row, status, login FROM cpq.alert_outbox o WHERE run_id = $1 ORDER BY id`,
      [run.runId],
    );
    // Still the same rows, still suppressed: the record stays complete.
    expect(after.map((r) => r.status)).toEqual(rows.map((r) => r.status));
    for (const r of after.filter((x) => x.login === login || x.login === null)) for (const v of values) expect(r.row).not.toContain(v);
    const summary = after[0]!;
    expect(summary.login).toBeNull();
    for (const other of logins) expect(summary.row).not.toContain(other);
  });

  it('refuses a bad ALERT_MAX_PER_RUN at start: one line naming it, exit code 2', async () => {
    expect(loadConfig({ CPQ_BASE_URL: 'https://site.example.com' }).alerts.maxPerRun).toBe(100);
    expect(loadConfig({ CPQ_BASE_URL: 'https://site.example.com', ALERT_MAX_PER_RUN: ' 1000000 ' }).alerts.maxPerRun).toBe(1_000_000);
    for (const bad of ['0', '1000001', '1.5', '-3', 'lots', '1e3']) {
      const refused = await cli(['run'], {
        CPQ_BASE_URL: 'https://site.example.com',
        DATABASE_URL: 'postgres://sync:pw@127.0.0.1:1/warehouse',
        ALERT_MAX_PER_RUN: bad,
      });
      expect({ code: refused.code, stderr: refused.stderr }, bad).toEqual({
        code: 2,
        stderr: `cpq-sync: invalid configuration: ALERT_MAX_PER_RUN: "${bad}" is not a whole number from 1 to 1000000\n`,
      });
    }
  });
});
