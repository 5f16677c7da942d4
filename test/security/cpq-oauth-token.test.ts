import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { createAuthenticator } from '../../src/cpq/auth.js';
import { CpqHttpClient } from '../../src/cpq/http-client.js';
import { SyncError } from '../../src/errors.js';
import { builtModule, runWithHeap } from '../helpers/small-heap.js';

/*
 * The OAuth token endpoint is part of what answers us, so it is not trusted either: a 307 from it
 * would send the client-credentials POST to a host the operator never named, and an endless
 * response would be read whole into memory. Both now fail the run with one line.
 */

const servers: Server[] = [];
const foreignRequests: string[] = [];
let tokenUrl = '';
let foreignUrl = '';
let onceUrl = '';

async function listen(host: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

/** A CPQ client of `base` (no retries, quiet) whose OAuth token comes from `base`/token. */
function oauthClientOf(base: string): CpqHttpClient {
  const auth = createAuthenticator({ kind: 'oauth', tokenUrl: `${base}/token`, clientId: 'client', clientSecret: 'very-secret-value' }, 5000);
  const quiet = { warn() {}, info() {}, debug() {}, error() {} } as unknown as Logger;
  return new CpqHttpClient(
    { baseUrl: base, requestTimeoutMs: 5000, maxRetries: 0, retryBaseDelayMs: 1, retryMaxDelayMs: 10, ca: undefined, maxPageBytes: 1 << 20, maxInFlight: 4 },
    auth,
    quiet,
  );
}

beforeAll(async () => {
  foreignUrl = await listen('127.0.0.2', (req, res) => {
    foreignRequests.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'planted', expires_in: 3600 }));
  });
  tokenUrl = await listen('127.0.0.1', (req, res) => {
    if (req.url?.startsWith('/redirect')) return void res.writeHead(307, { location: `${foreignUrl}/token` }).end();
    if (req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"access_token":"');
      // 64 MiB of token, written as the client reads; the client must stop long before.
      let sent = 0;
      const more = () => {
        while (sent < 64 * 1024 * 1024) {
          sent += 65536;
          if (!res.write('a'.repeat(65536))) return void res.once('drain', more);
        }
        res.end('"}');
      };
      res.on('error', () => undefined);
      more();
      return;
    }
    if (req.url === '/null') return void res.writeHead(200, { 'content-type': 'application/json' }).end('null');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'good-token', expires_in: 3600 }));
  });
  // A site whose every token works once: the second request with it gets a 401, so each request
  // of the client renews the token; its token service hands out a new JWT-sized token each time.
  const usedOnce = new Set<string>();
  onceUrl = await listen('127.0.0.1', (req, res) => {
    if (req.url === '/token') {
      const token = randomBytes(3000).toString('base64url');
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: 3600 }));
    }
    const authorization = req.headers.authorization ?? '';
    if (usedOnce.has(authorization)) return void res.writeHead(401).end();
    usedOnce.add(authorization);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[],"hasMore":false}');
  });
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const oauth = (path: string) =>
  createAuthenticator({ kind: 'oauth', tokenUrl: `${tokenUrl}${path}`, clientId: 'client', clientSecret: 'very-secret-value', scope: undefined }, 5_000);

/** What asking the token endpoint at `path` fails with (undefined when it answers a token). */
const refusal = (path: string): Promise<unknown> =>
  oauth(path)
    .authorization()
    .then(
      () => undefined,
      (err: unknown) => err,
    );

describe('attack: a hostile OAuth token endpoint', () => {
  it('a redirect to another host is refused before that host is asked anything', async () => {
    const error = await refusal('/redirect');
    expect(error).toHaveProperty(
      'message',
      `POST ${tokenUrl}/redirect: OAuth token service answered 307 (a redirect); redirects are not followed for the token request: set CPQ_OAUTH_TOKEN_URL to the final address`,
    );
    expect(foreignRequests).toEqual([]);
  });

  it('an endless token response is cut, not read whole', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const error = await refusal('/endless');
    expect(error).toHaveProperty('message', `POST ${tokenUrl}/endless: OAuth token response is not JSON`);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });

  it('a token URL whose query holds a key is named without its values', async () => {
    const error = await refusal('/redirect?api-version=1.0&code=TOPSECRETvalue123');
    expect(error).toHaveProperty(
      'message',
      expect.stringMatching(new RegExp(`^POST ${tokenUrl}/redirect\\?api-version=…&code=…: OAuth token service answered 307`)) as unknown,
    );
    expect((error as Error).message).not.toContain('TOPSECRET');
  });

  it('a token response of JSON null fails as an auth error, not as CPQ unreachable after every retry', async () => {
    const error = await refusal('/null');
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ kind: 'auth', message: `POST ${tokenUrl}/null: OAuth token response has no access_token` });
  });

  it('a site that takes each token once (a renewal per request) keeps the heap bounded: only the credentials sent last are searched for', async () => {
    // The client in a process of its own whose 64 MB heap held 1,100 such tokens before (each
    // kept, with a search pattern ~15 times its size, and all searched in every page read: 28 s).
    const script = `import { CpqHttpClient } from ${builtModule('cpq/http-client.js')};
      import { createAuthenticator } from ${builtModule('cpq/auth.js')};
      const base = process.argv[1];
      const auth = createAuthenticator({ kind: 'oauth', tokenUrl: base + '/token', clientId: 'client', clientSecret: 'very-secret-value' }, 5000);
      const quiet = { warn() {}, info() {}, debug() {}, error() {} };
      const client = new CpqHttpClient(
        { baseUrl: base, requestTimeoutMs: 5000, maxRetries: 0, retryBaseDelayMs: 1, retryMaxDelayMs: 10, ca: undefined, maxPageBytes: 1 << 24, maxInFlight: 4 },
        auth, quiet);
      for (let i = 0; i < 1500; i++) await client.getJson(base + '/rest/v16/companies/_host/users?page=' + i, { collection: true });
      console.log(client.stats.requests);`;
    // Each request: the 401 with the token of the request before, then the request with a new token.
    expect(Number(await runWithHeap(64, script, [onceUrl]))).toBe(2999);
  }, 60_000);

  // A token expiring mid-run is refused to every request in flight with it. Each 401 dropped the
  // token cached, also one a request before it had just fetched: a grant per request in flight,
  // and where the token service keeps one token per client (each grant revoking the one before),
  // the requests already renewed once were refused again and the run failed as refused credentials.
  it('a token refused to several requests in flight is renewed once, not once per request', async () => {
    let grants = 0;
    let refusedSoFar = 0;
    const base = await listen('127.0.0.1', (req, res) => {
      if (req.url === '/token') {
        grants++;
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `tok-${grants}`, expires_in: 3600 }));
      }
      const sent = req.headers.authorization;
      // The first token has expired: each request with it is refused, one after the other.
      if (sent === 'Bearer tok-1') return void setTimeout(() => res.writeHead(401).end(), 150 * ++refusedSoFar);
      // One token per client: only the newest is good.
      setTimeout(() => {
        if (sent === `Bearer tok-${grants}`) res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[]}');
        else res.writeHead(401).end();
      }, 300);
    });
    const client = oauthClientOf(base);
    const pages = await Promise.all([0, 1, 2, 3].map((i) => client.getJson(`${base}/rest/v16/companies/_host/users?page=${i}`, { collection: true })));
    expect(pages.map((page) => page.status)).toEqual([200, 200, 200, 200]);
    expect(refusedSoFar).toBe(4);
    expect(grants).toBe(2);
  });

  it('a 16,000-character token echoed in a page is found in time linear in the page, and refused without quoting it', async () => {
    // A token service may hand out any token up to its response's 64 KiB. The credential was
    // searched for with one regular expression of an alternative per character: from about 8,000
    // characters V8 could not compile it ("Stack overflow"), and that error, which quotes the
    // pattern, was taken for a network error quoting the credential: the page was asked for again
    // at every retry, and the run failed as "CPQ unreachable". Shorter, it backtracked at every
    // place the page began like the token (1,000 A's against 1 MB of 999-A lines: 4.5 s).
    const token = `+${'A'.repeat(15_998)}B`;
    // Its + escaped, as a JSON writer may, after escaped slashes.
    const page = `{"items":[{"note":"\\/\\/","login":"\\u002B${token.slice(1)}"}],"hasMore":false}`;
    const base = await listen('127.0.0.1', (req, res) => {
      const body = req.url === '/token' ? JSON.stringify({ access_token: token, expires_in: 3600 }) : page;
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
    const client = oauthClientOf(base);
    const url = `${base}/rest/v16/companies/_host/users`;
    const error = await client.getJson(url, { collection: true }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(SyncError);
    expect((error as Error).message).toBe(
      `GET ${url}: the response holds a credential this run sent (at character ${page.indexOf('\\u002B')}); refused, so that it reaches neither the database nor the logs`,
    );
  });

  it('a plain token response still works', async () => {
    expect(await oauth('/token').authorization()).toBe('Bearer good-token');
  });
});
