import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect } from 'vitest';
import { runCheck } from '../src/check/index.js';
import { admin } from './helpers/database.js';
import { cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/*
 * CPQ's names are any Unicode. A database in another encoding (LATIN1) took runs for months, until
 * the first name outside it failed every run with an error naming no user (review AA): refused
 * before anything is written, and `check` says so.
 */
describe('a database not in UTF8', () => {
  it('is refused by the first run, before any table is created, with exit code 6; check fails its database step', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    const name = `cpq_latin1_${randomBytes(5).toString('hex')}`;
    await admin((c) => c.query(`CREATE DATABASE ${name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`));
    try {
      const url = new URL(h.t.url);
      url.pathname = `/${name}`;
      const run = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() });
      expect(run.code).toBe(6);
      expect(run.stderr).toMatch(/the database's encoding is LATIN1, and CPQ's names and values are any Unicode: use a database created with ENCODING 'UTF8'/);
      const other = new pg.Client({ connectionString: url.toString() });
      await other.connect();
      const schemas = await other.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'cpq'`).finally(() => other.end());
      expect(schemas.rows).toEqual([{ n: 0 }]);

      const report = await runCheck({ CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() });
      const database = report.database?.steps.find((s) => s.step === 'database');
      expect(database).toMatchObject({ status: 'fail', detail: expect.stringContaining("the database's encoding is LATIN1") as unknown });
      expect(report.ok).toBe(false);
    } finally {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it('SQL_ASCII (what embedded Postgres made without a locale, as in the Docker image) is taken: it stores the UTF-8 written, exactly', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const name = `cpq_ascii_${randomBytes(5).toString('hex')}`;
    await admin((c) => c.query(`CREATE DATABASE ${name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`));
    try {
      const url = new URL(h.t.url);
      url.pathname = `/${name}`;
      const login = String(h.sim.users('_host')[0]!.login);
      h.sim.updateUser('_host', login, { lastName: 'Müller-Øre 山田 😀' });
      const run = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url.toString() });
      expect(run.code, run.stderr).toBe(0);
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      const rows = await client.query(`SELECT last_name, raw ->> 'lastName' AS raw FROM cpq.users WHERE login = $1`, [login]).finally(() => client.end());
      expect(rows.rows).toEqual([{ last_name: 'Müller-Øre 山田 😀', raw: 'Müller-Øre 山田 😀' }]);
    } finally {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });
});
