import pino from 'pino';
import { describe, expect } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/database.js';
import { analyzeUserTables, userStatisticsAreStale } from '../src/db/sql/analyze-user-tables.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { it } from './helpers/fixtures.js';

/*
 * A run that inserted many users analyzes the tables after its commit, still holding its site's
 * sync lock. ANALYZE waits for SHARE UPDATE EXCLUSIVE, which a DBA's manual VACUUM, CREATE INDEX
 * CONCURRENTLY or an anti-wraparound autovacuum holds for as long as it takes: the run, committed,
 * then waited up to SYNC_LOCK_TIMEOUT (30 minutes) before its process ended, and every run of the
 * site was skipped meanwhile (review DU).
 */
describe('the ANALYZE after a big load', () => {
  it('skips a table another session holds (a VACUUM, CREATE INDEX CONCURRENTLY) instead of waiting for it, and analyzes the others', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    const vacuum = await t.pool.connect();
    const pool = createPool(t.url, 1, 20_000);
    const client = await pool.connect();
    try {
      await vacuum.query('BEGIN');
      await vacuum.query('LOCK TABLE cpq.sync_runs IN SHARE UPDATE EXCLUSIVE MODE');
      const started = Date.now();
      await analyzeUserTables(client);
      expect(Date.now() - started).toBeLessThan(5000);
      const analyzed = await t.query<{ relname: string; analyzed: boolean }>(
        `SELECT relname, last_analyze IS NOT NULL AS analyzed FROM pg_stat_user_tables
          WHERE schemaname = 'cpq' AND relname IN ('users', 'user_groups', 'user_access_permissions', 'sync_runs') ORDER BY relname`,
      );
      expect(analyzed).toEqual([
        { relname: 'sync_runs', analyzed: false },
        { relname: 'user_access_permissions', analyzed: true },
        { relname: 'user_groups', analyzed: true },
        { relname: 'users', analyzed: true },
      ]);
    } finally {
      await vacuum.query('ROLLBACK');
      vacuum.release();
      client.release();
      await pool.end();
    }
  });

  it('is not asked for, rather than waited for, while another session holds cpq.users whole (VACUUM FULL, CLUSTER, ALTER TABLE): the check of the statistics does not wait either', async ({
    createDatabase,
  }) => {
    const t = await createDatabase();
    const sim = new CpqSimulator({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 });
    // A first load, analyzed: the check goes on to ask the planner how many users the site has.
    const config = loadConfig({ CPQ_BASE_URL: await sim.start(), DATABASE_URL: t.url });
    const vacuum = await t.pool.connect();
    // A lock timeout short enough that, waited out, the check fails here rather than answers.
    const pool = createPool(t.url, 1, 3000);
    const client = await pool.connect();
    try {
      await runSync({ pool: t.pool, db: t.db, config, log: pino({ level: 'silent' }) });
      await vacuum.query('BEGIN');
      await vacuum.query('LOCK TABLE cpq.users IN ACCESS EXCLUSIVE MODE');
      await expect(userStatisticsAreStale(client, 'default', 100)).resolves.toBe(false);
      // The check ended its transaction: the connection is idle, holding nothing.
      const [state] = await t.query<{ state: string }>(`SELECT state FROM pg_stat_activity WHERE pid = $1`, [
        (client as unknown as { processID: number }).processID,
      ]);
      expect(state!.state).toBe('idle');
    } finally {
      await vacuum.query('ROLLBACK');
      vacuum.release();
      client.release();
      await pool.end();
      await sim.stop();
    }
  });
});
