import { describe, expect } from 'vitest';
import { CliProcess } from './helpers/cli-process.js';
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
