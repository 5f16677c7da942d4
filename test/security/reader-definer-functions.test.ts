import { describe, expect } from 'vitest';
import { it } from '../helpers/harness.js';
import { connectReaderLogin } from '../helpers/reader-login.js';

/*
 * A SECURITY DEFINER function runs as its owner, the migrating role. Postgres searches the
 * caller's temporary schema first for tables and types when search_path does not name pg_temp,
 * and any role may create temporary objects (TEMP is PUBLIC's by default). cpq.seals_began_at()
 * (0032) casts to timestamptz with search_path = pg_catalog alone: a reporting login that made a
 * domain pg_temp.timestamptz whose CHECK calls its own function ran that function as the owner
 * when it called cpq.seals_began_at(), as `verify --chain` does (review FU): here, deleting
 * every seal, which cpq_reader may not.
 */
describe('SECURITY DEFINER functions called by a reporting login', () => {
  it("never run the caller's temporary domain or function as their owner", async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 });
    await h.sync();
    const seals = async () => (await h.t.query<{ n: number }>('SELECT count(*)::int AS n FROM cpq.run_seals'))[0]!.n;
    expect(await seals()).toBe(1);
    const definers = (
      await h.t.query<{ name: string }>(
        `SELECT p.oid::regprocedure::text AS name FROM pg_proc p
          WHERE p.pronamespace = 'cpq'::regnamespace AND p.prosecdef AND has_function_privilege('cpq_reader', p.oid, 'EXECUTE')
          ORDER BY 1`,
      )
    ).map((r) => r.name);
    expect(definers).toEqual(['cpq.applied_migrations()', 'cpq.seals_began_at()']);

    const { reader, end } = await connectReaderLogin(h.t.url);
    try {
      await expect(reader.query('DELETE FROM cpq.run_seals')).rejects.toThrow(/permission denied/);
      // Shadows every type name the functions could look up unqualified: each domain's CHECK
      // deletes the seals, as whoever evaluates it.
      await reader.query(`CREATE FUNCTION pg_temp.erase() RETURNS boolean LANGUAGE sql AS $$ DELETE FROM cpq.run_seals; SELECT true $$`);
      for (const [name, base] of [
        ['timestamptz', 'pg_catalog.timestamptz'],
        ['text', 'pg_catalog.text'],
        ['varchar', 'pg_catalog.varchar'],
      ]) {
        await reader.query(`CREATE DOMAIN pg_temp.${name} AS ${base} CHECK (pg_temp.erase())`);
      }
      for (const name of definers) {
        await reader.query(`SELECT * FROM ${name.replace('()', '')}()`).catch(() => undefined);
      }
      // What the functions answer is unchanged, for the reader too.
      expect((await reader.query<{ at: Date | null }>('SELECT cpq.seals_began_at() AS at')).rows[0]!.at).toBeInstanceOf(Date);
      expect((await reader.query('SELECT * FROM cpq.applied_migrations()')).rows.length).toBeGreaterThan(30);
    } finally {
      await end();
    }
    expect(await seals()).toBe(1);
  });

  it("may neither write a running run's progress nor lock its record (migration 0031)", async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 });
    const { runId } = await h.sync();
    // As a run in progress looks: write_run_progress writes only a run recorded `running`.
    await h.t.query(`UPDATE cpq.sync_runs SET status = 'running', progress = NULL, progress_at = NULL WHERE id = $1`, [runId]);
    const { reader, end } = await connectReaderLogin(h.t.url);
    try {
      await expect(reader.query(`SELECT cpq.write_run_progress($1::bigint, '{"phase":"forged"}'::jsonb)`, [runId])).rejects.toThrow(/permission denied/);
      await expect(reader.query(`SELECT id FROM cpq.sync_runs WHERE id = $1 FOR KEY SHARE`, [runId])).rejects.toThrow(/permission denied/);
      await expect(reader.query(`LOCK TABLE cpq.sync_runs IN ROW EXCLUSIVE MODE`)).rejects.toThrow();
      await reader.query('BEGIN');
      await expect(reader.query(`LOCK TABLE cpq.sync_runs IN ROW EXCLUSIVE MODE`)).rejects.toThrow(/permission denied/);
      await reader.query('ROLLBACK');
    } finally {
      await end();
    }
    // The run's own role writes it.
    const written = await h.t.query<{ w: boolean }>(`SELECT cpq.write_run_progress($1::bigint, '{"phase":"reading"}'::jsonb) AS w`, [runId]);
    expect(written[0]!.w).toBe(true);
    expect((await h.t.query<{ phase: string }>(`SELECT progress->>'phase' AS phase FROM cpq.sync_runs WHERE id = $1`, [runId]))[0]!.phase).toBe('reading');
  });
});
