import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { describe, expect } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createAuthenticator } from '../src/cpq/auth.js';
import { CpqHttpClient } from '../src/cpq/http-client.js';
import { keysetPages } from '../src/cpq/paging.js';
import { RequestBudget } from '../src/cpq/request-budget.js';
import { SyncError } from '../src/errors.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { expectInSync } from './helpers/db-equals-simulator.js';
import { until } from './helpers/cli-process.js';
import { freePort } from './helpers/free-port.js';
import { it } from './helpers/harness.js';

/*
 * The request budget of a site (CPQ_MAX_IN_FLIGHT): never more requests at once, cut when CPQ
 * pushes back and grown back slowly; Retry-After obeyed up to CPQ_RETRY_MAX_DELAY; the OAuth token
 * service retried like CPQ; and each next keyset page requested before the previous one is used.
 */

const HOST_USERS = '/rest/v16/companies/_host/users';
const PARTNER1_USERS = '/rest/v16/companies/partner1/users';
const TOKEN_PATH = '/oauth2/v1/token';
const oauth = { clientId: 'budget', clientSecret: 'budget-secret' };
const oauthEnv = (baseUrl: string) => ({
  CPQ_OAUTH_TOKEN_URL: `${baseUrl}${TOKEN_PATH}`,
  CPQ_OAUTH_CLIENT_ID: oauth.clientId,
  CPQ_OAUTH_CLIENT_SECRET: oauth.clientSecret,
});

describe('RequestBudget', () => {
  it('lets out at most its limit at once, first come first served', async () => {
    const budget = new RequestBudget(2);
    const a = await budget.acquire();
    const b = await budget.acquire();
    const order: string[] = [];
    const c = budget.acquire().then((slot) => (order.push('c'), slot));
    const d = budget.acquire().then((slot) => (order.push('d'), slot));
    await sleep(10);
    expect(order).toEqual([]);
    expect(budget.inFlight).toBe(2);
    a.release();
    a.release(); // a second release of the same slot frees nothing more
    (await c).release();
    b.release();
    (await d).release();
    expect(order).toEqual(['c', 'd']);
    expect(budget.inFlight).toBe(0);
    expect(budget.maxInFlight).toBe(2);
  });

  it('halves on a slowdown once per round, never below one, and grows back a quarter step per round of good answers', async () => {
    const budget = new RequestBudget(8);
    const first = [await budget.acquire(), await budget.acquire()];
    budget.slowDown(first[0]!);
    budget.slowDown(first[1]!); // the same round: answers to requests sent before the cut
    expect(budget.limit).toBe(4);
    for (const slot of first) slot.release();
    const later = await budget.acquire();
    budget.slowDown(later);
    later.release();
    expect(budget.limit).toBe(2);
    for (let i = 0; i < 3; i++) {
      const slot = await budget.acquire();
      budget.slowDown(slot);
      slot.release();
    }
    expect(budget.limit).toBe(1);
    // At 1, each good answer adds 1/4: four to reach 2; at 2, eight more to reach 3.
    for (let i = 0; i < 3; i++) budget.succeeded();
    expect(budget.limit).toBe(1);
    budget.succeeded();
    expect(budget.limit).toBe(2);
    for (let i = 0; i < 7; i++) budget.succeeded();
    expect(budget.limit).toBe(2);
    budget.succeeded();
    expect(budget.limit).toBe(3);
    for (let i = 0; i < 1000; i++) budget.succeeded();
    expect(budget.limit).toBe(8);
  });

  it('holds every request during a pause, and a waiter whose signal is aborted leaves the queue', async () => {
    const budget = new RequestBudget(1);
    budget.pause(80);
    const started = Date.now();
    const slot = await budget.acquire();
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
    const abort = new AbortController();
    const waiting = budget.acquire(abort.signal);
    abort.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    slot.release();
    (await budget.acquire()).release();
    expect(budget.inFlight).toBe(0);
  });
});

describe('a run within the request budget', () => {
  it('never has more than CPQ_MAX_IN_FLIGHT requests at once across companies and key ranges, and uses them', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 3, usersPerCompany: 40, integrationUsers: 0, latency: { fixedMs: 15, perUserMs: 1 } },
      { CPQ_COMPANIES: '*', CPQ_PAGE_SIZE: '4', CPQ_KEY_RANGES: '6', CPQ_SPLIT_SLOWER_THAN: '0ms', CPQ_CONCURRENCY: '4', CPQ_MAX_IN_FLIGHT: '3' },
    );
    const result = await h.sync();
    expect(result.inserted).toBe(160);
    expect(h.sim.maxInFlightSeen).toBe(3);
    expect(h.sim.throttled).toBe(0);
    await expectInSync(h);
  });

  it('a site that serves fewer at once: its 429s cut the budget, and the run completes', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 1, usersPerCompany: 60, integrationUsers: 0, latency: { fixedMs: 10 }, maxInFlight: 2, retryAfterSeconds: 0 },
      { CPQ_COMPANIES: '_host,partner1', CPQ_PAGE_SIZE: '4', CPQ_KEY_RANGES: '8', CPQ_SPLIT_SLOWER_THAN: '0ms', CPQ_MAX_IN_FLIGHT: '8', CPQ_MAX_RETRIES: '10' },
    );
    const result = await h.sync();
    expect(result.inserted).toBe(120);
    expect(h.sim.throttled).toBeGreaterThan(0);
    expect(result.http.retries['429']).toBe(h.sim.throttled);
    // Halved from 8 to 2 within the first rounds, then probing upwards now and then: most requests are served.
    const served = h.sim.requests.filter((r) => r.status === 200).length;
    expect(h.sim.throttled).toBeLessThan(served / 3);
    await expectInSync(h);
  });

  it('a Retry-After longer than CPQ_RETRY_MAX_DELAY fails the run at once with one line naming it', async ({ startHarness }) => {
    // A CPQ_RETRY_MAX_DELAY far above what a run that fails at once takes on a loaded machine (with
    // 2 s, the bound below left a whole run little more than that), and the bound half of it: a run
    // that waited the longest delay instead of stopping still fails it.
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '5', CPQ_RETRY_MAX_DELAY: '30s' });
    h.sim.addFault({ match: { path: HOST_USERS }, times: 1, status: 503, headers: { 'retry-after': '3600' } });
    const started = Date.now();
    const err = await h.syncError();
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(err).toBeInstanceOf(SyncError);
    expect(err).toMatchObject({ kind: 'source' });
    expect(err.message).toMatch(
      /^GET http:\/\/\S+\/_host\/users\?\S+: CPQ answered 503 and asked to wait 60min \(Retry-After\), longer than CPQ_RETRY_MAX_DELAY \(30s\); the run stops rather than wait$/,
    );
  });

  it('a Retry-After of more digits than a number holds is named as longer than a year, not as Infinity', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 }, { CPQ_PAGE_SIZE: '5', CPQ_RETRY_MAX_DELAY: '2s' });
    h.sim.addFault({ match: { path: HOST_USERS }, times: 1, status: 503, headers: { 'retry-after': '9'.repeat(400) } });
    const err = await h.syncError();
    expect(err).toMatchObject({ kind: 'source' });
    expect(err.message).toMatch(
      /: CPQ answered 503 and asked to wait more than a year \(Retry-After\), longer than CPQ_RETRY_MAX_DELAY \(2s\); the run stops rather than wait$/,
    );
  });

  it('a Retry-After within CPQ_RETRY_MAX_DELAY holds the whole site, not only the request it answered', async ({ startHarness }) => {
    // Pages take 100 ms; the 429 (a fault) is answered at once, while the other company's first page is on its way.
    const h = await startHarness(
      { partnerCompanies: 1, usersPerCompany: 12, integrationUsers: 0, latency: { fixedMs: 100 } },
      { CPQ_COMPANIES: '_host,partner1', CPQ_PAGE_SIZE: '4', CPQ_RETRY_MAX_DELAY: '5s', CPQ_MAX_IN_FLIGHT: '2' },
    );
    h.sim.addFault({ match: { path: HOST_USERS }, times: 1, status: 429, headers: { 'retry-after': '1' } });
    let refusedAt = 0;
    let partnerFirstPage = true;
    const delays: number[] = [];
    h.sim.onRequest = async (req) => {
      if (req.path === HOST_USERS && refusedAt === 0) refusedAt = Date.now();
      else if (req.path === PARTNER1_USERS && partnerFirstPage) {
        // The other company's first page, sent with the refused one (however late it arrives on a
        // loaded machine): answered only once the client has taken the 429 in (it logs that right
        // after holding the site), so no request can take its place in the budget before the hold.
        partnerFirstPage = false;
        while (!h.logLines.some((l) => l.includes('CPQ asked us to retry'))) await sleep(5);
      } else if (refusedAt > 0) delays.push(Date.now() - refusedAt);
    };
    await h.sync();
    // Those two aside, every request of either company was sent after the 429 and waited out the second.
    expect(partnerFirstPage).toBe(false);
    expect(delays.length).toBeGreaterThan(3);
    for (const delay of delays) expect(delay).toBeGreaterThanOrEqual(900);
    await expectInSync(h);
  });
});

describe('the OAuth token service', () => {
  it('answering 503 is retried like a CPQ request, and the run goes on', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0, auth: { oauth } }, (baseUrl) => ({
      ...oauthEnv(baseUrl),
      CPQ_PAGE_SIZE: '5',
    }));
    h.sim.addFault({ match: { path: TOKEN_PATH }, times: 2, status: 503 });
    const result = await h.sync();
    expect(result.inserted).toBe(10);
    expect(result.http.retries).toEqual({ token: 2 });
    expect(h.sim.tokenRequests).toBe(1);
  });

  it('unreachable after every retry fails the run naming the token service', async ({ startHarness }) => {
    const port = await freePort();
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0, auth: { oauth } }, () => ({
      ...oauthEnv(`http://127.0.0.1:${port}`),
      CPQ_ALLOW_INSECURE_HTTP: 'true',
      CPQ_MAX_RETRIES: '2',
    }));
    const err = await h.syncError();
    expect(err).toMatchObject({ kind: 'source' });
    expect(err.message).toMatch(
      new RegExp(`^POST http://127\\.0\\.0\\.1:${port}/oauth2/v1/token: OAuth token service unreachable \\(.+\\), after 3 attempts$`),
    );
    expect(h.sim.requests.filter((r) => r.path === HOST_USERS)).toHaveLength(0);
  });
});

describe('CPQ_REQUEST_TIMEOUT and the token', () => {
  // The deadline of a request ran from before its token was fetched: a token service taking most
  // of CPQ_REQUEST_TIMEOUT left CPQ the rest, and a site answering in time was taken for one that
  // timed out (retried, its budget halved, or the run failed as CPQ unreachable).
  it('bounds what CPQ takes to answer, not the wait for a new OAuth token', async () => {
    const slowly = (ms: number, body: string) =>
      createServer((_req, res) => void setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), ms));
    const token = slowly(1200, JSON.stringify({ access_token: 'slow-token', expires_in: 3600 }));
    const cpq = slowly(1200, '{"items":[],"hasMore":false}');
    const servers = [token, cpq];
    try {
      for (const server of servers) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const [tokenUrl, baseUrl] = servers.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const config = loadConfig({
        CPQ_BASE_URL: baseUrl!,
        ...oauthEnv(tokenUrl!),
        CPQ_REQUEST_TIMEOUT: '2s',
        CPQ_MAX_RETRIES: '0',
      }).cpq!;
      const client = new CpqHttpClient(config, createAuthenticator(config.auth, config.requestTimeoutMs), pino({ level: 'silent' }));
      const page = await client.getJson(client.url('/rest/v16/companies/_host/users'), { collection: true });
      expect(page.records?.length).toBe(0);
      expect(client.budget.limit).toBe(config.maxInFlight);
    } finally {
      for (const server of servers) {
        server.closeAllConnections();
        server.close();
      }
    }
  });
});

describe('overlap', () => {
  it('requests the next keyset page as soon as the previous page is read, before it is used', async () => {
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 });
    const baseUrl = await sim.start();
    try {
      const cpq = loadConfig({ CPQ_BASE_URL: baseUrl, CPQ_ALLOW_INSECURE_HTTP: 'true' }).cpq!;
      const client = new CpqHttpClient(cpq, createAuthenticator({ kind: 'none' }, 5_000), pino({ level: 'silent' }));
      const pages = keysetPages(client, { path: HOST_USERS, query: {}, filter: undefined, pageSize: 5 });
      const first = await pages.next();
      expect(first.done).toBe(false);
      // The first page is not used yet: the second was asked for all the same. Waited for (until),
      // not given 100 ms: on a loaded CI the request could reach the simulator later than that.
      await until('the second page to be asked for', () => sim.requests.length >= 2);
      expect(sim.requests.map((r) => r.query.q)).toEqual([undefined, JSON.stringify({ login: { $gt: sim.users('_host')[4]!.login } })]);
      const rest: unknown[] = [];
      for await (const page of pages) rest.push(...page.items.values());
      expect(rest).toHaveLength(7);
      expect(sim.requests).toHaveLength(3);
    } finally {
      await sim.stop();
    }
  });
});

describe("CPQ's clock from its Date header", () => {
  it('takes the earliest HTTP date of a year from 1970, however far behind or ahead of ours, and leaves out anything else', async () => {
    let date = '';
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json', date }).end('{"items":[]}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const cpq = loadConfig({ CPQ_BASE_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }).cpq!;
      const client = new CpqHttpClient(cpq, createAuthenticator({ kind: 'none' }, 5_000), pino({ level: 'silent' }));
      const seen = async (header: string) => {
        date = header;
        await client.getJson(client.url('/x'));
        return client.earliestSiteDate?.toISOString();
      };
      const hourAgo = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
      expect(await seen('0')).toBeUndefined(); // Date.parse reads it as 2000-01-01
      expect(await seen('-200000-01-01T00:00:00Z')).toBeUndefined(); // a year Postgres cannot store
      expect(await seen('Thu, 01 Jan 0099 00:00:00 GMT')).toBeUndefined(); // Date.parse reads it as 1999
      // Ahead of ours, taken: the worker's clock may be behind the database's (saveCursor takes the earliest).
      const ahead = new Date(Math.floor(Date.now() / 1000) * 1000 + 7_200_000);
      expect(await seen(ahead.toUTCString())).toBe(ahead.toISOString());
      expect(await seen(hourAgo.toUTCString())).toBe(hourAgo.toISOString());
      expect(await seen(new Date().toUTCString())).toBe(hourAgo.toISOString()); // the earliest stays
      expect(await seen('Sun, 06 Nov 1994 08:49:37 GMT')).toBe('1994-11-06T08:49:37.000Z'); // far behind, still CPQ's clock: re-reading more is safe
    } finally {
      server.close();
    }
  });
});
