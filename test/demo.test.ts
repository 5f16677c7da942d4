import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect } from 'vitest';
import { migrateBefore } from './helpers/database.js';
import { cli, CliProcess } from './helpers/cli-process.js';
import { it } from './helpers/fixtures.js';

describe('cpq-sync demo', () => {
  it('syncs two simulated sites into one database, then edits on one of them, and shows what changed, by site', async ({ createDatabase }) => {
    const t = await createDatabase();
    const demo = await cli(['demo'], { DATABASE_URL: t.url, LOG_LEVEL: 'warn' });
    expect(demo.stderr).toBe('');
    expect(demo.code).toBe(0);
    expect(demo.stdout).toMatch(/Simulated CPQ sites: emea at http:\/\/127\.0\.0\.1:\d+, americas at http:\/\/127\.0\.0\.1:\d+/);
    expect(demo.stdout).toMatch(/site emea, run \d+: full/);
    expect(demo.stdout).toMatch(/site americas, run \d+: full/);
    // The operator's database: named as given (no "cpq_demo"), and kept for the demo alone (review Y).
    expect(demo.stdout).not.toContain('cpq_demo');
    // The sample query as a table: its header, a rule under it, a row per site and company.
    expect(demo.stdout).toMatch(/\nsite +company_login +users +admins +integration\n-+ {2}-+ {2}-+ {2}-+ {2}-+\namericas +_host +\d+ +\d+ +\d+\n/);
    expect(demo.stdout).toMatch(
      /\nThe data stays in \S+\. Sync a real site into another database: a run into this one would mix it with the simulated sites\.\n+$/,
    );
    expect(await t.query(`SELECT site, count(*)::int AS users FROM cpq.users GROUP BY site ORDER BY site`)).toEqual([
      { site: 'americas', users: 2 * 300 + 2 },
      { site: 'emea', users: 3 * 1000 + 5 + 1 },
    ]);
    const changed = await t.query<{ site: string; n: number }>(
      `SELECT c.site, count(*)::int AS n FROM cpq.user_change_log c JOIN cpq.sync_runs r ON r.id = c.run_id WHERE r.mode <> 'full' GROUP BY c.site`,
    );
    expect(changed).toEqual([{ site: 'emea', n: 4 }]);
  });

  it('keeps out of a real setup: no alert reaches ALERT_WEBHOOK_URL, and a database holding other sites is refused, unchanged', async ({ createDatabase }) => {
    const t = await createDatabase();
    const posts: string[] = [];
    const hook = createServer((req, res) => {
      posts.push(req.url ?? '');
      res.writeHead(200).end();
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    try {
      const alerts = { ALERT_WEBHOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, ALERT_WEBHOOK_SECRET: 'not-for-the-demo' };
      // The demo's edits add a group of type Administrator: with the webhook configured, an alert.
      const demo = await cli(['demo'], { DATABASE_URL: t.url, LOG_LEVEL: 'warn', ...alerts });
      expect(demo.code, demo.stderr).toBe(0);
      expect(posts).toEqual([]);
      expect(await t.query(`SELECT count(*)::int AS n FROM cpq.alert_outbox`)).toEqual([{ n: 0 }]);

      // The demo's own database (marked by its first run) takes it again.
      const again = await cli(['demo'], { DATABASE_URL: t.url, LOG_LEVEL: 'warn', ...alerts });
      expect(again.code, again.stderr).toBe(0);

      await t.query(`INSERT INTO cpq.sites (name) VALUES ('production')`);
      const before = await t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs`);
      const refused = await cli(['demo'], { DATABASE_URL: t.url, LOG_LEVEL: 'warn', ...alerts });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        'demo: DATABASE_URL names a database that holds cpq tables not written by the demo (sites: americas, emea, production); the demo writes simulated sites (emea, americas)',
      );
      expect(await t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs`)).toEqual(before);
    } finally {
      hook.close();
    }
  });

  it("a database whose real sites are named like the demo's (emea) is refused too: only a database the demo marked is its own", async ({ createDatabase }) => {
    const t = await createDatabase();
    await t.query(`INSERT INTO cpq.sites (name) VALUES ('emea')`);
    const refused = await cli(['demo'], { DATABASE_URL: t.url, LOG_LEVEL: 'warn' });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('demo: DATABASE_URL names a database that holds cpq tables not written by the demo (sites: emea)');
    expect(await t.query(`SELECT count(*)::int AS n FROM cpq.sync_runs`)).toEqual([{ n: 0 }]);
    expect(await t.query(`SELECT obj_description('cpq'::regnamespace, 'pg_namespace') AS mark`)).toEqual([{ mark: null }]);
  });

  it('a database of the release before sites (no cpq.sites) is refused too, untouched', async ({ createDatabase }) => {
    const t = await createDatabase();
    await migrateBefore(t, '0010');
    await t.query(`INSERT INTO cpq.sync_runs (status, mode) VALUES ('succeeded', 'full')`);
    const refused = await cli(['demo'], { DATABASE_URL: t.url, LOG_LEVEL: 'warn' });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('demo: DATABASE_URL names a database that holds cpq tables not written by the demo (sites: (a release before sites))');
    expect(await t.query(`SELECT to_regclass('cpq.sites') AS sites`)).toEqual([{ sites: null }]);
  });

  it('ends with its one-line error when its database cannot be reached (it hung, its simulated sites still listening), whatever CPQ_* settings are beside it (review HK)', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    // Invalid CPQ_* and ALERT_* settings of a real setup beside it are ignored, as the README says
    // (they ended the demo with exit code 2: review HK).
    const realSetup = { CPQ_PAGE_SIZE: 'abc', ALERT_RULES: 'bogus', CPQ_SITES_FILE: '/nonexistent/sites.yaml' };
    const demo = new CliProcess(['demo'], { DATABASE_URL: 'postgres://demo:demo@127.0.0.1:1/demo', LOG_LEVEL: 'warn', ...realSetup });
    const killed = setTimeout(() => demo.kill('SIGKILL'), 60_000);
    try {
      const outcome = await demo.exited;
      expect(outcome.code, outcome.stderr).toBe(6);
      expect(outcome.stderr.trim().split('\n')).toHaveLength(1);
      expect(outcome.stderr).toMatch(/^cpq-sync: .*127\.0\.0\.1:1/);
    } finally {
      clearTimeout(killed);
    }
  });
});
