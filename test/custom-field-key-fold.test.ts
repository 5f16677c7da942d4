import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect } from 'vitest';
import { admin } from './helpers/database.js';
import { cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';
import type { CpqSimulator } from '../src/simulator/index.js';

/*
 * Review GR. Whether a key of a record is a custom field (no column reads it) was decided by the
 * normalizer with toLowerCase and by the merge's SQL with lower(), which follows the database's
 * locale. For letters outside ASCII they disagreed: toLowerCase folds the Kelvin sign to k
 * ("linKs" was the structural links to the normalizer, a custom field to SQL), a UTF-8 locale
 * folds İ to i ("İD" was a custom field to the normalizer, the mapped id to SQL). A change of such
 * a field was then not stored (the content digest did not see it), or stored and not logged.
 * Field names now match in ASCII case only, on both sides, in a database of any locale.
 */
const LOOKALIKE_KEYS = ['lin\u212as', '\u0130D', 'Emai\u0131l', '\u017ftatus'];

type Query = (text: string, params: unknown[]) => Promise<Record<string, unknown>[]>;

/** The custom-field entries (`raw.<field>`) of a change's diff. */
const customOf = (diff: unknown) => Object.fromEntries(Object.entries(diff as Record<string, unknown>).filter(([field]) => field.startsWith('raw.')));

/**
 * A user with every lookalike key as a custom field, v1, loaded by `run`; then each key alone set
 * to v2 with dateModified kept, and read again: each change stored in raw and logged as an update
 * naming that field only (one key at a time, so that no other field's change carries it).
 */
async function expectLookalikeEditsStoredAndLogged(sim: CpqSimulator, run: () => Promise<void>, query: Query): Promise<void> {
  const login = sim.addUser('_host', Object.fromEntries(LOOKALIKE_KEYS.map((key) => [key, 'v1'])));
  await run();
  const [insert] = await query(`SELECT change, diff FROM cpq.user_changes WHERE login = $1 ORDER BY id`, [login]);
  expect({ change: insert!.change, custom: customOf(insert!.diff) }).toEqual({
    change: 'insert',
    custom: Object.fromEntries(LOOKALIKE_KEYS.map((key) => [`raw.${key}`, { old: null, new: 'v1' }])),
  });
  for (const key of LOOKALIKE_KEYS) {
    sim.updateUser('_host', login, { [key]: 'v2' }, { touch: false });
    await run();
    const [row] = await query(`SELECT raw -> $2 AS value FROM cpq.users WHERE login = $1`, [login, key]);
    expect(row, key).toEqual({ value: 'v2' });
    const changes = await query(`SELECT change, diff FROM cpq.user_changes WHERE login = $1 ORDER BY id DESC LIMIT 1`, [login]);
    expect(
      changes.map((c) => ({ change: c.change, custom: customOf(c.diff) })),
      key,
    ).toEqual([{ change: 'update', custom: { [`raw.${key}`]: { old: 'v1', new: 'v2' } } }]);
  }
}

describe('a custom field whose name is a mapped field with a letter outside ASCII (review GR)', () => {
  it('is stored and logged when its value changes (dateModified kept), in a database of the C locale', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await expectLookalikeEditsStoredAndLogged(
      h.sim,
      async () => {
        await h.sync({ full: true });
      },
      (text, params) => h.t.query(text, params),
    );
  });

  it('is stored and logged alike in a database of a UTF-8 locale (C.UTF-8), whose lower() folds İ to i', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const name = `cpq_utf8_locale_${randomBytes(5).toString('hex')}`;
    await admin((c) => c.query(`CREATE DATABASE ${name} ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0`));
    const url = new URL(h.t.url);
    url.pathname = `/${name}`;
    const client = new pg.Client({ connectionString: url.toString() });
    try {
      const run = async () => {
        const result = await cli(['run', '--full'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() });
        expect(result.code, result.stderr).toBe(0);
      };
      await client.connect();
      const query: Query = async (text, params) => (await client.query(text, params)).rows as Record<string, unknown>[];
      expect(await query(`SELECT datctype AS ctype FROM pg_database WHERE datname = current_database()`, [])).toEqual([{ ctype: 'C.UTF-8' }]);
      await expectLookalikeEditsStoredAndLogged(h.sim, run, query);
    } finally {
      await client.end();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });
});
