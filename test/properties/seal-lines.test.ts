import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import type pg from 'pg';
import { describe, expect } from 'vitest';
import { RawJson } from '../../src/simulator/index.js';
import { it, type Harness } from '../helpers/harness.js';
import { anyJson, anyText, propertyTimeout, runs, wireText, type Json } from './arbitraries.js';

/*
 * Migration 0014 builds a seal's lines with fewer copies of each row, and must not change a single
 * seal: a sealed run verifies only while cpq.run_content_sha256 gives the hash it gave at sealing.
 * This holds the migrated function against 0013's, installed beside it (schema seal_v13) from that
 * migration's own text, on real runs whose ended versions and change-log diffs are then given
 * generated raw records and diffs: personal fields under any spelling, nested nulls (the seal
 * strips them), any JSON shape, non-objects.
 */

const MIGRATION_0013 = readFileSync(new URL('../../migrations/0013_personal_field_functions_inlined.sql', import.meta.url), 'utf8');

/** 0013's definition of a function, renamed into schema seal_v13 along with its calls of the other one. */
function fromMigration0013(name: string): string {
  const definition = new RegExp(`CREATE OR REPLACE FUNCTION cpq\\.${name}\\([\\s\\S]*?\\$\\$[\\s\\S]*?\\$\\$;`).exec(MIGRATION_0013)?.[0];
  if (definition === undefined) throw new Error(`migration 0013 defines no cpq.${name}`);
  return definition
    .replaceAll('cpq.without_personal_fields(', 'seal_v13.without_personal_fields(')
    .replace('cpq.run_content_sha256(', 'seal_v13.run_content_sha256(');
}

// Personal fields in the spellings a record, a column or a diff may use, and others that are not.
const personalKey = fc.constantFrom(
  'firstName',
  'FIRSTNAME',
  'first_name',
  'Email',
  'e_mail',
  'BillAddress1',
  'bill_address1',
  'shipEmail',
  'externalSsoId',
  'job_title',
);
const otherKey = fc.oneof(fc.constantFrom('login', 'partyId', 'custom_field', 'emails', 'first', '_', '', '__proto__', 'Ä'), anyText);
const record: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.dictionary(fc.oneof(personalKey, otherKey), fc.oneof(fc.constant(null), anyJson), { maxKeys: 12 }) },
  { weight: 1, arbitrary: anyJson },
);

async function history(h: Harness): Promise<string[]> {
  await h.sync();
  const logins = h.sim.users('_host').map((u) => String(u.login));
  for (const login of logins.slice(0, 4)) h.sim.updateUser('_host', login, { lastName: `Changed ${login}`, email: `${login}@example.com` });
  await h.sync();
  h.sim.deleteUser('_host', logins[4]!);
  h.sim.updateUser('_host', logins[0]!, { lastName: 'Again' });
  await h.sync({ full: true });
  return (await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY sync_runs.id`)).map((r) => r.id);
}

describe('seal lines (migration 0014)', () => {
  it(
    'give every run the content hash 0013 gave it, whatever its versions and diffs hold',
    async ({ startHarness }) => {
      const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
      const runIds = await history(h);
      await h.t.query('CREATE SCHEMA seal_v13');
      await h.t.query(fromMigration0013('without_personal_fields'));
      await h.t.query(fromMigration0013('run_content_sha256'));
      const ended = await h.t.query<{ version_id: string }>(
        'SELECT version_id::text FROM cpq.user_versions WHERE ended_by_run_id IS NOT NULL ORDER BY user_versions.version_id',
      );
      const logged = await h.t.query<{ id: string }>('SELECT id::text FROM cpq.user_change_log ORDER BY user_change_log.id');
      expect(ended.length).toBeGreaterThan(2);

      const hashes = async (on: { query: (text: string, params?: unknown[]) => Promise<{ rows: { now: string; v13: string }[] }> }) =>
        (await on.query(`SELECT cpq.run_content_sha256(r)::text AS now, seal_v13.run_content_sha256(r)::text AS v13 FROM unnest($1::bigint[]) AS r`, [runIds]))
          .rows;

      // The runs as synced first: same hashes, and they are what a seal of lines 2 (migration
      // 0032: these lines, then the run's company counts) is built on.
      const client = await h.t.pool.connect();
      try {
        const sealed = await h.t.query<{ built_on: boolean }>(
          `SELECT encode(sha256(decode(cpq.run_content_sha256(run_id), 'hex') || coalesce((SELECT string_agg(sha256(convert_to(jsonb_build_array('company_counts', jsonb_strip_nulls(to_jsonb(k)))::text, 'UTF8')), ''::bytea ORDER BY k.company_login COLLATE "C") FROM cpq.run_company_counts k WHERE k.run_id = s.run_id), ''::bytea)), 'hex') = cpq.run_content_sha256(run_id, 2::smallint) AS built_on
           FROM cpq.run_seals s ORDER BY run_id`,
        );
        expect(sealed.map((s) => s.built_on)).toEqual(runIds.map(() => true));
        const plain = await hashes(client);
        expect(plain.map((r) => r.now)).toEqual(plain.map((r) => r.v13));

        await fc.assert(
          fc.asyncProperty(
            fc.array(record, { minLength: ended.length, maxLength: ended.length }),
            fc.array(fc.option(record, { nil: undefined }), { minLength: logged.length, maxLength: logged.length }),
            (raws, diffs) =>
              rolledBack(client, async () => {
                await client.query(
                  `UPDATE cpq.user_versions v SET raw = r.raw::jsonb FROM unnest($1::bigint[], $2::text[]) AS r(id, raw) WHERE v.version_id = r.id`,
                  [ended.map((e) => e.version_id), raws.map(wireText)],
                );
                await client.query(
                  `UPDATE cpq.user_change_log c SET diff = d.diff::jsonb FROM unnest($1::bigint[], $2::text[]) AS d(id, diff) WHERE c.id = d.id`,
                  [logged.map((l) => l.id), diffs.map((d) => (d === undefined ? null : wireText(d)))],
                );
                for (const row of await hashes(client)) expect(row.now).toBe(row.v13);
              }),
          ),
          runs(40, propertyTimeout(120_000)),
        );
      } finally {
        client.release();
      }
    },
    propertyTimeout(120_000),
  );

  it(
    "of lines 3 (migration 0033) tell apart every stored raw of an ended version: a null inside it too, which 0014's lines strip",
    async ({ startHarness }) => {
      const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
      const runIds = await history(h);
      const [ended] = await h.t.query<{ version_id: string; run: string }>(
        'SELECT version_id::text, ended_by_run_id::text AS run FROM cpq.user_versions ORDER BY user_versions.version_id LIMIT 1',
      );
      expect(runIds).toContain(ended!.run);
      const client = await h.t.pool.connect();
      /** The lines-3 and lines-1 hashes of the version's run with its raw set to `raw`, and the text of what a seal keeps of that raw. */
      const sealedWith = async (raw: Json) => {
        await client.query('UPDATE cpq.user_versions SET raw = $2::jsonb WHERE version_id = $1', [ended!.version_id, wireText(raw)]);
        const { rows } = await client.query<{ lines3: string; lines1: string; kept: string }>(
          `SELECT cpq.run_lines3_sha256($1) AS lines3, cpq.run_content_sha256($1) AS lines1, cpq.without_personal_fields($2::jsonb)::text AS kept`,
          [ended!.run, wireText(raw)],
        );
        return rows[0]!;
      };
      try {
        await fc.assert(
          fc.asyncProperty(record, (raw) =>
            rolledBack(client, async () => {
              const whole = await sealedWith(raw);
              const stripped = await sealedWith(withoutNullKeys(raw));
              // Equal hashes exactly when what the seal keeps of the two is the same jsonb text.
              expect(whole.lines3 === stripped.lines3).toBe(whole.kept === stripped.kept);
              // What 0014's lines missed: they cannot tell the two apart.
              expect(whole.lines1).toBe(stripped.lines1);
            }),
          ),
          runs(40, propertyTimeout(120_000)),
        );
      } finally {
        client.release();
      }
    },
    propertyTimeout(120_000),
  );
});

/** `check` in a transaction of `client` rolled back after it: every case starts from the runs as synced. */
async function rolledBack(client: pg.PoolClient, check: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await check();
  } finally {
    await client.query('ROLLBACK');
  }
}

/** `value` without the null-valued keys of its objects, at every depth (what jsonb_strip_nulls does); arrays keep their nulls. */
function withoutNullKeys(value: Json): Json {
  if (value === null || typeof value !== 'object' || value instanceof RawJson) return value;
  if (Array.isArray(value)) return value.map(withoutNullKeys);
  return Object.fromEntries(Object.entries(value).flatMap(([key, item]) => (item === null ? [] : [[key, withoutNullKeys(item)]])));
}
