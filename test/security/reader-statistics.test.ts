import { describe, expect } from 'vitest';
import { forgetUser } from '../../src/sync/forget.js';
import { it } from '../helpers/harness.js';
import { connectReaderLogin } from '../helpers/reader-login.js';

/*
 * A reporting login (cpq_reader) reads pg_stats of every column it may SELECT: the most common
 * values and histogram bounds ANALYZE (autovacuum's, or a run's own) sampled. On a site of a few
 * hundred users each e-mail address is among them, and stayed there after `forget` erased it
 * from every row (review DM), until some later ANALYZE.
 */
describe('pg_stats after forget', () => {
  it("holds none of the forgotten user's personal values for a reporting login", async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 40, partnerCompanies: 0, integrationUsers: 0 });
    await h.sync();
    const victim = h.sim.users('_host').find((u) => typeof u.email === 'string' && u.email !== '')!;
    const login = String(victim.login);
    const email = String(victim.email);
    h.sim.updateUser('_host', login, { email: `x${email}` });
    await h.sync();
    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    // What autovacuum does to a table of real size soon after a load.
    await h.t.query('ANALYZE');
    const { reader, end } = await connectReaderLogin(h.t.url);
    try {
      const statsHolding = async (value: string) =>
        (
          await reader.query<{ place: string }>(
            `SELECT tablename || '.' || attname AS place FROM pg_stats
              WHERE schemaname = 'cpq' AND (strpos(most_common_vals::text, $1) > 0 OR strpos(histogram_bounds::text, $1) > 0)
              ORDER BY 1`,
            [value],
          )
        ).rows.map((r) => r.place);
      // The reader sees it there before (it may read the rows too, then).
      expect(await statsHolding(email)).toContain('users.email');
      await forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'ticket 7', requestedBy: 'dpo' }, h.log);
      expect((await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.users WHERE email = $1`, [email])).rows[0]!.n).toBe(0);
      expect(await statsHolding(email)).toEqual([]);
      expect(await statsHolding(`x${email}`)).toEqual([]);
    } finally {
      await end();
    }
  });

  it('forget run again for a user forgotten already clears the values an earlier erasure left in pg_stats (review DR)', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 40, partnerCompanies: 0, integrationUsers: 0 });
    await h.sync();
    const victim = h.sim.users('_host').find((u) => typeof u.email === 'string' && u.email !== '')!;
    const login = String(victim.login);
    const email = String(victim.email);
    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    await h.t.query('ANALYZE');
    const statsHolding = async (value: string) =>
      (
        await h.t.query<{ place: string }>(
          `SELECT tablename || '.' || attname AS place FROM pg_stats
            WHERE schemaname = 'cpq' AND (strpos(most_common_vals::text, $1) > 0 OR strpos(histogram_bounds::text, $1) > 0)
            ORDER BY 1`,
          [value],
        )
      ).map((r) => r.place);
    expect(await statsHolding(email)).toContain('users.email');
    // An erasure that left the statistics as they were, as a release before review DM did: with a
    // statistics target of 0, ANALYZE leaves the column's statistics alone.
    await h.t.query('ALTER TABLE cpq.users ALTER COLUMN email SET STATISTICS 0');
    const request = { site: 'default', company: '_host', login, reason: 'ticket 7', requestedBy: 'dpo' };
    expect((await forgetUser(h.t.pool, request, h.log)).earlier).toBeUndefined();
    await h.t.query('ALTER TABLE cpq.users ALTER COLUMN email SET STATISTICS -1');
    expect(await statsHolding(email)).toContain('users.email');
    // Run again: nothing left to erase, nothing recorded, but the statistics are refreshed.
    expect((await forgetUser(h.t.pool, request, h.log)).earlier).toMatchObject({ requestedBy: 'dpo' });
    expect(await statsHolding(email)).toEqual([]);
  });
});
