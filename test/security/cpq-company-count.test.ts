import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { builtModule, runWithHeap } from '../helpers/small-heap.js';
import { fourCharacterName } from './cpq-hostile.js';
import { loopbackHttp, type LoopbackHttp } from '../helpers/loopback-http.js';

/*
 * A company list within its bound (CPQ_MAX_PAGE_BYTES, each company charged its login name's
 * characters and 32 bytes) must not cost a run much more per company than that to start reading
 * it. The run queued one task per company at once (~770 bytes each), and a first load made an
 * empty map per company (~215 bytes), before reading the first: 150,000 companies of 4 characters,
 * within an 8 MiB bound, held 220 MB of heap when the first page was read (now 38 MB).
 */

const COMPANIES = 150_000;
const BOUND = 8 * 1024 * 1024;
/** The user pages answered before the site refuses the next: the run then fails, naming the refusal, unless its heap ran out first. */
const ANSWERED = 200;

let site: LoopbackHttp | undefined;
let baseUrl = '';
let database: TestDatabase;
let userPages = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  site = await loopbackHttp((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let status = 200;
    let body: string;
    if (url.pathname === '/rest/v16/companies') {
      const offset = Number(url.searchParams.get('offset'));
      const end = Math.min(COMPANIES, offset + Number(url.searchParams.get('limit')));
      const items = Array.from({ length: end - offset }, (_, i) => `{"loginName":"${fourCharacterName(offset + i)}","isHost":${offset + i === 0}}`);
      body = `{"items":[${items.join(',')}],"hasMore":${end < COMPANIES}}`;
    } else if (/^\/rest\/v16\/companies\/[^/]+\/users$/.test(url.pathname)) {
      userPages++;
      [status, body] = userPages > ANSWERED ? [400, '{"title":"enough"}'] : [200, '{"items":[],"hasMore":false,"totalResults":0}'];
    } else [status, body] = [404, '{}'];
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  baseUrl = site.url;
});

afterAll(async () => {
  await site?.close();
  await database.drop();
});

describe('a run of a long company list', () => {
  it(`reads ${COMPANIES} listed companies, within the bound, in a 64 MB heap: no KB is spent per company before its read`, async () => {
    // The built run in a process of its own, whose heap a per-company cost of the run would exhaust.
    const script = `import { loadConfig } from ${builtModule('config.js')};
      import { createDb, createPool } from ${builtModule('db/database.js')};
      import { runSync } from ${builtModule('sync/run.js')};
      const config = loadConfig({
        CPQ_BASE_URL: process.argv[1], DATABASE_URL: process.argv[2], CPQ_COMPANIES: '*', CPQ_MAX_PAGE_BYTES: process.argv[3],
        CPQ_INTEGRATION_USERS: 'off', CPQ_MAX_RETRIES: '0',
      });
      const log = new Proxy({}, { get: (_, key) => (key === 'child' ? () => log : () => undefined) });
      const pool = createPool(config.databaseUrl);
      try {
        await runSync({ pool, db: createDb(pool), config, log }, { full: true });
        console.log(JSON.stringify({ error: 'none' }));
      } catch (err) {
        console.log(JSON.stringify({ error: err.message }));
      } finally {
        await pool.end();
      }`;
    const out = JSON.parse(await runWithHeap(64, script, [baseUrl, database.url, String(BOUND)])) as { error: string };
    // Every company was listed, and reading them went on until the site refused a page.
    expect(out.error).toMatch(new RegExp(`^GET ${baseUrl}/rest/v16/companies/[0-9A-Za-z]{4}/users\\?.* 400`));
    expect(userPages).toBeGreaterThan(ANSWERED);
  });
});
