import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli-process.js';
import { hostileSite, type HostileSite } from './cpq-hostile.js';

/*
 * Node 20's fetch refuses a response with more than five Content-Encodings, but leaves its body
 * stream listening to the request's signal. When that signal was the run's, the run's failure
 * aborted it a moment later: the stream emitted an 'error' nobody heard, and the whole process
 * died (exit 1), every other site's and company's run with it. The run must fail alone, as it
 * does for any network error: exit code 3, one line, the database as it was.
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
    expect(out.stderr).toMatch(/GET \S+\/companies\/_host\/users\S*: CPQ unreachable after 1 attempts/);
    const runs = await s.h.t.query<{ status: string }>(`SELECT status FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
    expect(runs).toEqual([{ status: 'failed' }]);
    expect(await s.h.t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs WHERE status = 'succeeded'`)).toEqual(before);
  });
});
