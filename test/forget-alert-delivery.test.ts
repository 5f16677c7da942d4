import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect } from 'vitest';
import { deliverPendingAlerts } from '../src/alerts/delivery.js';
import { forgetUser } from '../src/sync/forget.js';
import { runSync } from '../src/sync/run.js';
import { alertEnv } from './helpers/alerts.js';
import { it, type Harness, type StartHarness } from './helpers/harness.js';

/*
 * Review HR: an alert delivery in flight as `forget` erased its user wrote the webhook's answer,
 * quoting the user's e-mail, into cpq.alert_outbox.last_error after forget had scrubbed that column:
 * the forgotten user's personal data was back in the database. The outcome is now written once
 * any erasure of the user in progress has ended (it holds the user's row), and an alert about a
 * user erased since it was made keeps the webhook's status, not its words.
 */

const EMAIL = 'Zorblat.Quuxley@example.org';
/** The alerts here are about admin flags flipped, one per user. */
const ADMIN_FLAG = { rules: ['admin_flag'] } as const;

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
});

/** A receiver that answers each alert, after `delayMs`, `status` and words quoting the user's e-mail; `arrival` resolves when one comes. */
async function slowQuotingReceiver(delayMs: number, status = 503): Promise<{ url: string; arrival: Promise<void> }> {
  let arrived!: () => void;
  const arrival = new Promise<void>((r) => (arrived = r));
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrived();
      setTimeout(() => res.writeHead(status, { 'content-type': 'text/plain' }).end(`unknown recipient ${EMAIL}`), delayMs);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, arrival };
}

/**
 * A site whose first user had an admin flag changed (one alert about it, pending: runSync alone
 * delivers nothing) and its e-mail set to EMAIL, then was deleted in CPQ and found deleted by a full
 * run: one `forget` may erase it. Alerts go to `webhookUrl`.
 */
async function deletedUserWithPendingAlert(
  startHarness: StartHarness,
  webhookUrl: string,
  env: Record<string, string> = {},
): Promise<{ h: Harness; login: string }> {
  const h = await startHarness(
    { usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 },
    alertEnv(webhookUrl, ADMIN_FLAG, { ALERT_WEBHOOK_TIMEOUT: '10s', ...env }),
  );
  const deps = { pool: h.t.pool, db: h.t.db, config: h.config, log: h.log };
  await runSync(deps);
  const user = h.sim.users('_host')[0]!;
  const login = String(user.login);
  h.sim.updateUser('_host', login, { email: EMAIL, isUserAdminPermEnabled: user.isUserAdminPermEnabled !== true });
  await runSync(deps);
  h.sim.deleteUser('_host', login);
  await runSync(deps, { full: true });
  return { h, login };
}

it('forget while a delivery about the user is in flight: the webhook words quoting the user are not written back; its status is', async ({ startHarness }) => {
  const receiver = await slowQuotingReceiver(1500);
  const { h, login } = await deletedUserWithPendingAlert(startHarness, receiver.url);
  expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.alert_outbox WHERE login = $1 AND status = 'pending'`, [login])).toEqual([{ n: 1 }]);

  // The delivery claims the alert and posts it; while the receiver thinks, the user is forgotten.
  const delivery = deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log });
  await receiver.arrival;
  await forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'request 7', requestedBy: 'dpo' }, h.log);
  expect(await delivery).toEqual({ delivered: 0, failed: 0, retrying: 1 });

  const rows = await h.t.query<{ last_error: string | null; attempts: number }>(`SELECT last_error, attempts FROM cpq.alert_outbox WHERE login = $1`, [login]);
  expect(rows).toEqual([{ last_error: 'the webhook answered HTTP 503 (its words are not kept: the user was forgotten)', attempts: 1 }]);
});

it('a delivery stored before forget keeps the words, which forget then scrubs as before; one about another user keeps them', async ({ startHarness }) => {
  const receiver = await slowQuotingReceiver(0, 400);
  const h = await startHarness(
    { usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 },
    alertEnv(receiver.url, ADMIN_FLAG, { ALERT_WEBHOOK_TIMEOUT: '10s' }),
  );
  const deps = { pool: h.t.pool, db: h.t.db, config: h.config, log: h.log };
  await runSync(deps);
  const [user, other] = h.sim.users('_host');
  const login = String(user!.login);
  for (const u of [user!, other!]) h.sim.updateUser('_host', String(u.login), { email: EMAIL, isUserAdminPermEnabled: u.isUserAdminPermEnabled !== true });
  await runSync(deps);
  h.sim.deleteUser('_host', login);
  await runSync(deps, { full: true });
  // Both refused for good (400), in one pass.
  expect(await deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log })).toEqual({ delivered: 0, failed: 2, retrying: 0 });
  const before = await h.t.query<{ login: string; last_error: string }>(`SELECT login, last_error FROM cpq.alert_outbox ORDER BY login`);
  expect(before.map((r) => r.last_error)).toEqual([
    `the webhook answered HTTP 400: unknown recipient ${EMAIL}`,
    `the webhook answered HTTP 400: unknown recipient ${EMAIL}`,
  ]);
  await forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'request 8', requestedBy: 'dpo' }, h.log);
  const after = await h.t.query<{ login: string; last_error: string }>(`SELECT login, last_error FROM cpq.alert_outbox ORDER BY login`);
  expect(new Map(after.map((r) => [r.login, r.last_error]))).toEqual(
    new Map([
      [login, 'the webhook answered HTTP 400: unknown recipient [redacted]'],
      [String(other!.login), `the webhook answered HTTP 400: unknown recipient ${EMAIL}`],
    ]),
  );
});

it('forget in progress (its outbox scrubbed, not yet committed) as the delivery records its outcome: the outcome waits for it, and keeps the status alone (review HY)', async ({
  startHarness,
}) => {
  const receiver = await slowQuotingReceiver(300);
  const { h, login } = await deletedUserWithPendingAlert(startHarness, receiver.url, { SYNC_LOCK_TIMEOUT: '60s' });
  // Forget held after it locked the user and scrubbed the outbox: its INSERT INTO cpq.erasures waits for this lock.
  const blocker = await h.t.pool.connect();
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE cpq.erasures IN SHARE MODE');
  const forgetting = forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'r', requestedBy: 'dpo' }, h.log);
  const waiting = () =>
    h.t.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO cpq.erasures%'`);
  while ((await waiting())[0]!.n === 0) await new Promise((r) => setTimeout(r, 50));
  const delivery = deliverPendingAlerts({ on: h.t.pool, config: h.config.alerts, log: h.log });
  // Long enough for the webhook's answer (300 ms) and the outcome's write, had it not waited.
  await new Promise((r) => setTimeout(r, 2000));
  await blocker.query('COMMIT');
  blocker.release();
  await forgetting;
  expect(await delivery).toEqual({ delivered: 0, failed: 0, retrying: 1 });
  expect(await h.t.query(`SELECT last_error FROM cpq.alert_outbox WHERE login = $1`, [login])).toEqual([
    { last_error: 'the webhook answered HTTP 503 (its words are not kept: the user was forgotten)' },
  ]);
});
