import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli-process.js';
import { rowVersions } from '../helpers/db-equals-simulator.js';
import { hostileSite, type HostileSite } from './cpq-hostile.js';

/*
 * Node 20's fetch refuses a response with more than five Content-Encodings, but leaves its body
 * stream listening to the request's signal. When that signal was the run's, the run's failure
 * aborted it a moment later: the stream emitted an 'error' nobody heard, and the whole process
 * died (exit 1), every other site's and company's run with it. The run must fail alone, as it
 * does for any network error: exit code 3, one line, the database as it was. A page whose gzip
 * was cut short, which fetch decodes without a word, fails the run as bad data (exit code 5), its
 * line saying what the bytes sent decoded to.
 */

let site: HostileSite | undefined;

beforeAll(async () => {
  site = await hostileSite();
});

afterAll(async () => {
  await site?.close();
});

describe('a CPQ answer with more Content-Encodings than fetch decodes', () => {
  it('fails the run with a one-line source error, exit code 3, instead of killing the process', async () => {
    const s = site!;
    s.front.serve('/rest/v16/companies/_host/users', {
      status: 200,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip, gzip, gzip, gzip, gzip, gzip' },
      body: Buffer.alloc(100_000, 1),
    });
    const before = await s.h.t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs WHERE status = 'succeeded'`);
    const out = await cli(['run'], {
      CPQ_BASE_URL: s.front.url,
      DATABASE_URL: s.h.t.url,
      CPQ_COMPANIES: '_host',
      CPQ_MAX_RETRIES: '0',
      LOG_LEVEL: 'warn',
    });
    expect(out.stderr).not.toMatch(/Unhandled 'error' event|AbortError/);
    expect(out.code).toBe(3);
    expect(out.stderr).toMatch(/GET \S+\/companies\/_host\/users\S*: CPQ unreachable after 1 attempt /);
    const runs = await s.h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
    expect(runs).toEqual([{ status: 'failed' }]);
    expect(await s.h.t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs WHERE status = 'succeeded'`)).toEqual(before);
  });
});

describe('a JSON page whose compressed body was cut short', () => {
  it('fails the run as bad data, exit code 5, with one line saying what its bytes decoded to, the database as it was', async () => {
    const s = site!;
    const page = gzipSync(JSON.stringify({ items: [{ login: 'cut1', firstName: 'Cut', lastName: 'Short' }], hasMore: false }));
    s.front.serve('/rest/v16/companies/_host/users', {
      status: 200,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: page.subarray(0, 40),
    });
    const before = await rowVersions(s.h.t);
    const out = await cli(['run'], { CPQ_BASE_URL: s.front.url, DATABASE_URL: s.h.t.url, CPQ_COMPANIES: '_host', LOG_LEVEL: 'warn' });
    expect(out.code).toBe(5);
    expect(out.stderr).toMatch(
      /^cpq-sync: GET \S+\/companies\/_host\/users\S*: expected JSON, got an empty body: the body sent with Content-Encoding "gzip" \(40 bytes\) decoded to nothing, as a compressed body cut short does \(fetch does not check that one ends whole\)$/m,
    );
    expect(await rowVersions(s.h.t)).toEqual(before);
  });
});

describe('`check` against such a zip export', () => {
  it('reports the step as failed and goes on to the next site (whose slow answers outlast the request timeout), instead of dying', async () => {
    const servers: Server[] = [];
    const serve = async (slow: boolean) => {
      const server = createServer((req, res) => {
        const answer = () => {
          const path = new URL(req.url ?? '/', 'http://x').pathname;
          if (!slow && path.endsWith('/users') && (req.headers.accept ?? '').includes('zip')) {
            res.writeHead(200, { 'content-type': 'application/zip', 'content-encoding': 'gzip, gzip, gzip, gzip, gzip, gzip' });
            res.end(Buffer.alloc(100_000, 1));
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          if (path.endsWith('/companies')) res.end('{"items":[{"loginName":"_host","isHost":true}],"hasMore":false}');
          else res.end('{"items":[{"login":"a"}],"hasMore":false,"totalResults":1}');
        };
        if (slow) setTimeout(answer, 1500);
        else answer();
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    const dir = await mkdtemp(join(tmpdir(), 'cpq-check-enc-'));
    try {
      const sitesFile = join(dir, 'sites.json');
      await writeFile(
        sitesFile,
        JSON.stringify([
          { name: 'one', baseUrl: await serve(false), exportFormat: 'zip', integrationUsers: 'off', username: 'u', password: 'p' },
          { name: 'two', baseUrl: await serve(true), integrationUsers: 'off', username: 'u', password: 'p' },
        ]),
      );
      const out = await cli(['check'], { CPQ_SITES_FILE: sitesFile, CPQ_REQUEST_TIMEOUT: '1s', DATABASE_URL: site!.h.t.url });
      expect(out.stderr).not.toMatch(/Unhandled 'error' event|AbortError|TimeoutError/);
      expect(out.code).toBe(1);
      expect(out.stdout).toMatch(/✗ zip export/);
      expect(out.stdout).toMatch(/sync lock \(two\)/);
    } finally {
      for (const server of servers) server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
