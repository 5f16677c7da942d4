import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli-process.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { loopbackHttp, type LoopbackHttp } from '../helpers/loopback-http.js';
import { MESSAGE_MAX_CHARS, withoutSecrets } from '../../src/secret-echo.js';

/*
 * Review HS: a name CPQ sends is quoted in errors (a company login that cannot be a URL's path
 * segment, a company named twice) and is part of the URLs errors name. One company login of 4
 * million letters, within CPQ_MAX_PAGE_BYTES, made a 4 MB error message; clearing it of the
 * credentials sent kept each 8-character run of it in a Set (~60 bytes of heap a character), and
 * `run` in the image's 192 MB heap aborted (exit 134, every site's run of a worker with it). Had
 * it not, the 4 MB would have gone to stderr and into cpq.sync_runs.error. A message is now cut to
 * a bound before it is searched, printed or stored, and the search costs what the text costs.
 */

const LONG = 4_000_000;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const longName = Array.from(randomBytes(LONG), (b) => ALPHABET[b % ALPHABET.length]).join('');

let site: LoopbackHttp | undefined;
let baseUrl = '';
let database: TestDatabase;
/** The company list's one login; its users collection answers 400. */
let login = '';

beforeAll(async () => {
  database = await createTestDatabase();
  site = await loopbackHttp((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/rest/v16/companies') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [{ loginName: login }], hasMore: false }));
      return;
    }
    res.writeHead(400, { 'content-type': 'application/json' }).end('{"title":"Bad Request"}');
  });
  baseUrl = site.url;
});

afterAll(async () => {
  await site?.close();
  await database.drop();
});

describe('attack: a company login of 4 million characters', { timeout: 180_000 }, () => {
  for (const [what, name] of [
    ['that cannot be a path segment (quoted by the error)', `/${longName}`],
    ['answered with a 400 (the URL the error names holds it)', longName],
  ] as const)
    it(`${what}: run fails in one bounded line within a 192 MB heap, and its record holds as little`, async () => {
      login = name;
      const out = await cli(['run'], {
        CPQ_BASE_URL: baseUrl,
        CPQ_COMPANIES: '*',
        CPQ_USERNAME: 'sync',
        CPQ_PASSWORD: 'S3cret-Passw0rd',
        CPQ_MAX_RETRIES: '0',
        DATABASE_URL: database.url,
        LOG_LEVEL: 'error',
        NODE_OPTIONS: '--max-old-space-size=192',
      });
      expect(out.signal).toBe(null);
      expect([3, 5], out.stderr.slice(0, 300)).toContain(out.code);
      expect(out.stderr).toMatch(/^cpq-sync: [^\n]*\n$/);
      expect(out.stderr.length).toBeLessThan(20_000);
      expect(out.stdout.length).toBeLessThan(40_000);
      const [run] = await database.query<{ status: string; error: string }>(`SELECT status, error FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
      expect(run!.status).toBe('failed');
      expect(run!.error.length).toBeLessThan(20_000);
      expect(run!.error).toContain(longName.slice(0, 30));
    });
});

describe('a credential quoted across the cut of a long message (review HY)', () => {
  // The search ran on what was left before the cut: a secret across it, shown in part (`Qz7…`,
  // 7 letters of a long one, `dXN…` of a Basic header), was too short there to be found.
  const hidden = 'a data error that quotes the credentials sent (not shown)';
  for (const [what, secret, window] of [
    ['a short password', 'Qz7k9', 8],
    ['a long password', 'LongSecretPassw0rd', 8],
    ['a Basic credential', Buffer.from('sync:LongSecretPassw0rd').toString('base64'), 8],
  ] as const)
    for (const shownBefore of [1, 3, 7])
      it(`${what}, ${shownBefore} characters of it before the cut: the message is not shown`, () => {
        const message = `${'x'.repeat(MESSAGE_MAX_CHARS - shownBefore)} ${secret} and more`.slice(1);
        expect(message.indexOf(secret)).toBe(MESSAGE_MAX_CHARS - shownBefore);
        expect(withoutSecrets(message, [secret], window, hidden, () => false)).toBe(hidden);
      });
  it('a message holding none is cut at the bound and says how much was left out', () => {
    const out = withoutSecrets('y'.repeat(MESSAGE_MAX_CHARS + 500), ['Qz7k9', 'LongSecretPassw0rd'], 8, hidden, () => false);
    expect(out).toBe(`${'y'.repeat(MESSAGE_MAX_CHARS)}… (500 more characters not shown)`);
  });
});
