import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { runCheck } from '../src/check/index.js';
import { CliProcess, Cleanups } from './helpers/cli-process.js';
import { admin } from './helpers/database.js';
import { it } from './helpers/fixtures.js';

/*
 * snapshot, changes and verify only read: they never migrate, so the cpq_reader role (migration
 * 0003) can run them, and a database older than the release is one line saying to migrate.
 */

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

/** The database URL of a new login role that is a member of cpq_reader only. */
async function readerUrl(databaseUrl: string): Promise<string> {
  const name = `cpq_ro_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await admin((c) => c.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}' IN ROLE cpq_reader`));
  cleanups.push(() => admin((c) => c.query(`DROP ROLE IF EXISTS ${name}`)));
  const url = new URL(databaseUrl);
  url.username = name;
  url.password = password;
  return url.toString();
}

const cli = (args: string[], env: Record<string, string>) => new CliProcess(args, env).exited;

/** A webhook no alert reaches in these tests: `alerts retry` refuses to run without one, before it opens the database. */
const WEBHOOK = { ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook', ALERT_WEBHOOK_SECRET: 'not-sent' };

/** Runs each command line with `env`: each fails with exit code 6 and exactly `stderr`. */
async function expectEachRefused(commands: string[][], env: Record<string, string>, stderr: string): Promise<void> {
  for (const args of commands) {
    const out = await cli(args, env);
    expect({ args, code: out.code, stderr: out.stderr }).toEqual({ args, code: 6, stderr });
  }
}

/** The commands that only read what runs wrote (and forget, alerts retry): none makes an embedded cluster. */
const commandsThatMakeNoCluster = (dir: string): string[][] => [
  ['status'],
  ['snapshot', '--out', join(dir, 'users.csv')],
  ['changes', '--after', '0'],
  ['verify'],
  ['alerts', 'list'],
  ['alerts', 'retry'],
  ['forget', '--company', '_host', '--login', 'someone', '--reason', 'test'],
];

describe('read-only commands', () => {
  it('snapshot, changes and verify work as cpq_reader; an older schema is one line saying to migrate', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 });
    await h.sync();
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: await readerUrl(h.t.url) };
    for (const args of [['snapshot'], ['snapshot', '--admin-rights'], ['changes', '--after', '0'], ['verify'], ['verify', '--chain']]) {
      const out = await cli(args, env);
      expect(out.stderr.split('\n').filter((l) => l.startsWith('cpq-sync:'))).toEqual([]);
      expect(out.code, args.join(' ')).toBe(0);
    }
    // A write is refused to the same role: the commands above did not need one. The commands that
    // write say so at their start, as check does (test/writer-as-reader.test.ts).
    const run = await cli(['run'], env);
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 6,
      stderr: expect.stringMatching(/^cpq-sync: role \w+ may not write the cpq tables/) as unknown,
    });
    // So is alerts retry's (it requeues failed alerts): a database error, exit code 6, not an internal one (review DY).
    const retry = await cli(['alerts', 'retry'], { ...env, ...WEBHOOK });
    expect({ code: retry.code, stderr: retry.stderr }).toEqual({
      code: 6,
      stderr: expect.stringMatching(/^cpq-sync: role \w+ may not write the cpq tables/) as unknown,
    });
    // A statement the role may not run is a database error (exit code 6), not verify's exit code 1 of a broken chain.
    await h.t.query(`REVOKE SELECT ON cpq.run_seals FROM cpq_reader`);
    const denied = await cli(['verify', '--chain'], env);
    expect({ code: denied.code, stderr: denied.stderr }).toEqual({ code: 6, stderr: 'cpq-sync: database error: permission denied for table run_seals\n' });
    await h.t.query(`GRANT SELECT ON cpq.run_seals TO cpq_reader`);

    // A release ahead of the database: a migration it expects is not applied.
    await h.t.query(`DELETE FROM cpq.kysely_migration WHERE name = '0011_alert_outbox'`);
    await expectEachRefused(
      [['snapshot'], ['alerts', 'list']],
      env,
      'cpq-sync: the database schema is older than this release (1 migration not applied, the first 0011_alert_outbox): run `cpq-sync migrate` with the role that owns schema cpq\n',
    );
    // A database from before the function that tells (migration 0012).
    await h.t.query(`DROP FUNCTION cpq.applied_migrations()`);
    const oldest = await cli(['changes', '--after', '0'], env);
    expect(oldest.code).toBe(6);
    expect(oldest.stderr).toBe(
      'cpq-sync: the database schema is older than this release, or not migrated: run `cpq-sync migrate` with the role that owns schema cpq\n',
    );
  });

  it('check reads the schema version as cpq_reader too (review CC), and says a run as it would fail (review CM: it passed)', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 1, partnerCompanies: 0, integrationUsers: 0 });
    await h.sync();
    const report = await runCheck({ CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: await readerUrl(h.t.url) });
    expect(report.database?.steps.find((s) => s.step === 'schema')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^version 0\d{3}_\w+, but role \w+ may not write the cpq tables/) as unknown,
    });
  });

  it('status, the exports, verify, alerts and forget create no embedded Postgres: none in DATA_DIR (and no DATABASE_URL) is exit code 6 naming DATA_DIR (review CC)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cpq-no-embedded-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A webhook set: alerts retry without one is refused before it looks for a database.
    const env = { CPQ_BASE_URL: 'http://127.0.0.1:9', DATA_DIR: join(dir, 'data'), ...WEBHOOK };
    await expectEachRefused(
      commandsThatMakeNoCluster(dir),
      env,
      `cpq-sync: no database: DATABASE_URL is not set, and there is no embedded Postgres in ${join(dir, 'data')} (DATA_DIR) for a run to have written: set DATABASE_URL, or DATA_DIR to the runs' folder\n`,
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('nor in an empty DATA_DIR/pg (a first run whose initdb failed, an empty volume): the same exit code 6, and the folder stays empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cpq-no-embedded-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'data', 'pg'), { recursive: true });
    const env = { CPQ_BASE_URL: 'http://127.0.0.1:9', DATA_DIR: join(dir, 'data'), ...WEBHOOK };
    // Before, each made a cluster there (initdb), then exited 6 finding no database cpq_sync in it.
    await expectEachRefused(
      commandsThatMakeNoCluster(dir),
      env,
      `cpq-sync: no database: DATABASE_URL is not set, and there is no embedded Postgres in ${join(dir, 'data')} (DATA_DIR) for a run to have written: set DATABASE_URL, or DATA_DIR to the runs' folder\n`,
    );
    expect(await readdir(join(dir, 'data', 'pg'))).toEqual([]);
    expect(await readdir(dir)).toEqual(['data']);
  });

  it('every command but run, schedule and migrate refuses a database without the cpq schema in one line, saying no run synced into it, not to migrate (review CC, review DB)', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    await t.query('DROP SCHEMA cpq CASCADE');
    const env = { CPQ_BASE_URL: 'http://127.0.0.1:9', DATABASE_URL: t.url, ...WEBHOOK };
    // The read-only ones said to run cpq-sync migrate, which would have created the schema in this, the wrong, database.
    await expectEachRefused(
      [
        ['status'],
        ['verify'],
        ['snapshot'],
        ['changes', '--after', '0'],
        ['alerts', 'list'],
        ['alerts', 'retry'],
        ['forget', '--company', '_host', '--login', 'someone', '--reason', 'test'],
      ],
      env,
      'cpq-sync: the database has no cpq schema: no run has synced into it (is DATABASE_URL the database the runs write?)\n',
    );
    expect(await t.query(`SELECT nspname FROM pg_namespace WHERE nspname = 'cpq'`)).toEqual([]);
    // A schema that is there (a DBA made it) but not migrated: the read-only commands say to migrate.
    await t.query('CREATE SCHEMA cpq');
    await expectEachRefused(
      [['verify'], ['snapshot'], ['changes', '--after', '0'], ['alerts', 'list']],
      env,
      'cpq-sync: the database schema is older than this release, or not migrated: run `cpq-sync migrate` with the role that owns schema cpq\n',
    );
    expect(await t.query(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cpq'`)).toEqual([
      { n: 0 },
    ]);
  });
});
