import { readFileSync, readdirSync } from 'node:fs';
import { inspect } from 'node:util';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { withCpq, type AppConfig } from '../src/config.js';
import { parseExactJson, stringifyExactJson } from '../src/exact-json.js';
import { SyncError } from '../src/errors.js';
import { runSync } from '../src/sync/run.js';
import { ByteServer } from './helpers/byte-server.js';
import { expectChangeLogConsistent, expectInSync, rowVersions } from './helpers/db-equals-simulator.js';
import { itWithFileHarness } from './helpers/fixtures.js';
import { zipOf } from './helpers/zip-bytes.js';

/*
 * The bad-input corpus (test/fixtures/bad/, format in its README.md): every case is one page (or
 * one zip export) of a company of its own, served byte for byte, and either loads by a
 * documented rule or fails the run with a one-line error naming the record and the field (or the
 * URL, for a page that holds no records), leaving the database exactly as it was.
 */

const DIR = fileURLToPath(new URL('./fixtures/bad/', import.meta.url));

type Part = string | { $repeat: string; times: number };
interface ZipEntry {
  name: string;
  text?: string;
  parts?: Part[];
  base64?: string;
  /** Deflated in the archive: this many bytes of spaces (zip bombs). */
  spaces?: number;
}
interface BadCase {
  title: string;
  /** json (default): a collection page; zip: the company's zip export (CPQ_EXPORT_FORMAT=zip). */
  format?: 'json' | 'zip';
  page?: unknown;
  body?: string;
  parts?: Part[];
  bodyBase64?: string;
  zip?: ZipEntry[];
  status?: number;
  contentType?: string;
  /** Process time zone during the run (to show a result does not depend on it). */
  tz?: string;
  expect: { outcome: 'fail'; kind?: string; error: string } | { outcome: 'load'; rule: string; sql: string; rows: unknown[] };
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const cases = files.map((file) => {
  const spec = parseExactJson(readFileSync(DIR + file, 'utf8')) as BadCase;
  const company = `bad_${file.replace(/\.json$/, '').replace(/[^A-Za-z0-9]+/g, '_')}`;
  return { file, company, spec };
});

const text = (parts: Part[]) => parts.map((p) => (typeof p === 'string' ? p : p.$repeat.repeat(p.times))).join('');
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function responseOf(spec: BadCase): { body: Buffer; contentType: string } {
  if (spec.zip) {
    const entries = spec.zip.map((e) => ({
      name: e.name,
      data:
        e.base64 !== undefined
          ? Buffer.from(e.base64, 'base64')
          : Buffer.from(e.parts ? text(e.parts) : e.spaces !== undefined ? ' '.repeat(e.spaces) : (e.text ?? ''), 'utf8'),
      deflate: e.spaces !== undefined || e.name.endsWith('.json'),
    }));
    return { body: zipOf(entries, deflateRawSync), contentType: 'application/zip' };
  }
  const contentType = spec.contentType ?? 'application/json; charset=utf-8';
  if (spec.bodyBase64 !== undefined) return { body: Buffer.from(spec.bodyBase64, 'base64'), contentType };
  if (spec.parts !== undefined) return { body: Buffer.from(text(spec.parts), 'utf8'), contentType };
  if (spec.body !== undefined) return { body: Buffer.from(spec.body, 'utf8'), contentType };
  return { body: Buffer.from(stringifyExactJson(spec.page), 'utf8'), contentType };
}

/** In front of the simulator: serves each case's bytes for its company, passes every other request on. */
const front = new ByteServer();
beforeAll(() => front.start());
afterAll(() => front.stop());

/** One harness for the corpus: every case runs against it, in order, after one good run. */
const it = itWithFileHarness(
  { partnerCompanies: 0, usersPerCompany: 8, integrationUsers: 0 },
  (simUrl) => {
    front.target = simUrl;
    return { CPQ_BASE_URL: front.url };
  },
  async (h) => {
    // The last good state every failing case must leave untouched.
    await h.sync();
    for (const { company, spec } of cases) {
      const { body, contentType } = responseOf(spec);
      front.serve(`/rest/v16/companies/${company}/users`, { status: spec.status ?? 200, headers: { 'content-type': contentType }, body });
    }
  },
);

describe('bad input corpus (test/fixtures/bad)', () => {
  it('has at least 30 cases, each with an expected outcome', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    for (const { file, spec } of cases) expect(['fail', 'load'], file).toContain(spec.expect.outcome);
  });

  it.for(cases.map((c) => [`${c.file}: ${c.spec.title}`, c] as const))('%s', async ([, { company, spec }], { h }) => {
    const config: AppConfig = withCpq(h.config, { companies: [company], exportFormat: spec.format ?? 'json' });
    const before = await rowVersions(h.t);
    const tz = process.env.TZ;
    if (spec.tz) process.env.TZ = spec.tz;
    let error: unknown;
    try {
      await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log });
    } catch (err) {
      error = err;
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
    const [run] = await h.t.query<{ status: string; error: string | null }>(`SELECT status, error FROM cpq.sync_runs r ORDER BY r.id DESC LIMIT 1`);
    const expected = spec.expect;

    if (expected.outcome === 'fail') {
      if (!(error instanceof SyncError))
        throw new Error(`expected the run to fail, but it ${error ? `threw ${error instanceof Error ? String(error) : inspect(error)}` : 'succeeded'}`);
      const url =
        spec.format === 'zip'
          ? `http://127\\.0\\.0\\.1:\\d+/rest/v16/companies/${company}/users`
          : `http://127\\.0\\.0\\.1:\\d+/rest/v16/companies/${company}/users\\?\\S+`;
      const pattern = expected.error.replaceAll('{url}', url).replaceAll('{company}', escapeRegExp(company));
      expect(error.message).toMatch(new RegExp(pattern));
      expect(error.kind).toBe(expected.kind ?? 'data');
      expect(error.message).not.toMatch(/[\r\n]/);
      expect(error.message.length).toBeLessThan(1000);
      expect(run).toEqual({ status: 'failed', error: error.message });
      expect(await rowVersions(h.t)).toEqual(before);
    } else {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows whatever runSync threw, unchanged, so the test reports it
      if (error) throw error;
      expect(run!.status).toBe('succeeded');
      const rows = await h.t.query(expected.sql, [company]);
      expect(JSON.parse(JSON.stringify(rows))).toEqual(expected.rows);
    }
  });

  it('the change log of everything that loaded replays to the tables; the good company is untouched', async ({ h }) => {
    await expectChangeLogConsistent(h.t);
    await expectInSync(h, { companies: ['_host'] });
  });
});

describe('bad input with a lasting effect', () => {
  // A cursor that took the largest dateModified read, unbounded, would jump to the one record dated
  // in the future, and every incremental read after would ask only for users modified since then:
  // edits missed until the next full read (SYNC_FULL_EVERY). The cursor never passes the moment
  // its run began (README: "a record dated in the future does not move the incremental cursor").
  it('a dateModified far in the future loads, and later edits are still read by incremental runs (the cursor does not jump to the future)', async ({
    startHarness,
  }) => {
    const own = await startHarness({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0 });
    await own.sync();
    const [a, b] = own.sim.users('_host').map((u) => String(u.login));
    own.sim.updateUser('_host', a!, { dateModified: '9999-12-31T23:59:59.999Z' });
    expect((await own.sync()).updated).toBe(1);
    own.sim.updateUser('_host', b!, { lastName: 'EditedLater' });
    await own.sync();
    await expectInSync(own);
  });
});
