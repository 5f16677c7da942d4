import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { hostileSite, type HostileSite } from './cpq-hostile.js';

/*
 * Issue 17 item 7 (names). Names CPQ sends become URL path segments: a company loginName from
 * GET /rest/v16/companies (CPQ_COMPANIES=*), an integration user's partyNumber for its detail
 * call. encodeURIComponent leaves `.` alone, so a company named `..` turned
 * `/rest/v16/companies/../users` into `/rest/v16/users`, another endpoint whose users would be
 * loaded as that company's. Such names are refused before any URL is built.
 */

let site: HostileSite | undefined;
let server: Server | undefined;
let baseUrl = '';
const requests: string[] = [];
const json = (body: unknown) => JSON.stringify(body);
/** The company list's second company. */
let listed = '..';

beforeAll(async () => {
  site = await hostileSite();
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url.pathname);
    res.writeHead(200, { 'content-type': 'application/json' });
    switch (url.pathname) {
      case '/rest/v16/companies':
        return void res.end(json({ items: [{ loginName: 'site-host', isHost: true }, { loginName: listed }], hasMore: false }));
      case '/cpq/rest/v19/integrationUsers':
        // An integration user listed without groups: its detail is read by partyNumber.
        return void res.end(json({ items: [{ login: 'integration', partyNumber: '..', company: { loginName: '_host' } }], hasMore: false }));
      case '/cpq/rest/v16/companies/_host/users':
        return void res.end(json({ items: [], hasMore: false }));
      default:
        // Where a dot-segment would land (/rest/v16/users, /cpq/rest/v19/): users no CPQ company sent.
        return void res.end(json({ items: [{ login: 'planted', groups: { items: [] } }], hasMore: false, login: 'planted', partyNumber: '1' }));
    }
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  requests.length = 0;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await site?.close();
});

async function planted() {
  return site!.h.t.query(`SELECT company_login, login FROM cpq.users WHERE login = 'planted'`);
}

describe('names CPQ sends are never path steps', () => {
  it('a company named ".." in the company list (CPQ_COMPANIES=*) fails the run naming the list; no other endpoint is asked', async () => {
    const error = await site!.refused('*', { cpq: { baseUrl } });
    expect(error.kind).toBe('data');
    expect(error.message).toMatch(
      new RegExp(
        `^GET ${baseUrl}/rest/v16/companies\\?\\S+: company 1: loginName "\\.\\." cannot be used in a URL path: empty names, "\\.", "\\.\\." and names holding / or \\\\ are refused$`,
      ),
    );
    expect(requests).toEqual(['/rest/v16/companies']);
    expect(await planted()).toEqual([]);
  });

  it.each(['a\u0000b', 'a\ud800b', 'a\udc00'])(
    'a company named %j in the company list fails the run as bad data naming it, not as a database error; its users are not asked for',
    async (name) => {
      listed = name;
      try {
        const error = await site!.refused('*', { cpq: { baseUrl } });
        expect(error.kind).toBe('data');
        expect(error.message).toBe(
          `GET ${baseUrl}/rest/v16/companies?limit=1000&offset=0: company 1: loginName ${JSON.stringify(name)} holds a NUL character or an unpaired UTF-16 surrogate, which a URL and Postgres text cannot hold`,
        );
        expect(requests).toEqual(['/rest/v16/companies']);
      } finally {
        listed = '..';
      }
    },
  );

  it('an integration user whose partyNumber is ".." fails the run before its detail URL is built', async () => {
    const error = await site!.refused('_host', { cpq: { baseUrl, pathPrefix: '/cpq', integrationUsers: 'on' } });
    expect(error.message).toMatch(/^user "_host\/[^"]+" \(record \d+ of \S+\): field "partyNumber" "\.\." cannot be used in a URL path/);
    // The company list tells the host's own login name, which integration users may name it by.
    expect(requests.filter((p) => !['/cpq/rest/v16/companies', '/cpq/rest/v19/integrationUsers', '/cpq/rest/v16/companies/_host/users'].includes(p))).toEqual(
      [],
    );
    expect(await planted()).toEqual([]);
  });

  it.each(['.', '..', 'a/../../users', 'a\\..'])('company %j is refused in CPQ_COMPANIES and wherever a URL is built', async (name) => {
    expect(() => loadConfig({ CPQ_BASE_URL: baseUrl, CPQ_COMPANIES: `_host,${name}` })).toThrow(ConfigError);
    expect(() => loadConfig({ CPQ_BASE_URL: baseUrl, CPQ_COMPANIES: `_host,${name}` })).toThrow(
      /CPQ_COMPANIES: company login names cannot be "\.", "\.\." or hold \/ or \\/,
    );
    for (const format of ['json', 'zip'] as const) {
      const error = await site!.refused(name, { format, cpq: { baseUrl } });
      expect(error.message).toContain(`company ${JSON.stringify(name)} cannot be used in a URL path`);
    }
    expect(requests).toEqual([]);
  });
});
