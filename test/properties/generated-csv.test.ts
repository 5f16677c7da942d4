import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import { RawJson } from '../../src/simulator/index.js';
import { runSync } from '../../src/sync/run.js';
import { USER_FIELDS } from '../../src/normalize/user-fields.js';
import { startHarness } from '../helpers/harness.js';
import { anyText, companyUser, shownInError, groupPool, propertyTimeout, refusalOf, runs, type GeneratedUser, type GroupDef } from './arbitraries.js';
import { SITE_COMPANIES, addToSimulator, columnsAsText, expectStored, resetSite, type PlacedUser } from './site.js';

/*
 * The same generated users read from a CSV zip entry and from JSON pages must give the same
 * database, but for what the README says a CSV cell cannot say alike ("Zip export"): access
 * permissions (left as they are), group labels and types, the JSON form of a custom field, and a
 * plain text field JSON sends as null or leaves out, which an empty cell loads as "". The users
 * are those a CSV export can hold without ambiguity: one spelling per field (two would be two
 * columns naming one field), a choice always as {value, displayValue} with a value (an empty
 * cell is no value), custom fields of text under plain names, and group names without `;` or
 * surrounding spaces (the cell's separator, trimmed). An integer cell that is not plain digits
 * (1.8E+17, 100.0: what a spreadsheet makes of a long id, rounded) is refused, where JSON pages
 * take such a number literal exactly: the CSV read must then fail naming the user and field.
 */

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const PLAIN_TEXT = new Set(USER_FIELDS.filter((spec) => spec.kind === 'text').map((spec) => spec.field));
const CHOICES = new Set(USER_FIELDS.filter((spec) => spec.kind === 'choiceText' || spec.kind === 'choiceInt').map((spec) => spec.field));

/** A user as a CSV export can hold it (see above). */
function csvSafe(user: GeneratedUser, custom: [string, string][]): GeneratedUser {
  const seen = new Set<string>();
  const fields = user.fields.filter((f) => {
    if (seen.has(f.field)) return false;
    seen.add(f.field);
    if (!CHOICES.has(f.field)) return true;
    const v = f.value;
    return v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in v && v.value !== null && v.value !== '';
  });
  return { ...user, fields, custom, accessPermissions: { kind: 'missing' } };
}

const csvGroups: fc.Arbitrary<GroupDef[]> = groupPool.map((groups) => {
  const names = new Set<string>();
  return groups
    .map((g) => ({ ...g, variableName: g.variableName.replaceAll(';', ',').trim() }))
    .filter((g) => g.variableName !== '' && !names.has(g.variableName) && names.add(g.variableName));
});

const csvCase = csvGroups.chain((groups) =>
  fc
    .array(fc.constantFrom(...SITE_COMPANIES), { minLength: 1, maxLength: 5 })
    .chain((companies) =>
      fc.tuple(
        ...companies.map((company, i) =>
          fc
            .tuple(
              companyUser(i, groups.length),
              fc.uniqueArray(
                fc.tuple(
                  fc.stringMatching(/^c_[a-z]{1,4}$/),
                  anyText.filter((t) => t !== ''),
                ),
                {
                  maxLength: 3,
                  selector: ([k]) => k,
                },
              ),
            )
            .map(([user, custom]): PlacedUser => ({ company, user: csvSafe(user, custom) })),
        ),
      ),
    )
    .map((users) => ({ groups, users })),
);

/** The integer fields (`partyId`, `status.value`) a user sends as a number literal that is not plain digits: a CSV read refuses them. */
function csvRefusals(user: GeneratedUser): string[] {
  const notDigits = (v: unknown) => v instanceof RawJson && !/^-?(0|[1-9]\d*)$/.test(v.text);
  return user.fields.flatMap((f) => {
    const spec = USER_FIELDS.find((u) => u.field === f.field)!;
    if (spec.kind === 'bigint') return notDigits(f.value) ? [f.field] : [];
    if (spec.kind !== 'choiceInt') return [];
    const v = f.value;
    const value = v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RawJson) ? v.value : v;
    return notDigits(value) ? [`${f.field}.value`] : [];
  });
}

type Row = Record<string, string | null>;

async function rows(h: Awaited<ReturnType<typeof startHarness>>): Promise<Row[]> {
  return h.t.query<Row>(
    `SELECT u.company_login, u.login, ${columnsAsText('u')},
            (SELECT coalesce(string_agg(g.group_variable_name, ';' ORDER BY g.group_variable_name COLLATE "C"), '') FROM cpq.user_groups g WHERE g.user_id = u.id) AS memberships,
            (SELECT jsonb_object_agg(key, value) FROM jsonb_each(u.raw) WHERE key LIKE 'c\\_%')::text AS custom
     FROM cpq.users u WHERE u.deleted_at IS NULL ORDER BY u.company_login COLLATE "C", u.login COLLATE "C"`,
  );
}

/**
 * The rows a CSV read gives, from those JSON pages gave: a plain text field the company's CSV has
 * a column for loads "" for null; an empty cell of any other field is no value (null).
 */
function asCsvGives(jsonRows: Row[], users: readonly PlacedUser[]): Row[] {
  const columns = new Map<string, Set<string>>();
  for (const p of users) for (const f of p.user.fields) (columns.get(p.company) ?? columns.set(p.company, new Set()).get(p.company)!).add(f.field);
  return jsonRows.map((row) => {
    const out = { ...row };
    for (const spec of USER_FIELDS) {
      if (PLAIN_TEXT.has(spec.field) && out[spec.column] === null && columns.get(row.company_login!)?.has(spec.field)) out[spec.column] = '';
      // Any other empty cell is no value: a choice's displayValue "" loads as none.
      if (CHOICES.has(spec.field) && out[`${spec.column}_display`] === '') out[`${spec.column}_display`] = null;
    }
    return out;
  });
}

describe('generated users from a CSV zip entry (property)', () => {
  it(
    'load the database the JSON pages load, but for what a CSV cell cannot say',
    async () => {
      const h = await startHarness(
        { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 0, integrationUsers: 0, drift: false, zipExport: { entries: [{ format: 'csv' }] } },
        { CPQ_COMPANIES: SITE_COMPANIES.join(','), SYNC_MAX_DELETE_FRACTION: '1' },
      );
      const run = (format: 'json' | 'zip') => runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: format }), log: h.log }, {});
      try {
        await fc.assert(
          fc.asyncProperty(csvCase, async ({ groups, users }) => {
            const placed = users.filter((p) => refusalOf(p.user) === undefined);
            await resetSite(h.sim, h.t);
            for (const p of placed) addToSimulator(h.sim, p, groups);
            expect((await run('json')).status).toBe('succeeded');
            await expectStored(h.t, placed, groups);
            const fromJson = asCsvGives(await rows(h), placed);
            await resetSite(h.sim, h.t);
            for (const p of placed) addToSimulator(h.sim, p, groups);
            const csv = await run('zip').catch((err: unknown) => err as Error);
            const refused = placed.flatMap((p) => csvRefusals(p.user).map((field) => ({ user: `"${p.company}/${shownInError(p.user.login)}"`, field })));
            if (refused.length > 0) {
              expect(csv, 'the CSV read is refused').toBeInstanceOf(Error);
              const message = (csv as Error).message;
              expect(message, 'one line').not.toContain('\n');
              expect(
                refused.some(({ user, field }) => message.includes(`user ${user}`) && message.includes(`field "${field}" must be a whole number`)),
                `the error names a user and field refused: ${message}`,
              ).toBe(true);
              const [{ count }] = (await h.t.query<{ count: string }>(`SELECT count(*)::text AS count FROM cpq.users`)) as [{ count: string }];
              expect(count, 'nothing loaded').toBe('0');
              return;
            }
            expect(csv instanceof Error ? csv.message : csv.status, 'the CSV read').toBe('succeeded');
            const fromCsv = await rows(h);
            expect(fromCsv.map((r) => `${r.company_login}/${r.login}`)).toEqual(fromJson.map((r) => `${r.company_login}/${r.login}`));
            for (const [i, row] of fromCsv.entries()) {
              const custom = (row: Row) => (typeof row.custom === 'string' ? (JSON.parse(row.custom) as Record<string, unknown>) : {});
              expect({ ...row, custom: custom(row) }, `${row.company_login}/${row.login}`).toEqual({ ...fromJson[i]!, custom: custom(fromJson[i]!) });
            }
            const names = placed.flatMap((p) => (p.user.groups.kind === 'items' ? p.user.groups.items.map((g) => groups[g]!.variableName) : []));
            const stored = await h.t.query<{ variable_name: string }>(`SELECT variable_name FROM cpq.groups`);
            expect(stored.map((g) => g.variable_name).sort(byCodeUnit), 'groups').toEqual([...new Set(names)].sort(byCodeUnit));
          }),
          runs(25, propertyTimeout(240_000)),
        );
      } finally {
        await h.close();
      }
    },
    propertyTimeout(240_000),
  );
});
