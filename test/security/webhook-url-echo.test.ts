import { createServer, type Server } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postAlert } from '../../src/alerts/delivery.js';
import { hostKeyLabels } from '../../src/secret-echo.js';

/*
 * A Slack webhook URL's path is its secret. A receiver's refusal is kept in the alert outbox, the
 * logs and `alerts list` (up to 200 characters of it); the 404 page of many frameworks names the
 * path it was asked for (Express: "Cannot POST /services/…", Spring: "path": "\/services\/…"),
 * which put the secret where cpq_reader reads it. Such an answer is not kept at all. Some services
 * carry the secret in the host name instead (Pipedream), which their 404 names.
 */

const PATH = '/services/T0AB12CD3/B0EF45GH6/XoXsEcReTtOkEnPaRt1234';
let server: Server;
let base = '';
let answer = { status: 404, body: '' };

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body.replaceAll('{host}', (req.headers.host ?? '').replace(/:\d+$/, '')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const post = () => postAlert({ url: `${base}${PATH}`, secret: 'k', timeoutMs: 5_000 }, '{}', 'key-1');

describe("a webhook's refusal that quotes the webhook's URL", () => {
  it('is recorded without its words, in any form it quotes the path; a refusal that does not quote it keeps them', async () => {
    const echoes = {
      Express: `<pre>Cannot POST ${PATH}</pre>`,
      'Spring, JSON-escaped': JSON.stringify({ status: 404, error: 'Not Found', path: PATH }).replaceAll('/', '\\/'),
      'URL-encoded': `no route for ${encodeURIComponent(PATH)}`,
      'the token alone': 'invalid token XoXsEcReTtOkEnPaRt1234',
      'cut after its first 14 characters': `Cannot POST ${PATH.slice(0, 14)}`,
    };
    for (const [form, body] of Object.entries(echoes)) {
      answer = { status: 404, body };
      const result = await post();
      expect(result, form).toEqual({
        ok: false,
        permanent: true,
        error: 'the webhook answered HTTP 404: (its answer quotes the webhook URL: not shown)',
        bare: 'the webhook answered HTTP 404',
      });
      if (!result.ok) expect(result.error, form).not.toMatch(/T0AB12CD3|XoXs|services\//i);
    }
    answer = { status: 410, body: 'channel_is_archived' };
    expect(await post()).toEqual({
      ok: false,
      permanent: true,
      error: 'the webhook answered HTTP 410: channel_is_archived',
      bare: 'the webhook answered HTTP 410',
    });
  });

  it('a key of the query or a path segment echoed alone, though shorter than the 12 characters the whole is looked for by (review HM), is not recorded either', async () => {
    const key = 'K7q2Wm9xZp4';
    const url = `${base}/hooks/alerts?key=${key}`;
    for (const body of [`{"token":"${key}"}`, `bad key ${key}`]) {
      answer = { status: 401, body };
      const result = await postAlert({ url, secret: 'k', timeoutMs: 5_000 }, '{}', 'key-1');
      expect(result, body).toEqual({
        ok: false,
        permanent: true,
        error: 'the webhook answered HTTP 401: (its answer quotes the webhook URL: not shown)',
        bare: 'the webhook answered HTTP 401',
      });
    }
    // A word of the path standing alone is no key: the answer keeps its words.
    answer = { status: 404, body: 'no such hooks' };
    expect(await postAlert({ url, secret: 'k', timeoutMs: 5_000 }, '{}', 'key-1')).toEqual({
      ok: false,
      permanent: true,
      error: 'the webhook answered HTTP 404: no such hooks',
      bare: 'the webhook answered HTTP 404',
    });
  });

  it("a label of the webhook's host name that looks like a key (Pipedream: https://<id>.m.pipedream.net/) echoed in a refusal is not recorded; the host's words are (review IM)", async () => {
    // Every host name reaches this test's server: the refusal quotes the Host header fetch sent, as Pipedream's 404 does.
    const before = getGlobalDispatcher();
    const toServer: LookupFunction = (_host, options, done) => (options.all ? done(null, [{ address: '127.0.0.1', family: 4 }]) : done(null, '127.0.0.1', 4));
    setGlobalDispatcher(new Agent({ connect: { lookup: toServer } }));
    try {
      const port = (server.address() as AddressInfo).port;
      const postTo = (host: string) => postAlert({ url: `http://${host}:${port}/`, secret: 'k', timeoutMs: 5_000 }, '{}', 'key-1');
      // Letters and digits; a random id of letters alone, long; one of letters and digits, short, named alone.
      for (const [host, body] of [
        ['eo4k2x9q7zt1mwa.m.pipedream.net', '404 Not Found: no endpoint {host} (paused)'],
        ['eoqkrxnqhztbmwa.m.pipedream.net', 'Not Found: {host}'],
        ['a1b2c3.hooks.example.com', 'unknown tenant a1b2c3'],
      ]) {
        answer = { status: 404, body: body! };
        const result = await postTo(host!);
        expect(result, host).toEqual({
          ok: false,
          permanent: true,
          error: 'the webhook answered HTTP 404: (its answer quotes the webhook URL: not shown)',
          bare: 'the webhook answered HTTP 404',
        });
      }
      // The service's own domain, and a word of the host (`hooks.slack.com`), are no keys: such an answer keeps its words.
      answer = { status: 404, body: 'Not Found (m.pipedream.net): no such hooks' };
      for (const host of ['eo4k2x9q7zt1mwa.m.pipedream.net', 'hooks.example.com'])
        expect(await postTo(host), host).toEqual({
          ok: false,
          permanent: true,
          error: 'the webhook answered HTTP 404: Not Found (m.pipedream.net): no such hooks',
          bare: 'the webhook answered HTTP 404',
        });
    } finally {
      setGlobalDispatcher(before);
    }
  });
});

describe("the labels of a webhook's host taken for keys", () => {
  it("are ids, not a cloud's region nor a service's long words further in (review IT)", () => {
    expect(hostKeyLabels('eo4k2x9q7zt1mwa.m.pipedream.net')).toEqual(['eo4k2x9q7zt1mwa']);
    expect(hostKeyLabels('eoqkrxnqhztbmwa.m.pipedream.net')).toEqual(['eoqkrxnqhztbmwa']);
    // Before: us-east-1, and northcentralus too.
    expect(hostKeyLabels('abc123defg.execute-api.us-east-1.amazonaws.com')).toEqual(['abc123defg']);
    expect(hostKeyLabels('prod-27.northcentralus.logic.azure.com')).toEqual(['prod-27']);
    expect(hostKeyLabels('hooks.slack.com')).toEqual([]);
    expect(hostKeyLabels('outlook.office.com')).toEqual([]);
  });
});
