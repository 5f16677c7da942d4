import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { FETCH_DECODED_CODINGS } from '../src/cpq/http-bodies.js';
import { CpqHttpClient, type JsonResponse } from '../src/cpq/http-client.js';
import { SyncError } from '../src/errors.js';

/*
 * JSON pages sent compressed, by a plain HTTP server: what Node's fetch decodes, and the one-line
 * error of a page whose compression went wrong (cut short, unlabelled, a coding fetch does not
 * decode), which says what its bytes show rather than only "not valid JSON".
 */

/** What the server answers every request with: `body`, with Content-Length its size, and `headers`; with `cutAfter`, the connection is cut after that many bytes of it. */
let answer: { body: Buffer; headers: Record<string, string>; cutAfter?: number } = { body: Buffer.alloc(0), headers: {} };
let requests = 0;
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(answer.body.length), ...answer.headers });
    if (answer.cutAfter === undefined) res.end(answer.body);
    else res.write(answer.body.subarray(0, answer.cutAfter), () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** getJson of a page of users, answered with `body` and `headers`. */
function getPage(body: Buffer, headers: Record<string, string>, env: Record<string, string> = {}, cutAfter?: number): Promise<JsonResponse> {
  answer = { body, headers, ...(cutAfter === undefined ? {} : { cutAfter }) };
  requests = 0;
  const config = loadConfig({ CPQ_BASE_URL: base, CPQ_RETRY_BASE_DELAY: '5ms', CPQ_RETRY_MAX_DELAY: '20ms', ...env }).cpq!;
  const http = new CpqHttpClient(config, { authorization: async () => 'Basic c3luYzpzM2NyZXQ=', renew: async () => false }, pino({ level: 'silent' }));
  return http.getJson(`${base}/users`, { collection: true });
}

/** The message getJson fails with for `body` and `headers`: a data error (exit code 5), asked for once (the body arrived whole, as HTTP framed it). */
async function failure(body: Buffer, headers: Record<string, string>): Promise<string> {
  const err = await getPage(body, headers).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SyncError);
  expect(err).toHaveProperty('kind', 'data');
  expect(requests).toBe(1);
  return (err as SyncError).message;
}

/** A CPQ-shaped page of three users. */
const page = Buffer.from(
  JSON.stringify({
    items: [1, 2, 3].map((n) => ({ login: `user${n}`, firstName: `First${n}`, lastName: `Last${n}`, email: `user${n}@example.com` })),
    hasMore: false,
  }),
);
const gzipped = gzipSync(page);

describe('a JSON page whose compression went wrong fails naming what its bytes show', () => {
  it('a gzip body cut short says the bytes sent and what they decoded to: nothing, or text that stops mid-JSON', async () => {
    expect(await failure(gzipped.subarray(0, 40), { 'content-encoding': 'gzip' })).toBe(
      `GET ${base}/users: expected JSON, got an empty body: the body sent with Content-Encoding "gzip" (40 bytes) decoded to nothing, as a compressed body cut short does (fetch does not check that one ends whole)`,
    );

    const cut = gzipped.subarray(0, Math.floor(gzipped.length * 0.7));
    const message = await failure(cut, { 'content-encoding': 'gzip' });
    const decoded = Number(/decoded to (\d+) bytes/.exec(message)?.[1]);
    expect(decoded).toBeGreaterThan(0);
    expect(decoded).toBeLessThan(page.length);
    expect(message).toBe(
      `GET ${base}/users: response is not valid JSON (Unterminated string in JSON at position ${decoded}): the body sent with Content-Encoding "gzip" (${cut.length} bytes) decoded to ${decoded} bytes that stop mid-JSON, as a compressed body cut short does (fetch does not check that one ends whole)`,
    );
  });

  it('a gzip of white space says it decoded to white space, not that it stops mid-JSON (review JS)', async () => {
    const blank = gzipSync('    ');
    expect(await failure(blank, { 'content-encoding': 'gzip' })).toBe(
      `GET ${base}/users: expected JSON, got an empty body: the body sent with Content-Encoding "gzip" (${blank.length} bytes) decoded to 4 bytes of white space, as a compressed body cut short does (fetch does not check that one ends whole)`,
    );
  });

  it('a gzip body decoded whole that is not valid JSON says the bytes sent and decoded, and no cut', async () => {
    const sent = gzipSync('{"hasMore":x,"items":[]}');
    expect(await failure(sent, { 'content-encoding': 'gzip' })).toBe(
      `GET ${base}/users: response is not valid JSON (Unexpected token 'x'): the body sent with Content-Encoding "gzip" (${sent.length} bytes) decoded to 24 bytes`,
    );
  });

  it('gzip bytes sent without Content-Encoding gzip say so', async () => {
    expect(await failure(gzipped, {})).toBe(
      `GET ${base}/users: response is not valid JSON (Unexpected token '\\x1f'; ${gzipped.length} bytes): the body starts with gzip's magic bytes but no Content-Encoding says gzip, so it was read as sent`,
    );
  });

  it('a body whose Content-Encoding names a coding fetch does not decode (zstd, alone or listed) says it was read as sent', async () => {
    expect(await failure(gzipped, { 'content-encoding': 'zstd' })).toBe(
      `GET ${base}/users: response is not valid JSON (Unexpected token '\\x1f'; ${gzipped.length} bytes): the body came with Content-Encoding "zstd", which this client does not decode (it decodes gzip, x-gzip, deflate and br), so it was read as sent; it starts with gzip's magic bytes`,
    );
    expect(await failure(gzipped, { 'content-encoding': 'gzip, zstd' })).toBe(
      `GET ${base}/users: response is not valid JSON (Unexpected token '\\x1f'; ${gzipped.length} bytes): the body came with Content-Encoding "gzip, zstd", whose "zstd" this client does not decode (it decodes gzip, x-gzip, deflate and br), so it was read as sent; it starts with gzip's magic bytes`,
    );
  });
});

describe('what the README says of compressed JSON pages', () => {
  it('fetch decodes the codings the messages name (any case, deflate raw or wrapped, stacked) and no other; CPQ_MAX_PAGE_BYTES counts decoded bytes; a cut connection is retried', async () => {
    expect(FETCH_DECODED_CODINGS).toEqual(['gzip', 'x-gzip', 'deflate', 'br']);
    const sent: [string, Buffer][] = [
      ['gzip', gzipped],
      ['X-GZIP', gzipped],
      ['deflate', deflateSync(page)],
      ['deflate', deflateRawSync(page)],
      ['br', brotliCompressSync(page)],
      ['gzip, gzip', gzipSync(gzipped)],
      ['br, gzip', gzipSync(brotliCompressSync(page))],
    ];
    for (const [encoding, body] of sent) {
      const read = await getPage(body, { 'content-encoding': encoding });
      expect([read.chars, read.records?.length], encoding).toEqual([page.length, 3]);
    }
    expect(await failure(gzipped, { 'content-encoding': 'zstd' })).toMatch(/Unexpected token '\\x1f'/);

    // A review's page padded with 200 MiB of spaces: 204 KB on the wire, past the default cap (16 MiB) once decoded.
    const padded = gzipSync(Buffer.concat([page, Buffer.alloc(200 * 1024 ** 2, ' ')]), { level: 9 });
    expect(padded.length).toBeLessThan(205_000);
    await expect(getPage(padded, { 'content-encoding': 'gzip' })).rejects.toMatchObject({
      kind: 'data',
      message: `GET ${base}/users: the response is larger than CPQ_MAX_PAGE_BYTES (16777216 bytes); refused`,
    });

    // A connection cut before the body's end is retried, compressed or not.
    for (const [body, headers] of [
      [page, {}],
      [gzipped, { 'content-encoding': 'gzip' }],
    ] as const) {
      await expect(getPage(body, headers, { CPQ_MAX_RETRIES: '1' }, 40)).rejects.toMatchObject({
        kind: 'source',
        message: expect.stringMatching(new RegExp(`^GET ${base}/users: CPQ unreachable after 2 attempts \\(`)) as unknown,
      });
      expect(requests).toBe(2);
    }
  });
});
