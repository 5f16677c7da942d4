import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REDIRECTS } from '../../src/cpq/http-client.js';
import { hostileSite, zipExport, type HostileSite } from './cpq-hostile.js';

/*
 * Issue 17 item 5. A hostile CPQ (or anyone in the middle of plain HTTP) answers 302 to a host of
 * its choosing, which then serves users no CPQ sent; or redirects an https site to plain http,
 * around CPQ_ALLOW_INSECURE_HTTP. Redirects may only stay within the request's origin (scheme,
 * host and port); anything else fails the run naming both origins, with no credentials.
 */

const CERT = readFileSync(fileURLToPath(new URL('../fixtures/tls/test-only-cert.pem', import.meta.url)), 'utf8');
const KEY = readFileSync(fileURLToPath(new URL('../fixtures/tls/test-only-key.pem', import.meta.url)), 'utf8');

const PLANTED = JSON.stringify({ items: [{ login: 'planted', firstName: 'Not from CPQ' }], hasMore: false });

let site: HostileSite | undefined;
const servers: Server[] = [];
/** Requests the foreign host received: it must never be asked anything. */
const foreignRequests: string[] = [];
let cpqUrl = '';
let foreignUrl = '';
let tlsUrl = '';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(server: Server, host: string, scheme: 'http' | 'https'): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `${scheme}://${host}:${(server.address() as AddressInfo).port}`;
}

const redirect = (res: ServerResponse, status: number, location: string) => res.writeHead(status, { location }).end('moved');

beforeAll(async () => {
  site = await hostileSite();
  // The foreign host, on another loopback address: what a redirect to another machine reaches.
  foreignUrl = await listen(
    createHttpServer((req, res) => {
      foreignRequests.push(req.url ?? '');
      res.writeHead(200, { 'content-type': req.url?.includes('zip') ? 'application/zip' : 'application/json' });
      res.end(req.url?.includes('zip') ? zipExport([{ name: 'users.jsonl', text: '{"login":"planted"}\n' }]) : PLANTED);
    }),
    '127.0.0.2',
    'http',
  );
  const cpq: Handler = (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const company = /^\/rest\/v16\/companies\/([^/]+)\/users$/.exec(path)?.[1];
    if (company === 'foreign') return redirect(res, 302, `${foreignUrl}/rest/v16/companies/foreign/users${new URL(req.url!, 'http://x').search}`);
    if (company === 'foreign_zip') return redirect(res, 307, `${foreignUrl}/zip/export`);
    if (company === 'foreign_userinfo') return redirect(res, 301, foreignUrl.replace('http://', 'http://sync:hunter2-secret@') + '/x');
    if (company === 'same_origin') return redirect(res, 302, '/moved/same_origin/users');
    if (company === 'loop') return redirect(res, 302, `/rest/v16/companies/loop/users?again=${Math.random()}`);
    if (company === 'downgrade') return redirect(res, 302, `${cpqUrl}/moved/same_origin/users`);
    if (path === '/moved/same_origin/users') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ items: [{ login: 'moved', firstName: 'Same origin' }], hasMore: false }));
    }
    res.writeHead(404).end();
  };
  cpqUrl = await listen(createHttpServer(cpq), '127.0.0.1', 'http');
  tlsUrl = await listen(createHttpsServer({ cert: CERT, key: KEY }, cpq), '127.0.0.1', 'https');
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  await site?.close();
});

async function users(company: string) {
  return site!.h.t.query(`SELECT login FROM cpq.users WHERE company_login = $1 ORDER BY login`, [company]);
}

describe('redirects from CPQ', () => {
  it('a 302 to another host fails the run naming both hosts; the other host is never asked and nothing it would send is loaded', async () => {
    const error = await site!.refused('foreign', { cpq: { baseUrl: cpqUrl } });
    expect(error.kind).toBe('source');
    expect(error.message).toMatch(
      new RegExp(
        `^GET ${cpqUrl}/rest/v16/companies/foreign/users\\?\\S+: CPQ redirected from ${cpqUrl} to ${foreignUrl}; redirects are followed only within ${cpqUrl}$`,
      ),
    );
    expect(foreignRequests).toEqual([]);
    expect(await users('foreign')).toEqual([]);
  });

  it('the zip download is held to the same rule', async () => {
    const error = await site!.refused('foreign_zip', { format: 'zip', cpq: { baseUrl: cpqUrl } });
    expect(error.message).toContain(`CPQ redirected from ${cpqUrl} to ${foreignUrl}`);
    expect(foreignRequests).toEqual([]);
  });

  it('credentials in the redirect location never reach the error', async () => {
    const error = await site!.refused('foreign_userinfo', { cpq: { baseUrl: cpqUrl } });
    expect(error.message).toContain(`CPQ redirected from ${cpqUrl} to ${foreignUrl};`);
    expect(error.message).not.toMatch(/hunter2|sync:/);
    expect(foreignRequests).toEqual([]);
  });

  it('an https site redirecting to plain http (a downgrade) is refused, naming both', async () => {
    const error = await site!.refused('downgrade', { cpq: { baseUrl: tlsUrl, ca: CERT } });
    expect(error.message).toMatch(
      new RegExp(
        `^GET ${tlsUrl}/rest/v16/companies/downgrade/users\\?\\S+: CPQ redirected from ${tlsUrl} to ${cpqUrl}; redirects are followed only within ${tlsUrl}$`,
      ),
    );
    expect(await users('downgrade')).toEqual([]);
  });

  it('a redirect within the same origin is followed', async () => {
    const { error } = await site!.run('same_origin', { cpq: { baseUrl: cpqUrl } });
    expect(error).toBeUndefined();
    expect(await users('same_origin')).toEqual([{ login: 'moved' }]);
  });

  it(`a redirect loop ends after ${MAX_REDIRECTS} redirects with a clear error`, async () => {
    const error = await site!.refused('loop', { cpq: { baseUrl: cpqUrl } });
    expect(error.message).toMatch(new RegExp(`^GET ${cpqUrl}/rest/v16/companies/loop/users\\?\\S+: CPQ redirected more than ${MAX_REDIRECTS} times; refused$`));
  });
});
