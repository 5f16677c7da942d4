import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createAuthenticator } from '../../src/cpq/auth.js';
import { CpqHttpClient } from '../../src/cpq/http-client.js';
import { SyncError } from '../../src/errors.js';

/*
 * A credential goes into the Authorization header as it is. With a line break in it (a long token
 * wrapped in its file, an OAuth service's answer), fetch refused the header with an error quoting
 * it whole: the token reached stderr, the logs and cpq.sync_runs.error, which the read-only role
 * reads. Such a credential is now refused before any request, naming only where it came from.
 */

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.SUPERSECRETTOKENPART1\nSUPERSECRETTOKENPART2';
const base = { CPQ_BASE_URL: 'https://cpq.example.com' };

let folder = '';
let server: Server | undefined;
let tokenUrl = '';

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'cpq-token-'));
  server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: TOKEN, expires_in: 3600 }));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  tokenUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
});

afterAll(async () => {
  rmSync(folder, { recursive: true, force: true });
  server?.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

function refusal(load: () => unknown): Error {
  try {
    load();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the configuration to be refused');
}

describe('a credential an HTTP header cannot carry is refused without being repeated', () => {
  it.each([
    ['CPQ_TOKEN_FILE', 'a token file with a line break inside', `${TOKEN}\n`],
    ['CPQ_TOKEN', 'a token with a line break inside', TOKEN],
    ['CPQ_TOKEN', 'a token with an escape character', 'abc\u001b[2Kdef'],
    ['CPQ_TOKEN', 'a token with a character past Latin-1', 'abc\u20acdef'],
  ])('%s: %s', (name, what, value) => {
    const env = name === 'CPQ_TOKEN_FILE' ? { ...base, CPQ_TOKEN_FILE: join(folder, 'token') } : { ...base, CPQ_TOKEN: value };
    if (name === 'CPQ_TOKEN_FILE') writeFileSync(join(folder, 'token'), value);
    const err = refusal(() => loadConfig(env));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(
      what.includes('Latin-1')
        ? `invalid configuration: ${name}: the token holds a character an HTTP header cannot carry (past Latin-1)`
        : `invalid configuration: ${name}: the token holds a line break or another control character (a bearer token is one line)`,
    );
  });

  it('a token file ending in one line break is read without it, as before', () => {
    writeFileSync(join(folder, 'token'), 'eyJhbGciOiJSUzI1NiJ9.one-line\n');
    expect(loadConfig({ ...base, CPQ_TOKEN_FILE: join(folder, 'token') }).cpq!.auth).toEqual({ kind: 'bearer', token: 'eyJhbGciOiJSUzI1NiJ9.one-line' });
  });

  it("an OAuth token service's access_token with a line break fails the run (auth) without the token in the message", async () => {
    const auth = createAuthenticator({ kind: 'oauth', tokenUrl, clientId: 'client', clientSecret: 'client-secret', scope: undefined }, 5_000);
    const err = await auth.authorization().then(
      () => undefined,
      (e: unknown) => e as SyncError,
    );
    expect(err).toBeInstanceOf(SyncError);
    expect(err!.kind).toBe('auth');
    expect(err!.message).toBe(`POST ${tokenUrl}: OAuth token response's access_token holds a line break or another control character; refused`);
    expect(err!.message).not.toContain('SUPERSECRET');
  });
});

describe('an OAuth access_token an HTTP header cannot carry (a character beyond Latin-1)', () => {
  it('fails the run once (auth), naming the token service, without the token and without a retry', async () => {
    let tokenRequests = 0;
    let cpqRequests = 0;
    const servers = [
      createServer((_req, res) => {
        tokenRequests++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'SECRET\u20acTOKEN', expires_in: 3600 }));
      }),
      createServer((_req, res) => {
        cpqRequests++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }),
    ];
    const [tokens, cpq] = await Promise.all(
      servers.map(async (s) => {
        await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
        return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
      }),
    );
    try {
      const config = loadConfig({
        CPQ_BASE_URL: cpq!,
        CPQ_OAUTH_TOKEN_URL: `${tokens!}/token`,
        CPQ_OAUTH_CLIENT_ID: 'client',
        CPQ_OAUTH_CLIENT_SECRET: 'client-secret',
        CPQ_ALLOW_INSECURE_HTTP: 'true',
        CPQ_RETRY_BASE_DELAY_MS: '1',
      }).cpq!;
      const client = new CpqHttpClient(config, createAuthenticator(config.auth, 5_000), pino({ level: 'silent' }));
      const error = await client.getJson(client.url('/x')).then(
        () => undefined,
        (err: unknown) => err as SyncError,
      );
      expect(error).toBeInstanceOf(SyncError);
      expect(error!.message).toBe(`POST ${tokens!}/token: OAuth token response's access_token holds a character an HTTP header cannot carry; refused`);
      expect(error!.kind).toBe('auth');
      expect([tokenRequests, cpqRequests]).toEqual([1, 0]);
    } finally {
      for (const s of servers) s.close();
    }
  });
});

describe('a body that is not JSON', () => {
  it('is described without the characters of it that JSON.parse quotes: a gateway echoing the Authorization header cannot put part of it in the error', async () => {
    // Two of V8's forms: the excerpt from the body's start, and one from its middle ("...x"...).
    let echoed = (authorization: string) => `${authorization} was refused`;
    const echo = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(echoed(req.headers.authorization ?? '')));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    try {
      const cpq = loadConfig({
        CPQ_BASE_URL: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`,
        CPQ_USERNAME: 'sync',
        CPQ_PASSWORD: 'pw-secret-42',
      }).cpq!;
      const client = new CpqHttpClient(cpq, createAuthenticator(cpq.auth, 5_000), pino({ level: 'silent' }));
      const credential = Buffer.from('sync:pw-secret-42').toString('base64');
      for (const form of [(a: string) => `${a} was refused`, (a: string) => `{"requestHeaders":{"authorization": ${a}}}`]) {
        echoed = form;
        const error = await client.getJson(client.url('/x')).then(
          () => undefined,
          (err: unknown) => err as Error,
        );
        expect(error).toBeInstanceOf(SyncError);
        // Refused before it is parsed, since it holds the credential (review DD); before that, JSON.parse's message quoted part of it.
        expect(error!.message).toMatch(
          /: the response holds a credential this run sent \(at character \d+\); refused, so that it reaches neither the database nor the logs$/,
        );
        for (let n = 3; n <= credential.length; n++) expect(error!.message).not.toContain(credential.slice(0, n));
      }
    } finally {
      echo.close();
    }
  });
});

describe('an error body that echoes the Authorization header in another form', () => {
  it('is not shown at all: JSON-escaped, URL-encoded, as HTML entities, in part; an error body that does not is', async () => {
    // A password whose Basic credential holds characters that escapes change.
    const password = 'pw?>0~?';
    const credential = Buffer.from(`sync:${password}`).toString('base64');
    expect(credential).toBe('c3luYzpwdz8+MH4/');
    let body = '';
    const echo = createServer((req, res) => res.writeHead(400, { 'content-type': 'application/json' }).end(body));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    try {
      const cpq = loadConfig({ CPQ_BASE_URL: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, CPQ_USERNAME: 'sync', CPQ_PASSWORD: password }).cpq!;
      const client = new CpqHttpClient(cpq, createAuthenticator(cpq.auth, 5_000), pino({ level: 'silent' }));
      const failure = async () => {
        const error = await client.getJson(client.url('/x')).then(
          () => undefined,
          (err: unknown) => err as Error,
        );
        expect(error).toBeInstanceOf(SyncError);
        return error!.message;
      };
      const header = `Basic ${credential}`;
      const echoes = {
        'JSON with escaped slashes': JSON.stringify({ authorization: header }).replaceAll('/', '\\/'),
        'JSON with \\u escapes': JSON.stringify({ authorization: header }).replace(/[+/=]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`),
        'URL-encoded': `header=${encodeURIComponent(header)}`,
        'URL-encoded, lower case': `header=${encodeURIComponent(header)
          .toLowerCase()
          .replace(/%[0-9a-f]{2}/g, (e) => e)}`,
        'HTML entities': `<p>${header.replace(/[+/=]/g, (c) => `&#x${c.charCodeAt(0).toString(16)};`)}</p>`,
        'in part, cut at 20 characters': `{"authorization":"${header.slice(0, 20)}..."}`,
        'the password decoded': `user sync with password ${password} refused`,
      };
      for (const [form, text] of Object.entries(echoes)) {
        body = text;
        const message = await failure();
        expect(message, form).toMatch(/: CPQ answered 400 with a body that quotes the credentials sent \(not shown\)$/);
        for (const secret of [credential, password])
          for (let i = 0; i + 8 <= secret.length; i++) expect(message.toLowerCase(), form).not.toContain(secret.slice(i, i + 8).toLowerCase());
      }
      body = '{"error":"unknown filter q"}';
      expect(await failure()).toMatch(/: CPQ answered 400 with "\{"error":"unknown filter q"\}"$/);
    } finally {
      echo.close();
    }
  });
});

describe('an error body that echoes a non-ASCII or short password', () => {
  it('is not shown when it quotes the password URL-encoded as UTF-8, twice URL-encoded, mis-read as Latin-1 or as UTF-16; a short password hides only itself', async () => {
    let body = '';
    const echo = createServer((req, res) => res.writeHead(400, { 'content-type': 'text/plain' }).end(body));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    try {
      const failure = async (password: string) => {
        const cpq = loadConfig({ CPQ_BASE_URL: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, CPQ_USERNAME: 'sync', CPQ_PASSWORD: password }).cpq!;
        const client = new CpqHttpClient(cpq, createAuthenticator(cpq.auth, 5_000), pino({ level: 'silent' }));
        const error = await client.getJson(client.url('/x')).then(
          () => undefined,
          (err: unknown) => err as Error,
        );
        expect(error).toBeInstanceOf(SyncError);
        return error!.message;
      };
      const password = 'Grüße-für-Jörg-ÄÖÜ';
      const echoes = {
        'URL-encoded as UTF-8': `pw=${encodeURIComponent(password)}`,
        'URL-encoded twice': `pw=${encodeURIComponent(encodeURIComponent(password))}`,
        'UTF-8 read as Latin-1': `Login failed for sync:${Buffer.from(password, 'utf8').toString('latin1')}`,
        'UTF-16': Buffer.from(`pw=${password}`, 'utf16le').toString('latin1'),
      };
      for (const [form, text] of Object.entries(echoes)) {
        body = text;
        expect(await failure(password), form).toMatch(/: CPQ answered 400 with a body that quotes the credentials sent \(not shown\)$/);
      }
      const plain = 'Tr0ub4dorPassw0rdXyz';
      const encoded = {
        hex: Buffer.from(plain).toString('hex'),
        'the Basic header in hex': Buffer.from(`Basic ${Buffer.from(`sync:${plain}`).toString('base64')}`).toString('hex'),
        'the password alone in base64, at an offset the credential does not share': Buffer.from(`x${plain}`).toString('base64'),
        'HTML references with a capital X, no semicolons': Array.from(plain)
          .map((c) => `&#X${c.charCodeAt(0).toString(16)}`)
          .join(''),
        'a zero-width space between the characters': Array.from(plain).join('\u200b'),
        'full-width characters': Array.from(plain)
          .map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0))
          .join(''),
        '\\x and \\u{} escapes': Array.from(plain)
          .map((c, i) => (i % 2 ? `\\x${c.charCodeAt(0).toString(16)}` : `\\u{${c.charCodeAt(0).toString(16)}}`))
          .join(''),
      };
      for (const [form, text] of Object.entries(encoded)) {
        body = text;
        expect(await failure(plain), form).toMatch(/: CPQ answered 400 with a body that quotes the credentials sent \(not shown\)$/);
      }
      // A password shorter than the window counts whole and with its case: an Admin named is no echo of "admin".
      body = 'contact your Admin';
      expect(await failure('admin')).toMatch(/: CPQ answered 400 with "contact your Admin"$/);
      body = 'wrong password admin';
      expect(await failure('admin')).toMatch(/: CPQ answered 400 with a body that quotes the credentials sent \(not shown\)$/);
      // So does one of fewer letters and digits than the window, however long.
      body = `{"pw":"${'!?'.repeat(6)}ab"}`;
      expect(await failure(`${'!?'.repeat(6)}ab`)).toMatch(/: CPQ answered 400 with a body that quotes the credentials sent \(not shown\)$/);
    } finally {
      echo.close();
    }
  });
});
