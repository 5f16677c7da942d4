import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { withCpq } from '../src/config.js';
import { MIGRATIONS_DIR, migrate } from '../src/db/migrate.js';
import { runSync } from '../src/sync/run.js';
import { expectChangeLogConsistent } from './helpers/db-equals-simulator.js';
import { ALL_MIGRATIONS } from './helpers/database.js';
import type { SimulatorOptions } from '../src/simulator/index.js';
import type { Harness } from './helpers/harness.js';
import { it } from './helpers/fixtures.js';
import { repeatOnSecondPage } from './helpers/scripted-pages.js';

/**
 * A user deleted in CPQ whose login is given to someone new before a full read saw the deletion:
 * the next record of that login, dated to another creation (dateAdded) or given another CPQ id
 * than the last one known, is another user. What the former holder had is never
 * kept (README "One-feed fields"), relations included: a record that does not carry one (a CSV
 * export has no access permissions, the integration feed none either) reads it as empty for the
 * new holder, where for the same user it leaves it as it was.
 */

const permissionsOf = async (h: Harness, login: string) =>
  (
    await h.t.query<{ variable_name: string }>(
      `SELECT p.variable_name FROM cpq.user_access_permissions p JOIN cpq.users u ON u.id = p.user_id
       WHERE u.company_login = '_host' AND u.login = $1 ORDER BY 1`,
      [login],
    )
  ).map((p) => p.variable_name);

const SERVERS = { type: 'productFamily', variableName: 'servers', name: 'Servers', hasAccess: true };

/** A small site whose zip export is CSV, and a full run that reads it (the harness's own runs read JSON pages). */
async function withCsvExport(startHarness: (options: SimulatorOptions) => Promise<Harness>) {
  const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0, zipExport: { entries: [{ format: 'csv' }] } });
  const csvRun = () => runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'zip' }), log: h.log }, { full: true });
  return { h, csvRun };
}

/** A user dated 2030 with CPQ id 1111 and the permission SERVERS, read once by JSON pages. */
async function heldWithServers(h: Harness): Promise<string> {
  const login = h.sim.addUser('_host', { dateAdded: '2030-01-01T00:00:00.000Z', id: 1111 });
  h.sim.setAccessPermission('_host', login, SERVERS);
  await h.sync({ full: true });
  return login;
}

/** The login given to someone new in CPQ (its holder deleted, if not yet), sending `fields`, with its own permission: storage. */
function giveToSomeoneNew(h: Harness, login: string, fields: Record<string, unknown>): void {
  if (h.sim.user('_host', login)) h.sim.deleteUser('_host', login);
  h.sim.addUser('_host', { login, ...fields, accessPermissions: { items: [] } });
  h.sim.setAccessPermission('_host', login, { ...SERVERS, variableName: 'storage', name: 'Storage' });
}

/** A CSV read of `login` (given to someone new with `storage`), its values sent now, reads the same holder: its own permission stays, no warning. */
async function expectSameHolderOnCsv(h: Harness, csvRun: () => Promise<{ warnings: string[] }>, login: string): Promise<void> {
  const csv = await csvRun();
  expect(await permissionsOf(h, login), 'its own permission').toEqual(['storage']);
  expect(csv.warnings.filter((w) => /held by another user/.test(w))).toEqual([]);
}

describe('a login given to another user', () => {
  it("read from a CSV export (no access permissions): the former holder's are removed and logged; the same user's are left as they were", async ({
    startHarness,
  }) => {
    const { h, csvRun } = await withCsvExport(startHarness);
    const kept = h.sim.addUser('_host', { dateAdded: '2030-01-01T00:00:00.000Z' });
    const reused = h.sim.addUser('_host', { dateAdded: '2030-01-01T00:00:00.000Z' });
    for (const login of [kept, reused]) h.sim.setAccessPermission('_host', login, SERVERS);
    await h.sync({ full: true });
    expect(await permissionsOf(h, kept)).toContain('servers');
    expect(await permissionsOf(h, reused)).toContain('servers');

    h.sim.deleteUser('_host', reused);
    h.sim.addUser('_host', { login: reused, dateAdded: '2031-01-01T00:00:00.000Z' });
    h.sim.updateUser('_host', kept, { jobTitle: 'Edited' });
    const csv = await csvRun();
    // The same user, edited: CSV cannot say its permissions, which stay.
    expect(await permissionsOf(h, kept)).toContain('servers');
    // Another user holds the login: none of the former holder's, and the change row says so.
    expect(await permissionsOf(h, reused)).toEqual([]);
    const [change] = await h.t.query<{ diff: Record<string, { removed?: { variableName: string }[] }> }>(
      `SELECT diff FROM cpq.user_changes WHERE run_id = $1 AND login = $2`,
      [csv.runId, reused],
    );
    expect(change!.diff.accessPermissions?.removed?.map((p) => p.variableName)).toContain('servers');
    expect(Object.keys(change!.diff)).toContain('date_added');
    // The run says so: one login, not the user edited.
    expect(csv.warnings.filter((w) => /held by another user/.test(w))).toEqual([
      `1 login is now held by another user than the one stored (another dateAdded or CPQ id; no full read saw the former holder deleted): each read as a new person, keeping nothing the former holder had (_host/${reused})`,
    ]);

    // The JSON pages say the new holder's own, logged as added; the same holder, no warning.
    const json = await h.sync({ full: true });
    expect(json.warnings).toEqual([]);
    const own = ((h.sim.user('_host', reused)!.accessPermissions as { items?: { variableName: string }[] } | undefined)?.items ?? []).map(
      (p) => p.variableName,
    );
    expect(await permissionsOf(h, reused)).toEqual([...own].sort());
    const added = await h.t.query(`SELECT 1 FROM cpq.user_changes WHERE run_id = $1 AND login = $2`, [json.runId, reused]);
    expect(added).toHaveLength(own.length > 0 ? 1 : 0);
    await expectChangeLogConsistent(h.t);
  });

  it("told apart by the last dateAdded known, across a read that sent none (review GJ): the former holder's permissions are removed", async ({
    startHarness,
  }) => {
    const { h, csvRun } = await withCsvExport(startHarness);
    const reused = h.sim.addUser('_host', { dateAdded: '2030-01-01T00:00:00.000Z' });
    h.sim.setAccessPermission('_host', reused, SERVERS);
    await h.sync({ full: true });
    // The same user, read once without its dateAdded (an empty CSV cell): null stored, permissions left.
    h.sim.updateUser('_host', reused, { dateAdded: null });
    await csvRun();
    const dateAdded = async () => (await h.t.query<{ d: string | null }>(`SELECT date_added::text AS d FROM cpq.users WHERE login = $1`, [reused]))[0]!.d;
    expect(await dateAdded()).toBeNull();
    expect(await permissionsOf(h, reused)).toContain('servers');
    h.sim.deleteUser('_host', reused);
    h.sim.addUser('_host', { login: reused, dateAdded: '2031-01-01T00:00:00.000Z' });
    await csvRun();
    expect(await dateAdded()).toMatch(/^2031-01-01/);
    expect(await permissionsOf(h, reused), "the former holder's permissions").toEqual([]);
  });

  it("a row stored before migration 0036 without its CPQ id: 0038 gives it the id its history knows, and a new holder is told apart by it (review GN): the former holder's permissions are removed", async ({
    startHarness,
  }) => {
    const { h, csvRun } = await withCsvExport(startHarness);
    const login = await heldWithServers(h);
    // Read once without its id (null stored), then nothing kept of it: as a release before 0036 left it.
    h.sim.updateUser('_host', login, { id: null });
    await h.sync({ full: true });
    await h.t.query(`DELETE FROM cpq.user_known_identity`);
    await h.t.query(readFileSync(join(MIGRATIONS_DIR, '0038_known_identity_from_history.sql'), 'utf8'));
    const kept = await h.t.query(`SELECT k.cpq_id::text FROM cpq.user_known_identity k JOIN cpq.users u ON u.id = k.user_id WHERE u.login = $1`, [login]);
    expect(kept).toEqual([{ cpq_id: '1111' }]);
    // Someone new, its dateAdded the former holder's, told apart by its id.
    giveToSomeoneNew(h, login, { dateAdded: '2030-01-01T00:00:00.000Z', id: 2222 });
    const csv = await csvRun();
    expect(await permissionsOf(h, login), "the former holder's permissions").toEqual([]);
    expect(csv.warnings.filter((w) => /held by another user/.test(w))).toHaveLength(1);
  });

  it('migration 0038 waits for a run of an older release writing the kept identity, then fills the table (review GP)', async ({
    startHarness,
    connectClient,
  }) => {
    const { h } = await withCsvExport(startHarness);
    const login = await heldWithServers(h);
    h.sim.updateUser('_host', login, { id: null });
    await h.sync({ full: true });
    // A database of the release before 0038, a run of that release writing the table (a value the
    // history does not give, so that the refill shows), uncommitted.
    await h.t.query(`DELETE FROM cpq.user_known_identity`);
    // 0038 alone unrecorded: migrate applies a migration missing before the last one applied
    // (allowUnorderedMigrations), and 0038 fills a table, creating nothing a later one replaces.
    // Unrecording those after it too made each later migration have to run twice.
    await h.t.query(`DELETE FROM cpq.kysely_migration WHERE name LIKE '0038%'`);
    const run = await connectClient(h.t.url);
    await run.query('BEGIN');
    await run.query(`INSERT INTO cpq.user_known_identity (user_id, site, cpq_id) SELECT id, site, 9999 FROM cpq.users WHERE login = $1`, [login]);
    let settled = false;
    const migrating = migrate(h.t.db, { lockWaitMs: 30_000 }).finally(() => void (settled = true));
    // The migration waits for the run's lock on the table, and has not finished.
    const waiting = async () =>
      (
        await h.t.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = 'cpq.user_known_identity'::regclass
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
      )[0]!.n;
    for (let tries = 0; (await waiting()) === 0 && tries < 200; tries++) await new Promise((r) => setTimeout(r, 50));
    expect(await waiting(), 'the migration waiting for the table').toBe(1);
    expect(settled).toBe(false);
    await run.query('COMMIT');
    expect(await migrating).toEqual(ALL_MIGRATIONS.filter((name) => name.startsWith('0038')));
    expect(await h.t.query(`SELECT cpq_id::text FROM cpq.user_known_identity`), 'the value the history gives').toEqual([{ cpq_id: '1111' }]);
  });

  it("a new holder's dateAdded, sent once it was read without one, is compared with its own CPQ id's holder, not a former holder's dateAdded (review GL): its own permissions stay", async ({
    startHarness,
  }) => {
    const { h, csvRun } = await withCsvExport(startHarness);
    const login = await heldWithServers(h);
    // Given to someone new, told apart by its id; its JSON record has no dateAdded, and its own permission.
    giveToSomeoneNew(h, login, { dateAdded: null, id: 2222 });
    await h.sync({ full: true });
    expect(await permissionsOf(h, login)).toEqual(['storage']);
    // The same new holder, its dateAdded sent now, read from the CSV export: the same user.
    h.sim.updateUser('_host', login, { dateAdded: '2031-01-01T00:00:00.000Z' });
    await expectSameHolderOnCsv(h, csvRun, login);
  });

  it("a login deleted, then given to someone new who sends neither at first: the deleted holder's values are not its own (review GM): its own permissions stay", async ({
    startHarness,
  }) => {
    const { h, csvRun } = await withCsvExport(startHarness);
    const login = await heldWithServers(h);
    // Read once without either (null stored; the values known kept), then deleted in CPQ and seen so.
    h.sim.updateUser('_host', login, { dateAdded: null, id: null });
    await h.sync({ full: true });
    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    // Someone new takes the login, sending neither at first (a restore), then its own.
    giveToSomeoneNew(h, login, { dateAdded: null, id: null });
    await h.sync({ full: true });
    expect(await permissionsOf(h, login)).toEqual(['storage']);
    h.sim.updateUser('_host', login, { dateAdded: '2031-01-01T00:00:00.000Z', id: 2222 });
    await expectSameHolderOnCsv(h, csvRun, login);
  });

  it('a user read twice in the run that first stores it, the later copy without its CPQ id (review GN): the id no version keeps tells no later holder apart', async ({
    startHarness,
  }) => {
    // Pages of 5, merged in batches of 3 (no direct first load): the first copy is inserted by a
    // batch, the later one, on the second page, reinserts it.
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 12, integrationUsers: 0 },
      { CPQ_COMPANIES: '_host', CPQ_PAGE_SIZE: '5', SYNC_MERGE_BATCH_USERS: '3', SYNC_DIRECT_FIRST_LOAD: 'false' },
    );
    h.sim.users('_host').forEach((u, i) => h.sim.updateUser('_host', String(u.login), { id: 1000 + i, isUserAdminPermEnabled: true }));
    const firstPage = repeatOnSecondPage(h.sim, 1, (u) => ({ ...u, id: null }));
    const first = await h.sync({ full: true });
    expect(first.status).toBe('succeeded');
    const login = String(firstPage.at(-1)!.login);
    const [stored] = await h.t.query<{ cpq_id: string | null }>(`SELECT cpq_id::text FROM cpq.users WHERE login = $1`, [login]);
    expect(stored, 'the later copy stored, without the id').toEqual({ cpq_id: null });
    // Its id sent now: the first the history knows of it, so the same user's.
    h.sim.updateUser('_host', login, { id: 2002 });
    const second = await h.sync({ full: true });
    expect(second.warnings.filter((w) => /held by another user/.test(w))).toEqual([]);
    // As cpq.admin_rights_as_of reads the versions: held since the first run.
    const since = await h.t.query<{ first: boolean }>(
      `SELECT a.since = r.effective_at AS first FROM cpq.admin_rights_as_of(now()) a, cpq.sync_runs r
       WHERE a.login = $1 AND a.admin_right = 'is_user_admin_perm_enabled' AND r.id = $2`,
      [login, first.runId],
    );
    expect(since).toEqual([{ first: true }]);
  });

  it("told apart by another CPQ id, its dateAdded the same: the former holder's permissions are removed", async ({ startHarness }) => {
    const { h, csvRun } = await withCsvExport(startHarness);
    const added = '2030-01-01T00:00:00.000Z';
    const reused = h.sim.addUser('_host', { dateAdded: added, id: 1111 });
    h.sim.setAccessPermission('_host', reused, SERVERS);
    await h.sync({ full: true });
    expect(await permissionsOf(h, reused)).toContain('servers');
    // Read again by the CSV export, as the same user: left as they were.
    await csvRun();
    expect(await permissionsOf(h, reused)).toContain('servers');
    h.sim.deleteUser('_host', reused);
    h.sim.addUser('_host', { login: reused, dateAdded: added, id: 2222 });
    await csvRun();
    expect(await permissionsOf(h, reused), "the former holder's permissions").toEqual([]);
  });

  it('the run names the first 10 such logins in code-point order, and how many more (review JD: the change log shows each as an update)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
    const logins = Array.from({ length: 12 }, (_, i) =>
      h.sim.addUser('_host', { login: `holder${String(i).padStart(2, '0')}`, dateAdded: '2030-01-01T00:00:00.000Z' }),
    );
    await h.sync({ full: true });
    for (const login of logins) {
      h.sim.deleteUser('_host', login);
      h.sim.addUser('_host', { login, dateAdded: '2031-01-01T00:00:00.000Z' });
    }
    const run = await h.sync();
    expect(run.warnings.filter((w) => /held by another user/.test(w))).toEqual([
      `12 logins are now held by another user than the one stored (another dateAdded or CPQ id; no full read saw the former holder deleted): each read as a new person, keeping nothing the former holder had (${logins
        .slice(0, 10)
        .map((l) => `_host/${l}`)
        .join(', ')}, and 2 more)`,
    ]);
  });
});
