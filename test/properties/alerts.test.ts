import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { resetSite } from './site.js';

/*
 * The alerts of a run are what a reference model computes from the users before and after it:
 * generated users (admin flags, groups, access permissions) go through three full runs, each
 * login present, changed, deleted or back again at each, and the outbox of the second and third
 * run must hold exactly the model's alerts (the first is the company's first load: none). A
 * deletion ends memberships and permissions, so a restored user regains (and alerts on) them.
 */

const FLAGS = [
  ['isUserAdminPermEnabled', 'is_user_admin_perm_enabled'],
  ['isAccessAdminPermEnabled', 'is_access_admin_perm_enabled'],
  ['isApplicationAdminPermEnabled', 'is_application_admin_perm_enabled'],
  ['isProxyPermEnabled', 'is_proxy_perm_enabled'],
] as const;
/**
 * A watched name past the 100 UTF-16 units errors show of a name, a line break between its `zz` and
 * `admin` and a surrogate pair across units 100-101, and its twin one unit longer: two groups, each
 * its own alert subject whole.
 */
const LONG = `zz\r\nAdmin ${'é'.repeat(89)}\u{1F600}\ttail`;
/** ALERT_GROUPS below is zz*admin*: matched ignoring case, `_` literal. */
const GROUPS = ['zzAdminSales', 'ZZADMINX', 'zz_admin', 'readers', 'zzReaders', LONG, `${LONG}2`];
// `*` is any run of characters, line breaks too (ILIKE's %): the `s` flag.
const WATCHED = (g: string) => /^zz.*admin/is.test(g);
const PERMS = [
  { type: 'dataTableFolder', variableName: 'discountMatrix', name: 'Discount Matrix' },
  { type: 'fileManagerFolder', variableName: 'pricingDocs', name: 'Pricing docs' },
];
const LOGINS = ['u1', 'u2', 'u3', 'u4'];

interface State {
  flags: boolean[];
  groups: string[];
  /** By PERMS index: the hasAccess of each permission the user has. */
  perms: Map<number, boolean>;
}

const stateArb: fc.Arbitrary<State> = fc.record({
  flags: fc.array(fc.boolean(), { minLength: FLAGS.length, maxLength: FLAGS.length }),
  groups: fc.subarray(GROUPS),
  perms: fc
    .array(fc.option(fc.boolean(), { nil: undefined }), { minLength: PERMS.length, maxLength: PERMS.length })
    .map((list) => new Map(list.flatMap((access, i): [number, boolean][] => (access === undefined ? [] : [[i, access]])))),
});
/** Per login, its state at each of the three runs (null: CPQ does not have it then). */
const caseArb = fc.array(fc.array(fc.option(stateArb, { nil: null }), { minLength: 3, maxLength: 3 }), { minLength: LOGINS.length, maxLength: LOGINS.length });

function fields(s: State): Record<string, unknown> {
  return {
    ...Object.fromEntries(FLAGS.map(([field], i) => [field, s.flags[i]])),
    groups: { items: s.groups.map((g) => ({ variableName: g, label: g, type: 'Sales' })) },
    accessPermissions: { items: [...s.perms].map(([i, hasAccess]) => ({ ...PERMS[i]!, hasAccess })) },
  };
}

type Alert = [string, string, string];

/** What a user going from `before` (null: never seen) to `after` raises. */
function model(login: string, before: { state: State; deleted: boolean } | undefined, after: State): Alert[] {
  const out: Alert[] = [];
  const was = before?.state;
  if (before?.deleted) out.push([login, 'user_restored', 'deleted_at']);
  FLAGS.forEach(([, column], i) => {
    if (after.flags[i] !== (was?.flags[i] ?? false)) out.push([login, 'admin_flag', column]);
  });
  for (const g of after.groups) if (WATCHED(g) && !was?.groups.includes(g)) out.push([login, 'group_membership', g]);
  for (const [i, access] of after.perms) {
    if (access && was?.perms.get(i) !== true) out.push([login, 'access_permission', `${PERMS[i]!.type}:${PERMS[i]!.variableName}`]);
  }
  return out;
}

async function apply(h: Harness, states: (State | null)[]): Promise<void> {
  LOGINS.forEach((login, i) => {
    const s = states[i] ?? null;
    const exists = h.sim.user('_host', login) !== undefined;
    if (s === null) {
      if (exists) h.sim.deleteUser('_host', login);
    } else if (exists) h.sim.updateUser('_host', login, fields(s));
    else h.sim.addUser('_host', { login, ...fields(s) });
  });
  await Promise.resolve();
}

describe('alerts against a reference model (property)', () => {
  it(
    'each run alerts on exactly what the model says its changes deserve',
    async () => {
      // Nothing listens there: delivery fails at once and the alerts stay pending, which is all this checks.
      const h = await startHarness(
        { partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0 },
        {
          ALERT_WEBHOOK_URL: `http://127.0.0.1:${await freePort()}/hook`,
          ALERT_WEBHOOK_SECRET: 'property',
          ALERT_GROUPS: 'zz*admin*',
          SYNC_MAX_DELETE_FRACTION: '1',
        },
      );
      try {
        await fc.assert(
          fc.asyncProperty(caseArb, async (perLogin) => {
            await resetSite(h.sim, h.t);
            // Always there and never changed: the company is known after the first run.
            h.sim.addUser('_host', { login: 'anchor' });
            const db = new Map<string, { state: State; deleted: boolean }>();
            for (let run = 0; run < 3; run++) {
              const states = perLogin.map((s) => s[run] as State | null);
              await apply(h, states);
              const { runId } = await h.sync({ full: true });
              const expected: Alert[] = [];
              LOGINS.forEach((login, i) => {
                const after = states[i] ?? null;
                const before = db.get(login);
                if (after === null) {
                  // A deletion ends the user's memberships and permissions; its row keeps the rest.
                  if (before) db.set(login, { state: { ...before.state, groups: [], perms: new Map() }, deleted: true });
                  return;
                }
                if (run > 0) expected.push(...model(login, before, after));
                db.set(login, { state: after, deleted: false });
              });
              const rows = await h.t.query<{ login: string; rule: string; subject: string }>(
                `SELECT login, rule, subject FROM cpq.alert_outbox WHERE run_id = $1`,
                [runId],
              );
              const sort = (list: Alert[]) => list.map((a) => a.join(' ')).sort();
              expect(sort(rows.map((r): Alert => [r.login, r.rule, r.subject])), `run ${run + 1}`).toEqual(sort(expected));
            }
          }),
          runs(6, propertyTimeout(120_000)),
        );
      } finally {
        await h.close();
      }
    },
    propertyTimeout(120_000),
  );
});
