import pg from 'pg';
import { describe, expect } from 'vitest';
import { inReadOnlySnapshot } from '../src/db/sql/in-read-only-snapshot.js';
import { SyncError } from '../src/errors.js';
import { CliProcess, cli } from './helpers/cli-process.js';
import { ALERT_TEST_SECRET } from './helpers/alerts.js';
import { cutProxy } from './helpers/cut-proxy.js';
import { freePort } from './helpers/free-port.js';
import { untilWaitingForLock } from './helpers/database.js';
import { it } from './helpers/fixtures.js';

/*
 * An export (or verify) whose database session ends under it (Postgres restarted, the session
 * terminated) fails as a database failure: exit code 6 and one line saying the connection was
 * lost, no watermark. Before, one that lost it while checking the schema was an internal error
 * (exit code 1, Postgres' words alone). Before, `changes` and `snapshot` whose cursor lost its connection waited for an
 * answer that never came, and Node ended the process with exit code 13 and not a word: a
 * warehouse's poll failed with nothing to say why (review DZ, met with a consumer polling through
 * `pg_ctl restart`).
 */

describe('a read command whose database session ends', () => {
  for (const { command, table } of [
    { command: ['changes', '--after', '0'], table: 'cpq.user_change_log' },
    { command: ['snapshot', '--format', 'jsonl'], table: 'cpq.user_history' },
    // Before the export: the check that the schema is this release's.
    { command: ['changes', '--after', '0'], table: 'cpq.kysely_migration' },
    { command: ['verify', '--chain'], table: 'cpq.kysely_migration' },
  ]) {
    it(`${command[0]}: its session terminated while it reads ${table}: exit code 6, one line, nothing on standard output`, async ({
      startHarness,
      connectClient,
    }) => {
      const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
      await h.sync();
      // Another session holds the table, so the export's read waits where the test can end it.
      const holder = await connectClient(h.t.url);
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
      const exporter = new CliProcess(command, { DATABASE_URL: h.t.url });
      try {
        await untilWaitingForLock(h.t);
        const ended = await h.t.query(
          `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        expect(ended).toEqual([{ ended: true }]);
        const out = await exporter.exited;
        // Which the client saw first depends on what it was doing: the server's FATAL, or its own
        // write failing on the closed socket (seen in CI: "write ECONNRESET").
        expect(out.stderr).toMatch(
          /^cpq-sync: database error: lost the connection to Postgres \((terminating connection due to administrator command|(write|read) (ECONNRESET|EPIPE))\)[^\n]*\n$/,
        );
        expect(out.code).toBe(6);
        expect(out.stdout).toBe('');
      } finally {
        exporter.kill('SIGKILL');
        await holder.query('ROLLBACK');
      }
    });
  }
});

describe('a read command whose connection is lost while it tells why the schema is not there', () => {
  // The schema check found no migration and read the role's rights to say why (missingSchemaError):
  // the connection lost then was an internal error, exit code 1, with node-postgres's words alone.
  // alerts retry and status ask the same (missingSchemaError), before they write or read anything.
  const alerts = { ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook', ALERT_WEBHOOK_SECRET: ALERT_TEST_SECRET };
  for (const command of [['changes', '--after', '0'], ['snapshot'], ['verify', '--chain'], ['alerts', 'list'], ['alerts', 'retry'], ['status']]) {
    it(`${command.join(' ')}: exit code 6, one line saying the connection was lost, nothing on standard output`, async ({ createDatabase }) => {
      const t = await createDatabase();
      await t.query('DROP SCHEMA cpq CASCADE');
      const proxy = await cutProxy(t.url, /has_database_privilege/);
      try {
        const out = await cli(command, { DATABASE_URL: proxy.url, ...alerts });
        expect(proxy.cut).toBe(true);
        expect(out.stderr).toMatch(/^cpq-sync: database error: lost the connection to Postgres \(Connection terminated unexpectedly\)[^\n]*\n$/);
        expect(out.code).toBe(6);
        expect(out.stdout).toBe('');
      } finally {
        await proxy.close();
      }
    });
  }
});

describe('a read command whose snapshot cannot connect', () => {
  // The schema check connected, then the server went away before the export's own session: the
  // refused connect is a Node system error (ECONNREFUSED), not a pg.DatabaseError, and was passed
  // on as it was, an internal error (exit code 1) rather than the database's (exit code 6).
  it('a refused connect is a database failure, as Postgres refusing it is', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: await freePort(), user: 'nobody', database: 'none', max: 2 });
    try {
      const failed = await inReadOnlySnapshot(pool, () => Promise.resolve('read')).catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(SyncError);
      expect(failed).toMatchObject({ kind: 'database', message: expect.stringMatching(/^database error: connect ECONNREFUSED 127\.0\.0\.1:\d+$/) as unknown });
    } finally {
      await pool.end();
    }
  });
});
