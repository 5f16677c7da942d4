import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { forgetUser } from '../src/sync/forget.js';
import { verifyChain } from '../src/sync/verify.js';
import { PERSONAL_FIELDS } from '../src/normalize/personal-fields.js';
import { it, type Harness } from './helpers/harness.js';
import { anyJson, anyText, lookalikeKey, propertyTimeout, runs, wireText, type Json } from './properties/arbitraries.js';

/*
 * Which keys of `raw` and of a change's diff are personal (redacted by HISTORY_RETENTION and
 * `forget`, left out of seals) was decided with lower(), which follows the database's locale. In a
 * Turkish one (tr_TR, or ICU's tr-TR) lower('I') is 'ı', so `externalSsoId`, the single sign-on
 * identity (often an e-mail address), was not personal in raw: `forget` left it there, and the
 * seals covered it. Keys are now folded in ASCII only (lower under the C collation), in a database
 * of any locale, as the custom-field keys are since migration 0039.
 */

/** A database of the ICU tr-TR locale, which the first run migrates. */
const TURKISH = { icuLocale: 'tr-TR' };

/** The locale this is about: the database's own lower() folds I to ı. */
async function expectTurkish(h: Harness): Promise<void> {
  expect(await h.t.query(`SELECT lower('I') AS folded`)).toEqual([{ folded: 'ı' }]);
}

describe('personal keys in a database of a Turkish locale, whose lower() folds I to ı', () => {
  it("forget redacts raw's externalSsoId (and every personal key) of the forgotten user, and the chain verifies", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, {}, TURKISH);
    await expectTurkish(h);
    const login = h.sim.addUser('_host', { externalSsoId: 'sso.identity@example.org', EXTERNAL_SSO_ID: 'custom.spelling@example.org' });
    await h.sync();
    h.sim.updateUser('_host', login, { externalSsoId: 'sso.changed@example.org' });
    await h.sync();
    h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    await forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'request 7', requestedBy: 'dpo' }, h.log);
    const found = await h.t.query<{ at: string; text: string | null }>(
      `SELECT 'users' AS at, raw::text AS text FROM cpq.users WHERE login = $1
       UNION ALL SELECT 'user_versions', raw::text FROM cpq.user_versions WHERE login = $1
       UNION ALL SELECT 'user_change_log', diff::text FROM cpq.user_change_log WHERE login = $1`,
      [login],
    );
    expect(found.length).toBeGreaterThan(3);
    // Before: users and user_versions still held raw's externalSsoId (and EXTERNAL_SSO_ID).
    const leaked = found.flatMap(({ at, text }) => (text?.match(/sso\.identity|sso\.changed|custom\.spelling/g) ?? []).map((value) => `${at}: ${value}`));
    expect(leaked).toEqual([]);
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  }, 60_000);
});

/** A personal field's name as the README says keys are matched: underscores dropped, ASCII letters in either case. Written here, not taken from src. */
const PERSONAL_NAMES = new Set(PERSONAL_FIELDS.map((f) => f.toLowerCase()));
const isPersonalByReadme = (key: string) => PERSONAL_NAMES.has(key.replaceAll('_', '').replace(/[A-Z]/g, (c) => c.toLowerCase()));

/** A personal field's name in the spellings CPQ, a column or a diff may use: any ASCII case, underscores anywhere. */
const personalSpelling = fc
  .tuple(fc.constantFrom(...PERSONAL_FIELDS), fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }), fc.array(fc.nat(20), { maxLength: 2 }))
  .map(([field, upper, underscores]) => {
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- field names are ASCII: one code point each
    let key = [...field].map((c, i) => (upper[i % upper.length] ? c.toUpperCase() : c.toLowerCase())).join('');
    for (const at of underscores) key = `${key.slice(0, at)}_${key.slice(at)}`;
    return key;
  });
const anyKey = fc.oneof(personalSpelling, lookalikeKey, fc.constantFrom('I', 'ı', 'İ', 'emaİl', 'EMAIL', 'emaıl', 'externalSsoİd'), anyText);

describe('which keys are personal, in a database of a Turkish locale (generated keys)', () => {
  it(
    'is what the README says (a personal field under any ASCII case and underscores, nothing else), and redaction changes nothing a seal of lines 4 covers',
    async ({ startHarness }) => {
      const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 }, {}, TURKISH);
      await expectTurkish(h);
      await h.sync();
      await fc.assert(
        fc.asyncProperty(fc.dictionary(anyKey, fc.oneof(fc.constant(null), anyJson), { maxKeys: 8 }), async (record: Record<string, Json>) => {
          const [row] = await h.t.query(
            `SELECT (SELECT coalesce(array_agg(k ORDER BY k COLLATE "C"), '{}') FROM jsonb_object_keys($1::jsonb) k WHERE cpq.is_personal_key(k)) AS personal,
                    cpq.without_personal_keys(cpq.redact_personal_fields($1::jsonb)) = cpq.without_personal_keys($1::jsonb) AS sealed_same`,
            [wireText(record)],
          );
          const expected = Object.keys(record)
            .filter(isPersonalByReadme)
            .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
          expect(row).toEqual({ personal: expected, sealed_same: true });
        }),
        runs(60, propertyTimeout(90_000)),
      );
    },
    propertyTimeout(90_000),
  );
});

describe('ALERT_GROUPS in a database of a Turkish locale', () => {
  // ILIKE folded case by the database's locale: there 'I' is the capital of 'ı', so `*admin*`
  // missed SUPERADMIN, and `SUPERVISOR*` every supervisor group.
  it('matches group variable names ignoring ASCII case, as in a database of any other locale: a group gained, and a new user of a watched group', async ({
    startHarness,
  }) => {
    const h = await startHarness(
      { partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 },
      {
        ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook',
        ALERT_WEBHOOK_SECRET: 'x'.repeat(32),
        ALERT_RULES: 'group_membership',
        ALERT_GROUPS: '*admin*,SUPERVISOR*',
      },
      TURKISH,
    );
    await expectTurkish(h);
    await h.sync();
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    for (const variableName of ['SUPERADMIN', 'supervisorIzmir', 'salesTeam'])
      h.sim.addGroup('_host', a!, { variableName, label: variableName, type: 'Sales' });
    const b = h.sim.addUser('_host', { groups: { items: [{ variableName: 'ITADMIN', label: 'IT', type: 'Administrator' }] } });
    await h.sync();
    const alerts = await h.t.query<{ login: string; subject: string }>(
      `SELECT login, subject FROM cpq.alert_outbox ORDER BY login COLLATE "C", subject COLLATE "C"`,
    );
    expect(alerts.map((r) => [r.login, r.subject])).toEqual(
      [
        [a, 'SUPERADMIN'],
        [a, 'supervisorIzmir'],
        [b, 'ITADMIN'],
      ].sort(),
    );
  });
});
