import { describe, expect } from 'vitest';
import { cli } from './helpers/cli-process.js';
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
    expect(await t.query(`SELECT site, count(*)::int AS users FROM cpq.users GROUP BY site ORDER BY site`)).toEqual([
      { site: 'americas', users: 2 * 300 + 2 },
      { site: 'emea', users: 3 * 1000 + 5 + 1 },
    ]);
    const changed = await t.query<{ site: string; n: number }>(
      `SELECT c.site, count(*)::int AS n FROM cpq.user_change_log c JOIN cpq.sync_runs r ON r.id = c.run_id WHERE r.mode <> 'full' GROUP BY c.site`,
    );
    expect(changed).toEqual([{ site: 'emea', n: 4 }]);
  });
});
