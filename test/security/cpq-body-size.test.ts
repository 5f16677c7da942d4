import { randomBytes } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_VALUES, MAX_RECORD_VALUES } from '../../src/exact-json.js';
import { until } from '../helpers/cli-process.js';
import { builtModule, runWithHeap } from '../helpers/small-heap.js';
import { hostileSite, zipExport, type HostileSite } from './cpq-hostile.js';

/*
 * Issue 17 item 4. A hostile CPQ sends a page that never ends, or a huge one, or a zip export
 * whose records are each just under the per-record bound: the run must fail (or cut its pages)
 * while the body is still streaming, with a one-line error naming the URL or entry and the cap,
 * instead of reading the whole body into a 192 MB heap.
 */

const CAP = 1024 * 1024;
/** A page within the default 16 MiB cap holding 5.6 million empty objects as its items. */
const TINY_ITEMS_PAGE = Buffer.from(`{"items":[${'{},'.repeat(5_592_000)}{}],"hasMore":false}`);
let site: HostileSite | undefined;
let server: Server | undefined;
let baseUrl = '';
/** Bytes the endless responses managed to write before the client hung up, per path. */
const written = new Map<string, number>();
/** Paths whose endless response is over: the client hung up, or the safety stop was reached. */
const closed = new Set<string>();

/** Writes `chunk` again and again until the client closes the connection (or `limit` bytes, a safety stop for the test). */
function endless(res: ServerResponse, path: string, head: string, chunk: string, limit: number) {
  let sent = 0;
  res.once('close', () => closed.add(path));
  const more = () => {
    while (sent < limit && !res.destroyed) {
      sent += chunk.length;
      written.set(path, sent);
      if (!res.write(chunk)) return void res.once('drain', more);
    }
    res.end();
  };
  res.write(head);
  more();
}

beforeAll(async () => {
  site = await hostileSite({ CPQ_REQUEST_TIMEOUT: '20s' });
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const filler = 'A'.repeat(64 * 1024);
    if (path === '/rest/v16/companies/endless/users') {
      res.writeHead(200, { 'content-type': 'application/json' });
      endless(res, path, '{"items":[{"login":"a","note":"', filler, 512 * CAP);
    } else if (path === '/rest/v16/companies/tiny_items/users') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(TINY_ITEMS_PAGE.length) }).end(TINY_ITEMS_PAGE);
    } else if (path === '/rest/v16/companies/announced/users') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(512 * CAP) });
      endless(res, path, '{"items":[{"login":"a","note":"', filler, 512 * CAP);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await site?.close();
});

describe('JSON pages are read with a cap on their size (CPQ_MAX_PAGE_BYTES)', () => {
  it('an endless page fails the run as soon as it passes the cap, naming the URL and the cap', async () => {
    const error = await site!.refused('endless', { cpq: { baseUrl, maxPageBytes: CAP } });
    expect(error.kind).toBe('data');
    expect(error.message).toMatch(
      new RegExp(`^GET ${baseUrl}/rest/v16/companies/endless/users\\?\\S+: the response is larger than CPQ_MAX_PAGE_BYTES \\(${CAP} bytes\\); refused$`),
    );
    // The client hung up soon after the cap, not at the server's safety stop. Counted once the
    // response is over: a fixed pause could end, on a loaded machine, before the server saw the
    // hang-up, and a client still reading would pass with the bytes it had read so far.
    await until('the server to see the endless response end', () => closed.has('/rest/v16/companies/endless/users'));
    expect(written.get('/rest/v16/companies/endless/users')).toBeLessThan(16 * CAP);
  });

  it('a page announced larger than the cap is refused before its body is read', async () => {
    const error = await site!.refused('announced', { cpq: { baseUrl, maxPageBytes: CAP } });
    expect(error.message).toMatch(/rest\/v16\/companies\/announced\/users\?\S+: the response is larger than CPQ_MAX_PAGE_BYTES \(1048576 bytes\); refused$/);
    await until('the server to see the announced response end', () => closed.has('/rest/v16/companies/announced/users'));
    expect(written.get('/rest/v16/companies/announced/users')).toBeLessThan(16 * CAP);
  });

  it('the default cap is 16 MiB and a page under the cap loads', async () => {
    expect(site!.h.config.cpq!.maxPageBytes).toBe(16 * 1024 * 1024);
    site!.serve('under_cap', JSON.stringify({ items: [{ login: 'fits', firstName: 'F'.repeat(CAP / 2) }], hasMore: false }));
    const { error } = await site!.run('under_cap', { cpq: { maxPageBytes: CAP } });
    expect(error).toBeUndefined();
  });
});

describe('zip exports: one record and one page of records are bounded too', () => {
  // Random text, so that the entries pass the compression-ratio bound as a real attacker's would.
  const noise = (size: number) => randomBytes(size / 2).toString('hex');
  const user = (login: string, size: number) => JSON.stringify({ login, firstName: noise(size) });

  it.each([
    ['users.jsonl', (big: string) => `${user('a', 10)}\n${big}\n`, /entry "users\.jsonl": line 2 is longer than CPQ_MAX_PAGE_BYTES \(1048576\); refused$/],
    [
      'users.json',
      (big: string) => `{"items":[${user('a', 10)},${big}]}`,
      /entry "users\.json": items\[1\] is larger than CPQ_MAX_PAGE_BYTES \(1048576\); refused$/,
    ],
    [
      'users.csv',
      () => `login,firstName\r\na,b\r\nhuge,${noise(2 * CAP)}\r\n`,
      /entry "users\.csv": line 3: a row longer than CPQ_MAX_PAGE_BYTES \(1048576\) \(a quote left open\?\); refused$/,
    ],
    [
      // Mostly doubled quotes (with noise, to pass the compression-ratio bound): each was held as a
      // piece of its own, and none was counted against the row's bound, so this row was loaded.
      'quoted_users.csv',
      () => `login,firstName\r\na,b\r\nhuge,"${Array.from({ length: (2 * CAP) / 116 }, () => `${'""'.repeat(50)}${noise(16)}`).join('')}"\r\n`,
      /entry "quoted_users\.csv": line 3: a row longer than CPQ_MAX_PAGE_BYTES \(1048576\) \(a quote left open\?\); refused$/,
    ],
  ] as const)('a %s entry with one huge record fails the run naming the entry and the cap', async (name, text, expected) => {
    const company = `huge_${name.replace(/\W/g, '_')}`;
    site!.serve(company, zipExport([{ name, text: text(user('huge', 2 * CAP)) }]), 'application/zip');
    const error = await site!.refused(company, { format: 'zip', cpq: { maxPageBytes: CAP } });
    expect(error.message).toMatch(new RegExp(`^GET http://127\\.0\\.0\\.1:\\d+/rest/v16/companies/${company}/users: zip export: `));
    expect(error.message).toMatch(expected);
  });

  it('records just under the cap are loaded in pages cut by size, not 1000 at a time', async () => {
    const lines = Array.from({ length: 24 }, (_, i) => user(`big${String(i).padStart(2, '0')}`, CAP / 4)).join('\n');
    site!.serve('big_records', zipExport([{ name: 'users.jsonl', text: lines }]), 'application/zip');
    const { result, error } = await site!.run('big_records', { format: 'zip', cpq: { maxPageBytes: CAP } });
    expect(error).toBeUndefined();
    expect(result!.inserted).toBe(24);
    // 24 records of a quarter of the cap each: about four per page, never all 24 in one.
    expect(result!.pages).toBeGreaterThanOrEqual(5);
  });

  // Review DD: CSV rows become objects as they are read, a page at a time: a page of 1,000 rows of
  // 2,000 one-letter cells (3.8 MB of text, within every bound) held 94 MB of heap.
  it('CSV rows of many short fields are loaded in pages cut by their fields, at most a body’s bound of values (MAX_BODY_VALUES) at a time', async () => {
    const columns = 1_000;
    const rows = 700;
    const header = ['login', ...Array.from({ length: columns - 1 }, (_, i) => `c${i}`)].join(',');
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    const body = Array.from({ length: rows }, (_, r) =>
      [`wide${r}`, ...Array.from({ length: columns - 1 }, (_, i) => letters[(r * 7 + i * 13) % 26])].join(','),
    );
    site!.serve('wide_rows', zipExport([{ name: 'users.csv', text: `${header}\r\n${body.join('\r\n')}\r\n` }]), 'application/zip');
    const { result, error } = await site!.run('wide_rows', { format: 'zip' });
    expect(error).toBeUndefined();
    expect(result!.inserted).toBe(rows);
    // 700,000 fields: three pages or more of about 300,000, never all 700 rows in one.
    expect(result!.pages).toBeGreaterThanOrEqual(Math.ceil((rows * columns) / MAX_BODY_VALUES));
  });
});

describe('one record is bounded in values too, not only in characters', () => {
  // 300,000 empty objects in one field: 900 KB, far under the cap. At 8 MB (2.7 million of them),
  // parsing the record alone filled the image's 192 MB heap and killed the process.
  const complex = `{"login":"complex","x":[${'{},'.repeat(300_000)}{}]}`;

  it('a JSON page whose user holds more than MAX_RECORD_VALUES values fails the run naming the item, before the record is parsed', async () => {
    site!.serve('complex', `{"items":[${complex}],"hasMore":false}`);
    const error = await site!.refused('complex');
    expect(error.kind).toBe('data');
    expect(error.message).toMatch(
      new RegExp(
        `^GET http://127\\.0\\.0\\.1:\\d+/rest/v16/companies/complex/users\\?\\S+: items\\[0\\] holds more than ${MAX_RECORD_VALUES} values \\(objects, arrays and their members\\); refused before parsing, as too complex$`,
      ),
    );
  });

  // Each item is held as its text until it is used: 5.6 million texts of `{}` (16 MiB, within the
  // page cap) took more than the image's 192 MB heap while the page was cut, before its item count
  // could be checked against the limit asked for, and the process died with every site's run.
  it(`a JSON page of millions of tiny items fails the run once it passes ${MAX_BODY_VALUES} items, within a 64 MB heap`, async () => {
    const error = await site!.refused('tiny_items', { cpq: { baseUrl } });
    expect(error.kind).toBe('data');
    expect(error.message).toMatch(
      new RegExp(`^GET ${baseUrl}/rest/v16/companies/tiny_items/users\\?\\S+: the collection body holds more than ${MAX_BODY_VALUES} items; refused$`),
    );
    // The built client in a process of its own, whose heap the cut page would exhaust.
    const script = `import { loadConfig } from ${builtModule('config.js')};
      import { CpqHttpClient } from ${builtModule('cpq/http-client.js')};
      const config = loadConfig({ CPQ_BASE_URL: process.argv[1], CPQ_MAX_RETRIES: '0' }).cpq;
      const log = new Proxy({}, { get: (_, key) => (key === 'child' ? () => log : () => undefined) });
      const auth = { authorization: async () => undefined, renew: async () => false };
      const client = new CpqHttpClient(config, auth, log);
      try {
        const page = await client.getJson(process.argv[1] + '/rest/v16/companies/tiny_items/users', { collection: true });
        console.log(JSON.stringify({ items: page.records.length }));
      } catch (err) {
        console.log(JSON.stringify({ error: err.message }));
      }`;
    const out = JSON.parse(await runWithHeap(64, script, [baseUrl])) as { error?: string };
    expect(out.error).toMatch(/: the collection body holds more than 300000 items; refused$/);
  });

  it('a JSON page with two "items" keys fails the run, as its zip entry does: JSON.parse would keep the last and drop the users of the first', async () => {
    site!.serve('two_items', '{"items":[{"login":"a"},{"login":"b"}],"hasMore":false,"items":[{"login":"c"}]}');
    const error = await site!.refused('two_items');
    expect(error.kind).toBe('data');
    expect(error.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/two_items\/users\?\S+: the collection body has two "items" keys; refused rather than read one of them$/,
    );
  });

  it('a page read whole (one the item cutter does not take apart: an array) holds at most MAX_BODY_VALUES values', async () => {
    site!.serve('complex_whole', `[${complex}]`);
    const error = await site!.refused('complex_whole');
    expect(error.message).toMatch(
      new RegExp(
        `/rest/v16/companies/complex_whole/users\\?\\S+: the response holds more than ${MAX_BODY_VALUES} values \\(objects, arrays and their members\\)`,
      ),
    );
  });

  it('so does such a line of a zip export', async () => {
    site!.serve('complex_zip', zipExport([{ name: 'users.jsonl', text: `{"login":"a"}\n${complex}\n` }]), 'application/zip');
    const error = await site!.refused('complex_zip', { format: 'zip' });
    expect(error.message).toMatch(
      /zip export: entry "users\.jsonl": line 2 holds more than 100000 values \(objects, arrays and their members\); refused before parsing, as too complex$/,
    );
  });
});
