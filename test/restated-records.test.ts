import { describe, expect } from 'vitest';
import { withCpq, type AppConfig } from '../src/config.js';
import { LosslessNumber } from '../src/exact-json.js';
import { RawJson } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { expectChangeLogConsistent, expectInSync } from './helpers/db-equals-simulator.js';
import { type Harness, it } from './helpers/harness.js';
import { editPage, scriptRequests } from './helpers/scripted-pages.js';

/**
 * The change log names every change and invents none: a record that says what the stored one
 * says in other words (read from a CSV export after a JSON read, or the reverse) logs nothing,
 * and a change to a custom field only (kept in raw, no column of its own) logs an update whose
 * diff says which field changed, from what to what.
 */

type Diff = Record<string, unknown>;
const changesOf = async (h: Harness, runId: string) =>
  h.t.query<{ login: string; change: string; diff: Diff | null }>(`SELECT login, change, diff FROM cpq.user_changes WHERE run_id = $1 ORDER BY login`, [runId]);

/** The same site read as a CSV zip export instead of JSON pages. */
const asCsvZip = (h: Harness): AppConfig => withCpq(h.config, { exportFormat: 'zip' });

describe('restated records', () => {
  it('switching between JSON pages and a CSV export logs no change, in either direction', async ({ startHarness }) => {
    const h = await startHarness(
      { partnerCompanies: 1, usersPerCompany: 12, integrationUsers: 0, zipExport: { entries: [{ format: 'csv' }] } },
      { CPQ_COMPANIES: '*' },
    );
    const first = await h.sync({ full: true });
    // Two companies (the host and partner1) of 12 users each.
    expect(first.inserted).toBe(24);
    const csv = await runSync({ pool: h.t.pool, db: h.t.db, config: asCsvZip(h), log: h.log }, { full: true });
    expect(await changesOf(h, csv.runId)).toEqual([]);
    expect({ updated: csv.updated, unchanged: csv.unchanged }).toEqual({ updated: 0, unchanged: first.inserted });
    // Restated in other words, each user once at any time, the instant before the restatement
    // too (review CA: a restated row keeping its old valid_from was returned twice, untested).
    const [restating] = await h.t.query<{ effective_at: Date; ended: number }>(
      `SELECT effective_at, (SELECT count(*)::int FROM cpq.user_versions WHERE ended_by_run_id = r.id) AS ended FROM cpq.sync_runs r WHERE id = $1`,
      [csv.runId],
    );
    expect(restating!.ended).toBeGreaterThan(0);
    const twice = await h.t.query(`SELECT login FROM cpq.users_as_of($1) GROUP BY site, company_login, login HAVING count(*) > 1`, [
      new Date(restating!.effective_at.getTime() - 1),
    ]);
    expect(twice).toEqual([]);
    const json = await h.sync({ full: true });
    expect(await changesOf(h, json.runId)).toEqual([]);
    expect(json.updated).toBe(0);
    await expectInSync(h);
    await expectChangeLogConsistent(h.t);
  });

  // Review HN: a number a double cannot spell back is kept as its literal, a string in the parser's
  // output; as a text field's value it was digested as the text itself, so the user was unchanged
  // and raw kept the form read first.
  for (const literal of ['5551234', '1.50', '12345678901234567890', '1E2', '1e-400'])
    for (const [label, first, second] of [
      ['text then number', literal, new RawJson(literal)],
      ['number then text', new RawJson(literal), literal],
    ] as const)
      it(`a text field sent as ${literal} in another JSON form (${label}), dateModified unchanged: raw takes the form read last, nothing is logged`, async ({
        startHarness,
      }) => {
        const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 });
        const login = h.sim.addUser('_host', { login: 'u1', phone: first, dateModified: '2025-01-01T00:00:00.000Z' });
        await h.sync({ full: true });
        h.sim.updateUser('_host', login, { phone: second }, { touch: false });
        const run = await h.sync({ full: true });
        const [row] = await h.t.query<{ kind: string; phone: string }>(`SELECT jsonb_typeof(raw->'phone') AS kind, phone FROM cpq.users WHERE login = 'u1'`);
        expect(row).toEqual({ kind: second instanceof RawJson ? 'number' : 'string', phone: literal });
        expect(await changesOf(h, run.runId)).toEqual([]);
      });

  it('a custom field named like a part of a nested object (label, name, value) is a field like any other: its change is seen and logged, dateModified moved or not', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const login = h.sim.addUser('_host', { label: 'Sales rep', name: 'Alice A', value: 1 });
    await h.sync({ full: true });
    for (const [touch, edit] of [
      [false, { label: 'Administrator' }],
      [true, { name: 'Alice B', value: 2 }],
    ] as const) {
      h.sim.updateUser('_host', login, edit, { touch });
      const run = await h.sync({ full: true });
      const rows = await changesOf(h, run.runId);
      expect(rows.map((r) => ({ login: r.login, change: r.change }))).toEqual([{ login, change: 'update' }]);
      const expected = Object.fromEntries(Object.keys(edit).map((k) => [`raw.${k}`, expect.anything()]));
      expect(rows[0]!.diff).toMatchObject(expected);
      const [stored] = await h.t.query<{ raw: Record<string, unknown> }>(`SELECT raw FROM cpq.users WHERE login = $1`, [login]);
      expect(stored!.raw).toMatchObject(edit);
    }
    expect((await changesOf(h, (await h.sync({ full: true })).runId)).length).toBe(0);
    await expectChangeLogConsistent(h.t);
  });

  it('a time that changes below the millisecond is seen, and the change log says it to the microsecond (insert and update)', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const login = h.sim.addUser('_host', { lastLogin: '2025-09-26T12:17:59.123456Z' });
    const first = await h.sync({ full: true });
    const [inserted] = await changesOf(h, first.runId).then((rows) => rows.filter((r) => r.login === login));
    expect(inserted!.diff!.last_login).toEqual({ old: null, new: '2025-09-26T12:17:59.123456Z' });
    h.sim.updateUser('_host', login, { lastLogin: '2025-09-26T12:17:59.123789Z' }, { touch: false });
    const second = await h.sync({ full: true });
    const rows = await changesOf(h, second.runId);
    expect(rows.map((r) => [r.login, r.change, r.diff])).toEqual([
      [login, 'update', { last_login: { old: '2025-09-26T12:17:59.123456Z', new: '2025-09-26T12:17:59.123789Z' } }],
    ]);
    await expectChangeLogConsistent(h.t);
  });

  it("a part of a nested object that no column holds (status.reason, a group's expiresOn) changed alone: the stored record becomes the new one", async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const login = h.sim.addUser('_host', {
      status: { value: 1, displayValue: 'Active', reason: 'hired' },
      groups: { items: [{ variableName: 'g1', label: 'G1', type: 'Sales', expiresOn: '2025-01-01' }] },
    });
    await h.sync({ full: true });
    const raw = async () => (await h.t.query<{ raw: Record<string, unknown> }>(`SELECT raw FROM cpq.users WHERE login = $1`, [login]))[0]!.raw;
    for (const edit of [
      { status: { value: 1, displayValue: 'Active', reason: 'rehired' } },
      { groups: { items: [{ variableName: 'g1', label: 'G1', type: 'Sales', expiresOn: '2030-01-01' }] } },
    ]) {
      h.sim.updateUser('_host', login, edit, { touch: false });
      const run = await h.sync({ full: true });
      expect(await raw()).toMatchObject(edit);
      // No column, membership or custom field changed: a restated record, logged as no change.
      expect(await changesOf(h, run.runId)).toEqual([]);
    }
    await expectChangeLogConsistent(h.t);
  });

  it('a value under a second spelling of a field or part (lastname beside lastName, DisplayValue, Label, HasAccess) changed alone: the stored record becomes the new one', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const record = (n: number) => ({
      lastName: 'Canonical',
      lastname: `lower${n}`,
      status: { value: 1, displayValue: 'Active', DisplayValue: `shown${n}` },
      groups: { items: [{ variableName: 'g1', label: 'G1', Label: `other${n}`, type: 'Sales' }] },
      accessPermissions: { items: [{ type: 'productFamily', variableName: 'laptops', hasAccess: true, HasAccess: n % 2 === 0 }] },
    });
    const login = h.sim.addUser('_host', record(0));
    await h.sync({ full: true });
    const stored = async () =>
      (
        await h.t.query<{ raw: Record<string, unknown>; last_name: string; versions: string }>(
          `SELECT raw, last_name, (SELECT count(*) FROM cpq.user_versions v WHERE v.login = u.login)::text AS versions FROM cpq.users u WHERE login = $1`,
          [login],
        )
      )[0]!;
    for (const n of [1, 2]) {
      // Each run changes one second spelling only: the columns (the canonical spellings) stay as they were.
      const edit = [{ lastname: `lower${n}` }, { status: record(n).status }, { groups: record(n).groups }, { accessPermissions: record(n).accessPermissions }];
      for (const [i, part] of edit.entries()) {
        h.sim.updateUser('_host', login, part, { touch: false });
        const run = await h.sync({ full: true });
        const now = await stored();
        expect(now.raw, `edit ${n}.${i}`).toMatchObject(part);
        expect(now.last_name).toBe('Canonical');
        expect(now.versions, `edit ${n}.${i}: a new version`).toBe(String((n - 1) * 4 + i + 1));
        expect(await changesOf(h, run.runId)).toEqual([]);
      }
    }
    await expectChangeLogConsistent(h.t);
  });

  it('two spellings of a field, neither the canonical one, fill the column alike in either order (the first in code-unit order wins)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 });
    const login = h.sim.addUser('_host', { email: undefined, EMAIL: 'upper@example.com', Email: 'mixed@example.com' });
    await h.sync({ full: true });
    const email = async () => (await h.t.query<{ email: string }>(`SELECT email FROM cpq.users WHERE login = $1`, [login]))[0]!.email;
    expect(await email()).toBe('upper@example.com');
    // The same two keys in the other order: the same record (jsonb keeps no key order either).
    h.sim.updateUser('_host', login, { EMAIL: undefined }, { touch: false });
    h.sim.updateUser('_host', login, { EMAIL: 'upper@example.com' }, { touch: false });
    const run = await h.sync({ full: true });
    expect(await email()).toBe('upper@example.com');
    expect({ updated: run.updated, changes: await changesOf(h, run.runId) }).toEqual({ updated: 0, changes: [] });
  });

  it('the same nested parts sent in another order, spelling or with a group repeated are no change: no rewrite, no version', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const g1 = { variableName: 'g1', label: 'G1', type: 'Sales', expiresOn: '2025-01-01' };
    const g2 = { variableName: 'g2', label: 'G2', type: 'Sales', expiresOn: { on: '2030-01-01', by: 'hr' } };
    const login = h.sim.addUser('_host', { status: { value: 1, displayValue: 'Active', reason: 'hired' }, groups: { items: [g1, g2] } });
    await h.sync({ full: true });
    const versions = async () => (await h.t.query<{ n: string }>(`SELECT count(*) AS n FROM cpq.user_versions WHERE login = $1`, [login]))[0]!.n;
    const before = await versions();
    h.sim.updateUser(
      '_host',
      login,
      {
        status: { Reason: 'hired', displayValue: 'Active', value: 1 },
        groups: { items: [{ ...g2, expiresOn: { by: 'hr', on: '2030-01-01' } }, { ...g1, expiresOn: '1999-01-01' }, g1], hasMore: false },
      },
      { touch: false },
    );
    const run = await h.sync({ full: true });
    expect({ updated: run.updated, unchanged: run.unchanged }).toEqual({ updated: 0, unchanged: 3 });
    expect(await versions()).toBe(before);
    expect(await changesOf(h, run.runId)).toEqual([]);
  });

  it('groups or permissions sent without items (a collection not expanded: links only, {}, items null) leave the memberships as they are', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const login = h.sim.addUser('_host', {
      groups: { items: [{ variableName: 'g1', label: 'G1', type: 'Sales' }] },
      accessPermissions: { items: [{ type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: true }] },
    });
    await h.sync({ full: true });
    const relations = async () =>
      h.t.query(
        `SELECT (SELECT array_agg(group_variable_name) FROM cpq.user_groups g WHERE g.user_id = u.id) AS groups,
                (SELECT array_agg(variable_name) FROM cpq.user_access_permissions p WHERE p.user_id = u.id) AS permissions
         FROM cpq.users u WHERE login = $1`,
        [login],
      );
    const before = await relations();
    expect(before).toEqual([{ groups: ['g1'], permissions: ['laptops'] }]);
    const links = { links: [{ rel: 'child', href: 'https://site.example.com/rest/v16/companies/_host/users/x/groups' }] };
    for (const [round, groups, accessPermissions] of [
      [1, links, {}],
      [2, { items: null }, links],
    ] as const) {
      h.sim.updateUser('_host', login, { firstName: `Renamed ${round}` });
      // As sent: the simulator always expands them.
      scriptRequests(h.sim, async (req) => {
        if (!req.path.endsWith('/users')) return;
        req.reply(
          editPage(await req.real(), (page) => page.items.filter((u) => u.login === login).forEach((u) => Object.assign(u, { groups, accessPermissions }))),
        );
      });
      const run = await h.sync({ full: true });
      expect(await relations()).toEqual(before);
      const rows = await changesOf(h, run.runId);
      expect(rows.map((r) => Object.keys(r.diff ?? {}).filter((k) => !k.startsWith('raw.') && k !== 'date_modified'))).toEqual([['first_name']]);
    }
    await expectChangeLogConsistent(h.t);
  });

  it('a change to a custom field alone is logged with that field, old and new', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    const login = h.sim.addUser('_host', { firstName: 'Ada', customAttr9: { tier: 1, tags: ['a'] } });
    await h.sync({ full: true });
    h.sim.updateUser('_host', login, { customAttr9: { tier: 2, tags: ['a'] }, newCustom: new LosslessNumber('0.1234567890123456789') });
    const run = await h.sync({ full: true });
    const rows = await changesOf(h, run.runId);
    expect(rows.map((r) => ({ login: r.login, change: r.change }))).toEqual([{ login, change: 'update' }]);
    const diff = rows[0]!.diff!;
    expect(diff['raw.customAttr9']).toEqual({ old: { tier: 1, tags: ['a'] }, new: { tier: 2, tags: ['a'] } });
    // CPQ moves dateModified with every edit.
    expect(Object.keys(diff).sort()).toEqual(['date_modified', 'raw.customAttr9', 'raw.newCustom']);
    // The flat view shows it as a field like any other, the number exact as text.
    const [flat] = await h.t.query<{ new_value: string }>(
      `SELECT new_value::text AS new_value FROM cpq.user_changes_flat WHERE run_id = $1 AND field = 'raw.newCustom'`,
      [run.runId],
    );
    expect(flat!.new_value).toBe('0.1234567890123456789');
    await expectChangeLogConsistent(h.t);
  });

  it('a custom field going from null to absent, or back, is a restatement: raw is rewritten, nothing is logged, and a real change beside it lists only itself', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 });
    const login = h.sim.addUser('_host', { costCenter: null, region_c: 'north' });
    await h.sync({ full: true });
    const rawKeys = async () =>
      (await h.t.query<{ keys: string[] }>(`SELECT array(SELECT jsonb_object_keys(raw) ORDER BY 1) AS keys FROM cpq.users WHERE login = $1`, [login]))[0]!.keys;
    expect(await rawKeys()).toContain('costCenter');
    h.sim.updateUser('_host', login, { costCenter: undefined }, { touch: false });
    const restated = await h.sync({ full: true });
    expect(await changesOf(h, restated.runId)).toEqual([]);
    expect(await rawKeys()).not.toContain('costCenter');
    h.sim.updateUser('_host', login, { costCenter: null, region_c: 'south' }, { touch: false });
    const changed = await h.sync({ full: true });
    const rows = await changesOf(h, changed.runId);
    expect(rows.map((r) => r.diff)).toEqual([{ 'raw.region_c': { old: 'north', new: 'south' } }]);
    await expectChangeLogConsistent(h.t);
  });
});
