import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type pg from 'pg';
import { describe, expect } from 'vitest';
import { createDb, createPool } from '../src/db/database.js';
import { forgetUser } from '../src/sync/forget.js';
import { runSync } from '../src/sync/run.js';
import { verifyChain } from '../src/sync/verify.js';
import { PERSONAL_FIELDS } from '../src/normalize/personal-fields.js';
import { admin } from './helpers/database.js';
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

/** A database of the ICU tr-TR locale, a pool on it, ended and dropped with the test's harness (after `use`). */
async function withTurkishDatabase(h: Harness, use: (pool: pg.Pool, query: (text: string, params?: unknown[]) => Promise<unknown[]>) => Promise<void>) {
  const name = `cpq_tr_locale_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`));
  const url = new URL(h.t.url);
  url.pathname = `/${name}`;
  const pool = createPool(url.toString());
  try {
    const query = async (text: string, params?: unknown[]) => (await pool.query(text, params)).rows as unknown[];
    // The locale this is about: the database's own lower() folds I to ı.
    expect(await query(`SELECT lower('I') AS folded`)).toEqual([{ folded: 'ı' }]);
    await use(pool, query);
  } finally {
    await pool.end();
    await admin((c) => c.query(`DROP DATABASE ${name} WITH (FORCE)`));
  }
}

describe('personal keys in a database of a Turkish locale, whose lower() folds I to ı', () => {
  it("forget redacts raw's externalSsoId (and every personal key) of the forgotten user, and the chain verifies", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await withTurkishDatabase(h, async (pool, query) => {
      const sync = async (full = false) => {
        const result = await runSync({ pool, db: createDb(pool), config: h.config, log: h.log }, { full, allowMassDelete: true });
        expect(result.status).toBe('succeeded');
      };
      const login = h.sim.addUser('_host', { externalSsoId: 'sso.identity@example.org', EXTERNAL_SSO_ID: 'custom.spelling@example.org' });
      await sync();
      h.sim.updateUser('_host', login, { externalSsoId: 'sso.changed@example.org' });
      await sync();
      h.sim.deleteUser('_host', login);
      await sync(true);
      await forgetUser(pool, { site: 'default', company: '_host', login, reason: 'request 7', requestedBy: 'dpo' }, h.log);
      const found = await query(
        `SELECT 'users' AS at, raw::text AS text FROM cpq.users WHERE login = $1
         UNION ALL SELECT 'user_versions', raw::text FROM cpq.user_versions WHERE login = $1
         UNION ALL SELECT 'user_change_log', diff::text FROM cpq.user_change_log WHERE login = $1`,
        [login],
      );
      expect(found.length).toBeGreaterThan(3);
      // Before: users and user_versions still held raw's externalSsoId (and EXTERNAL_SSO_ID).
      const leaked = found.flatMap((row) => {
        const { at, text } = row as { at: string; text: string | null };
        return ((text ?? '').match(/sso\.identity|sso\.changed|custom\.spelling/g) ?? []).map((value) => `${at}: ${value}`);
      });
      expect(leaked).toEqual([]);
      expect((await verifyChain(pool)).breaks).toEqual([]);
    });
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
      const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
      await withTurkishDatabase(h, async (pool, query) => {
        expect((await runSync({ pool, db: createDb(pool), config: h.config, log: h.log })).status).toBe('succeeded');
        await fc.assert(
          fc.asyncProperty(fc.dictionary(anyKey, fc.oneof(fc.constant(null), anyJson), { maxKeys: 8 }), async (record: Record<string, Json>) => {
            const [row] = (await query(
              `SELECT (SELECT coalesce(array_agg(k ORDER BY k COLLATE "C"), '{}') FROM jsonb_object_keys($1::jsonb) k WHERE cpq.is_personal_key(k)) AS personal,
                      cpq.without_personal_keys(cpq.redact_personal_fields($1::jsonb)) = cpq.without_personal_keys($1::jsonb) AS sealed_same`,
              [wireText(record)],
            )) as { personal: string[]; sealed_same: boolean }[];
            const expected = Object.keys(record)
              .filter(isPersonalByReadme)
              .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
            expect(row).toEqual({ personal: expected, sealed_same: true });
          }),
          runs(60, propertyTimeout(90_000)),
        );
      });
    },
    propertyTimeout(90_000),
  );
});
