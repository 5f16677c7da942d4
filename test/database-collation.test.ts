import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect } from 'vitest';
import { admin } from './helpers/database.js';
import { cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/*
 * The change log's group and permission lists, and snapshots, are in code-point order whatever the
 * database's collation: under en-US the same change read ["_under","alpha","Ärger","Beta"] in one
 * database and ["Beta","_under","alpha","Ärger"] in another (review CB), and their seals differed.
 */
describe('a database whose collation is not C (ICU en-US)', () => {
  it('logs groups and permissions, and writes snapshots, in code-point order, as a C database does', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const name = `cpq_icu_${randomBytes(5).toString('hex')}`;
    await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`));
    const url = new URL(h.t.url);
    url.pathname = `/${name}`;
    const client = new pg.Client({ connectionString: url.toString() });
    try {
      const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() };
      expect((await cli(['run'], env)).code).toBe(0);
      await client.connect();
      // The database does sort otherwise: the test would show nothing in a C one.
      const sorted = await client.query<{ names: string[] }>(
        `SELECT array_agg(n ORDER BY n) AS names FROM unnest(ARRAY['alpha', 'Beta', '_under', 'Ärger']) n`,
      );
      expect(sorted.rows[0]!.names).not.toEqual(['Beta', '_under', 'alpha', 'Ärger']);

      const login = String(h.sim.users('_host')[0]!.login);
      for (const variableName of ['alpha', 'Beta', '_under', 'Ärger']) h.sim.addGroup('_host', login, { variableName, label: variableName, type: 'Sales' });
      for (const [type, variableName] of [
        ['Sales', 'zeta'],
        ['Sales', 'Alpha'],
        ['admin', 'x'],
      ] as const) {
        h.sim.setAccessPermission('_host', login, { type, variableName, name: variableName, hasAccess: true });
      }
      expect((await cli(['run'], env)).code).toBe(0);
      const logged = await client.query<{ diff: { groups: { added: string[] }; accessPermissions: { added: { type: string; variableName: string }[] } } }>(
        `SELECT diff FROM cpq.user_change_log WHERE change = 'update' AND login = $1`,
        [login],
      );
      expect(logged.rows).toHaveLength(1);
      expect(logged.rows[0]!.diff.groups.added).toEqual(['Beta', '_under', 'alpha', 'Ärger']);
      expect(logged.rows[0]!.diff.accessPermissions.added.map((p) => `${p.type}/${p.variableName}`)).toEqual(['Sales/Alpha', 'Sales/zeta', 'admin/x']);

      // Removed and changed lists too (review CE: only `added` was looked at).
      for (const variableName of ['alpha', 'Beta', '_under']) h.sim.removeGroup('_host', login, variableName);
      for (const [type, variableName] of [
        ['Sales', 'zeta'],
        ['Sales', 'Alpha'],
      ] as const) {
        h.sim.setAccessPermission('_host', login, { type, variableName, name: variableName, hasAccess: false });
      }
      h.sim.addUser('_host', { login: 'alpha-user' });
      h.sim.addUser('_host', { login: 'Beta-user' });
      expect((await cli(['run'], env)).code).toBe(0);
      const second = await client.query<{
        diff: { groups: { removed: string[] }; accessPermissions: { changed: { type: string; variableName: string }[] } };
      }>(`SELECT diff FROM cpq.user_change_log WHERE change = 'update' AND login = $1 ORDER BY id DESC LIMIT 1`, [login]);
      expect(second.rows[0]!.diff.groups.removed).toEqual(['Beta', '_under', 'alpha']);
      expect(second.rows[0]!.diff.accessPermissions.changed.map((p) => `${p.type}/${p.variableName}`)).toEqual(['Sales/Alpha', 'Sales/zeta']);

      const out = join(await mkdtemp(join(tmpdir(), 'cpq-icu-')), 'snapshot.jsonl');
      expect((await cli(['snapshot', '--format', 'jsonl', '--out', out], env)).code).toBe(0);
      const rows = (await readFile(out, 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { login: string; groups: { variableName: string }[]; access_permissions: { type: string; variableName: string }[] });
      // Rows by login in code-point order: Beta-user and User… before alpha-user.
      const logins = rows.map((r) => r.login);
      expect(logins).toEqual([...logins].sort());
      expect(logins.indexOf('Beta-user')).toBeLessThan(logins.indexOf('alpha-user'));
      const user = rows.find((u) => u.login === login)!;
      const names = user.groups.map((g) => g.variableName);
      expect(names).toEqual([...names].sort());
      const permissions = user.access_permissions.map((p) => `${p.type}/${p.variableName}`);
      expect(permissions).toEqual([...permissions].sort());
      expect(permissions.indexOf('Sales/Alpha')).toBeLessThan(permissions.indexOf('Sales/zeta'));
    } finally {
      await client.end().catch(() => undefined);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });
});
