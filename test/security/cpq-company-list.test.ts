import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtModule, runWithHeap } from '../helpers/small-heap.js';
import { fourCharacterName } from './cpq-hostile.js';

/*
 * Review DD: the company list (CPQ_COMPANIES=*) is held whole, and was bounded by its login names'
 * characters only. A site answering hasMore on every page, each company a new 4-character
 * {"loginName":"abcd"}, was charged 4 bytes a company while each cost ~80 bytes of heap: the
 * image's 192 MB heap ran out after ~2.0 million companies, half of the 16 MiB bound. Each
 * company is now charged what holding it costs, so the list stays within what a page may cost.
 */

const BOUND = 8 * 1024 * 1024;
const PER_PAGE = 10_000;

let server: Server | undefined;
let baseUrl = '';
/** Companies answered so far. */
let served = 0;

beforeAll(async () => {
  // Ignores limit (an offset read has no limit check): pages of 10,000 new companies, each saying there are more.
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/rest/v16/companies') return void res.writeHead(404).end();
    const offset = Number(url.searchParams.get('offset'));
    const items = Array.from({ length: PER_PAGE }, (_, i) => `{"loginName":"${fourCharacterName(offset + i)}"}`);
    served = Math.max(served, offset + PER_PAGE);
    res.writeHead(200, { 'content-type': 'application/json' }).end(`{"items":[${items.join(',')}],"hasMore":true}`);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('the company list is bounded by what it costs to hold, not by its characters', () => {
  it('endless pages of new 4-character companies are refused within a 64 MB heap, naming the URL and the bound', async () => {
    // The built reader in a process of its own, whose heap the list would exhaust if it grew to its characters' bound.
    const script = `import { loadConfig } from ${builtModule('config.js')};
      import { CpqHttpClient } from ${builtModule('cpq/http-client.js')};
      import { listCompanies } from ${builtModule('cpq/streams.js')};
      const config = loadConfig({ CPQ_BASE_URL: process.argv[1], CPQ_COMPANIES: '*', CPQ_MAX_PAGE_BYTES: process.argv[2], CPQ_MAX_RETRIES: '0' }).cpq;
      const log = new Proxy({}, { get: (_, key) => (key === 'child' ? () => log : () => undefined) });
      const auth = { authorization: async () => 'Basic c3luYzpzM2NyZXQ=', renew: async () => false };
      const client = new CpqHttpClient(config, auth, log);
      try {
        const list = await listCompanies(client, config);
        console.log(JSON.stringify({ companies: list.logins.length }));
      } catch (err) {
        console.log(JSON.stringify({ error: err.message }));
      }`;
    const out = JSON.parse(await runWithHeap(64, script, [baseUrl, String(BOUND)])) as { error?: string };
    expect(out.error).toMatch(
      new RegExp(
        `^GET ${baseUrl}/rest/v16/companies\\?limit=1000&offset=[0-9]+: the company list's [0-9]+ companies take more than CPQ_MAX_PAGE_BYTES \\(${BOUND}\\) to hold \\(their login names' characters and 32 a company\\); refused$`,
      ),
    );
    const companies = Number(/list's ([0-9]+) companies/.exec(out.error!)![1]);
    // Refused at the company that passes the bound, charged 4 + 32 bytes each: not at BOUND / 4 (2.1 million).
    expect(companies).toBe(Math.floor(BOUND / 36) + 1);
    expect(served).toBeLessThanOrEqual(companies + PER_PAGE);
  });
});
