import { readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { type Harness, it } from './helpers/harness.js';

/*
 * The README's queries for a warehouse team (review JK): when the person now holding each login
 * was first stored, which first_seen_run_id does not say after a restore or a login given to
 * someone new; and the full reads whose deletions the guard held back, which still exit 0.
 */

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
/** The README's SQL example under the comment line that starts with `title`. */
function example(title: string): string {
  const statement = new RegExp(`-- ${title}[^\\n]*\\n(?:--[^\\n]*\\n)*([\\s\\S]*?);\\n`).exec(readme)?.[1];
  if (statement === undefined) throw new Error(`the README has no SQL example "${title}"`);
  return statement;
}

async function effectiveAt(h: Harness, runId: string): Promise<Date> {
  const [run] = await h.t.query<{ effective_at: Date }>('SELECT effective_at FROM cpq.sync_runs WHERE id = $1', [runId]);
  return run!.effective_at;
}

describe("the README's warehouse queries", () => {
  it('"When each present user was first stored" dates a restored user and a login given to someone new by the run that stored that person, unlike first_seen_run_id', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0 });
    const [kept, restored, newHolder] = h.sim.users('_host').map((u) => String(u.login));
    const first = await h.sync();
    h.sim.deleteUser('_host', restored!);
    await h.sync({ full: true });
    // The restored user comes back with a dateAdded of now; the login is given to someone new
    // with no full read in between: the run logs an update, not a delete and an insert.
    h.sim.addUser('_host', { login: restored! });
    h.sim.deleteUser('_host', newHolder!);
    h.sim.addUser('_host', { login: newHolder! });
    const third = await h.sync({ full: true });
    const changes = await h.t.query<{ login: string; change: string }>(
      `SELECT login, change FROM cpq.user_change_log WHERE run_id = $1 AND login IN ($2, $3) ORDER BY login COLLATE "C"`,
      [third.runId, restored, newHolder],
    );
    expect(changes).toEqual(
      [
        { login: restored!, change: 'restore' },
        { login: newHolder!, change: 'update' },
      ].sort((a, b) => (a.login < b.login ? -1 : 1)),
    );

    const rows = await h.t.query<{ login: string; first_stored: Date; first_seen_run_id: string }>(
      `SELECT q.login, q.first_stored, u.first_seen_run_id FROM (${example('When each present user was first stored')}) q
       JOIN cpq.users u ON u.site = q.site AND u.company_login = q.company_login AND u.login = q.login`,
    );
    const byLogin = Object.fromEntries(rows.map((r) => [r.login, r]));
    expect(rows).toHaveLength(6);
    expect(byLogin[kept!]).toEqual({ login: kept, first_stored: await effectiveAt(h, first.runId), first_seen_run_id: first.runId });
    for (const login of [restored!, newHolder!]) {
      expect(byLogin[login]).toEqual({ login, first_stored: await effectiveAt(h, third.runId), first_seen_run_id: first.runId });
    }
  });

  it('"Who left group sales_emea" lists the memberships that ended, removed or by a deletion, dated by their runs, and not one held still', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 8, integrationUsers: 0 });
    const left = example('Who left group sales_emea').replaceAll("'sales_emea'", "'zzLeavers'");
    const [removed, deleted, kept] = h.sim.users('_host').map((u) => String(u.login));
    for (const login of [removed!, deleted!, kept!]) h.sim.addGroup('_host', login, { variableName: 'zzLeavers', label: 'Leavers', type: 'User' });
    const first = await h.sync();
    expect(await h.t.query(left)).toEqual([]);
    h.sim.removeGroup('_host', removed!, 'zzLeavers');
    h.sim.deleteUser('_host', deleted!);
    const second = await h.sync({ full: true });
    const [joined, leftAt] = [await effectiveAt(h, first.runId), await effectiveAt(h, second.runId)];
    expect(await h.t.query(left)).toEqual(
      [removed!, deleted!].sort().map((login) => ({ site: 'default', company_login: '_host', login, joined, left_at: leftAt })),
    );
  });

  it('"Full reads whose deletions the guard held back" finds the succeeded run that deleted nothing, and none that applied its deletions', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0 });
    const heldBack = example('Full reads whose deletions the guard held back');
    await h.sync();
    h.sim.deleteUser('_host', String(h.sim.users('_host')[0]!.login));
    await h.sync({ full: true });
    expect(await h.t.query(heldBack)).toEqual([]);
    // Three of the five left: past SYNC_MAX_DELETE_FRACTION (0.2) and SYNC_MASS_DELETE_MIN (1).
    for (const user of h.sim.users('_host').slice(0, 3)) h.sim.deleteUser('_host', String(user.login));
    const guarded = await h.sync({ full: true });
    expect(await h.t.query(`SELECT count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL`)).toEqual([{ n: 5 }]);
    expect(await h.t.query(heldBack)).toEqual([
      { id: guarded.runId, site: 'default', finished_at: expect.any(Date) as unknown, stream: 'companies/_host', deletion: 'aborted: 3 of 5 would be deleted' },
    ]);
  });
});
