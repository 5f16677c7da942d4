import { afterEach, describe, expect } from 'vitest';
import { runCheck } from '../src/check/index.js';
import type { CommandsThat } from '../src/db/command-access.js';
import { noSchemaRightsFix, noSchemaUsageFix } from '../src/db/migrate.js';
import { Cleanups, cli } from './helpers/cli-process.js';
import { admin, type TestDatabase } from './helpers/database.js';
import { it } from './helpers/harness.js';
import { connectReaderLogin } from './helpers/reader-login.js';

/*
 * A login without USAGE on schema cpq (README "Read-only access"): one not yet given cpq_reader,
 * or DATABASE_URL switched to another role after migrating as a superuser. Every command said
 * Postgres's bare `database error: permission denied for schema cpq` (exit code 6), and check
 * failed three steps with it, none saying what to do (review IL). Each now says it in one line
 * naming the role and the schema's owner, with the fix for what the command does; done, it works.
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

/** Who owns schema cpq in `t` (the role that migrated the template). */
async function schemaOwner(t: TestDatabase): Promise<string> {
  const [row] = await t.query<{ owner: string }>(`SELECT pg_get_userbyid(nspowner)::text AS owner FROM pg_namespace WHERE nspname = 'cpq'`);
  return row!.owner;
}

const NEVER_SOON = '0 0 1 1 *';

/**
 * Each command that only reads, and each that writes, with what it needs to get as far as the
 * database: typed by src/db/command-access.ts, so a command classed there and missing here fails
 * to compile.
 */
const READING: Record<CommandsThat<'read'>, string[]> = {
  status: ['status'],
  snapshot: ['snapshot'],
  changes: ['changes', '--after', '0'],
  verify: ['verify'],
  'alerts list': ['alerts', 'list'],
};
const WRITING: Record<CommandsThat<'write'>, string[]> = {
  run: ['run'],
  schedule: ['schedule'],
  migrate: ['migrate'],
  forget: ['forget', '--company', '_host', '--login', 'nosuch', '--reason', 'ticket 7', '--by', 'test'],
  'alerts retry': ['alerts', 'retry'],
  demo: ['demo'],
};
const WRITING_ENV = { SYNC_CRON: NEVER_SOON, ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook', ALERT_WEBHOOK_SECRET: 'a-secret-of-32-characters-or-so!' };

describe('a login without USAGE on schema cpq', () => {
  it('every command exits 6 with one line naming the role, the owner and the fix; check fails its schema step with both fixes', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const { url, role, end } = await connectReaderLogin(h.t.url, null);
    cleanups.push(end);
    const owner = await schemaOwner(h.t);
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url };
    const problem = `role ${role} may not use schema cpq (no USAGE on it; its owner is ${owner})`;
    const readFix = `have a DBA run GRANT cpq_reader TO ${role}`;
    const writeFix = `run cpq-sync as the role that owns schema cpq (${owner}, the one that migrated it); cpq_reader would let ${role} read, not write`;
    for (const args of Object.values(READING)) {
      const out = await cli(args, env);
      expect({ args, code: out.code, stderr: out.stderr }).toEqual({ args, code: 6, stderr: `cpq-sync: ${problem}: ${readFix}\n` });
    }
    for (const args of Object.values(WRITING)) {
      const out = await cli(args, { ...env, ...WRITING_ENV });
      expect({ args, code: out.code, stderr: out.stderr }).toEqual({ args, code: 6, stderr: `cpq-sync: ${problem}: ${writeFix}\n` });
    }
    // check: the schema step fails with the line and both fixes; the steps after it, which would
    // fail on the same refusal, are skipped.
    const report = await runCheck(env);
    expect(report.database?.steps.slice(1)).toEqual([
      {
        step: 'schema',
        status: 'fail',
        detail: problem,
        fix: `for the commands that only read (status, snapshot, changes, verify, alerts list), ${readFix}; for run, schedule, migrate, forget, alerts retry and demo, ${writeFix}`,
      },
      { step: 'sync lock (default)', status: 'skip', detail: 'no USAGE on schema cpq' },
      { step: 'cpq (default)', status: 'skip', detail: 'no USAGE on schema cpq' },
    ]);
    // The fix given works: with cpq_reader, status reads.
    await admin((c) => c.query(`GRANT cpq_reader TO ${role}`));
    const status = await cli(['status'], env);
    expect({ code: status.code, stderr: status.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('a member of cpq_reader in a database where cpq_reader was given nothing is told to grant it there', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    await h.sync();
    const { url, role, end } = await connectReaderLogin(h.t.url);
    cleanups.push(end);
    const owner = await schemaOwner(h.t);
    // As in a database migrated before a DBA made cpq_reader (README: the migration then grants nothing).
    await h.t.query('REVOKE USAGE ON SCHEMA cpq FROM cpq_reader');
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: url };
    const out = await cli(['status'], env);
    expect({ code: out.code, stderr: out.stderr }).toEqual({
      code: 6,
      stderr: `cpq-sync: role ${role} may not use schema cpq (no USAGE on it; its owner is ${owner}): as ${owner}, run SELECT cpq.grant_reader_access() (cpq_reader, which ${role} has, was given nothing in this database)\n`,
    });
    // The fix given works.
    await h.t.query('SELECT cpq.grant_reader_access()');
    const status = await cli(['status'], env);
    expect({ code: status.code, stderr: status.stderr }).toEqual({ code: 0, stderr: '' });
  });
});

describe('the fixes name a role or database as SQL must spell it', () => {
  it('quoted unless plain lower case: GRANT cpq_reader TO IT-Report was a syntax error, and ItReport another role (review IT)', () => {
    const usage = { role: 'IT-Report', owner: 'postgres', mayUse: false, readerExists: true, isReader: false };
    expect(noSchemaUsageFix(usage, 'read')).toBe('have a DBA run GRANT cpq_reader TO "IT-Report"');
    expect(noSchemaUsageFix({ ...usage, role: 'sa@proj.iam', readerExists: false }, 'read')).toBe(
      'have a DBA run CREATE ROLE cpq_reader NOLOGIN, then, as postgres, SELECT cpq.grant_reader_access(), then GRANT cpq_reader TO "sa@proj.iam"',
    );
    expect(noSchemaUsageFix({ ...usage, role: 'reporting' }, 'read')).toBe('have a DBA run GRANT cpq_reader TO reporting');
    expect(noSchemaRightsFix('Sync', 'my-db')).toBe('have a DBA run CREATE SCHEMA cpq AUTHORIZATION "Sync" (or GRANT CREATE ON DATABASE "my-db" TO "Sync")');
  });
});
