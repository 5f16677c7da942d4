import type pg from 'pg';
import { describe, expect } from 'vitest';
import { readSealChecks } from '../src/db/sql/read-proofs.js';
import { sealRun } from '../src/db/sql/seal-run.js';
import { formatChain, verifyChain, type ChainBreak } from '../src/sync/verify.js';
import { it, type Harness } from './helpers/harness.js';

const logins = (h: Harness, company = '_host') => h.sim.users(company).map((u) => String(u.login));

/** Three runs that change users, groups and permissions, so each seals change-log rows and ended versions. */
async function history(h: Harness) {
  await h.sync();
  const [a, b, c] = logins(h);
  h.sim.updateUser('_host', a!, { lastName: 'Second', isUserAdminPermEnabled: true });
  h.sim.addGroup('_host', b!, { variableName: 'auditors', label: 'Auditors', type: 'Administrator' });
  await h.sync();
  h.sim.deleteUser('_host', c!);
  h.sim.updateUser('_host', a!, { lastName: 'Third' });
  await h.sync({ full: true });
  return (await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY sync_runs.id`)).map((r) => r.id);
}

/** How many times this transaction called cpq.run_lines4_sha256, the lines of a seal of lines 4 (track_functions must be on). */
async function contentHashCalls(client: pg.PoolClient): Promise<number> {
  const { rows } = await client.query<{ calls: string }>(
    `SELECT pg_stat_get_xact_function_calls('cpq.run_lines4_sha256(bigint)'::regprocedure)::text AS calls`,
  );
  return Number(rows[0]!.calls);
}

/** A run, a run that fails (CPQ answers 500), then a run that succeeds. */
async function runsWithOneFailed(h: Harness): Promise<void> {
  await h.sync();
  h.sim.addFault({ match: { path: /\/users$/ }, times: 100, status: 500 });
  await h.syncError();
  h.sim.clearFaults();
  await h.sync();
}

/** A first run that fails (CPQ answers 500), then one that succeeds: the failed run, older than the site's first seal, and a user. */
async function failedFirstRun(h: Harness): Promise<{ failed: { id: string }; user: { id: string; login: string } }> {
  h.sim.addFault({ match: { path: /\/users$/ }, times: 100, status: 500 });
  await h.syncError();
  h.sim.clearFaults();
  await h.sync();
  const [failed] = await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'failed'`);
  const [user] = await h.t.query<{ id: string; login: string }>(`SELECT id::text, login FROM cpq.users ORDER BY users.id LIMIT 1`);
  return { failed: failed!, user: user! };
}

/** A change-log row of `user`'s update, `diff`, detected at the SQL `detectedAt`, added under run `runId`. */
async function logUpdateUnder(h: Harness, runId: string, user: { id: string; login: string }, diff: string, detectedAt: string): Promise<void> {
  await h.t.query(
    `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
     VALUES ($1, $2, '_host', $3, 'update', $4, 'default', ${detectedAt})`,
    [runId, user.id, user.login, diff],
  );
}

/**
 * A forged admin right, back-dated, under a failed first run (failedFirstRun), its status then set
 * to succeeded; and the break verify names it by.
 */
async function failedRunMadeSucceeded(h: Harness): Promise<{ failed: { id: string }; unsealed: ChainBreak }> {
  const { failed, user } = await failedFirstRun(h);
  await logUpdateUnder(h, failed.id, user, '{"isUserAdminPermEnabled": {"old": false, "new": true}}', "now() - interval '1 day'");
  await h.t.query(`UPDATE cpq.sync_runs SET status = 'succeeded', finished_at = coalesce(finished_at, now()) WHERE id = $1`, [failed.id]);
  const problem = `run ${failed.id} succeeded but has no seal (removed, or committed by a worker of a release before migration 0012 left running after the upgrade)`;
  return { failed, unsealed: { site: 'default', runId: failed.id, problem } };
}

/** verify --chain names `expected` alone, and still names it once every seal is removed. */
async function expectNamedWithAndWithoutSeals(h: Harness, expected: ChainBreak): Promise<void> {
  expect((await verifyChain(h.t.pool)).breaks).toEqual([expected]);
  await h.t.query(`DELETE FROM cpq.run_seals`);
  expect((await verifyChain(h.t.pool)).breaks).toContainEqual(expected);
}

/** Runs `statement`, then verifyChain, in a transaction rolled back after: what verify would say of that forgery. */
async function verifyAfter(h: Harness, statement: string, params: unknown[] = []) {
  const client = await h.t.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(statement, params);
    return await verifyChain(client);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

describe('tamper evidence', () => {
  it('every successful run is sealed, chained to the one before, and the chain verifies', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const seals = await h.t.query<{ run_id: string; previous_run_id: string | null; content_sha256: string; chain_sha256: string }>(
      `SELECT run_id::text, previous_run_id::text, content_sha256, chain_sha256 FROM cpq.run_seals ORDER BY run_seals.run_id`,
    );
    expect(seals.map((s) => s.run_id)).toEqual(runs);
    expect(seals.map((s) => s.previous_run_id)).toEqual([null, ...runs.slice(0, -1)]);
    for (const s of seals) expect(s.content_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(seals.map((s) => s.chain_sha256)).size).toBe(seals.length);
    const report = await verifyChain(h.t.pool);
    expect(report.breaks).toEqual([]);
    expect(report.sites).toEqual([{ site: 'default', runs: 3, head: seals[2]!.chain_sha256 }]);
  });

  it('a change-log row altered afterwards is found, and the run that committed it named', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    // Someone grants themselves admin after the fact, in the second run's change log.
    const [row] = await h.t.query<{ id: string }>(
      `SELECT id::text FROM cpq.user_change_log WHERE run_id = $1 AND change = 'update' ORDER BY user_change_log.id LIMIT 1`,
      [runs[1]],
    );
    await h.t.query(`UPDATE cpq.user_change_log SET diff = diff || '{"is_access_admin_perm_enabled": {"old": false, "new": true}}'::jsonb WHERE id = $1`, [
      row!.id,
    ]);
    const report = await verifyChain(h.t.pool);
    expect(report.breaks).toHaveLength(1);
    expect(report.breaks[0]!.runId).toBe(runs[1]);
    expect(report.breaks[0]!.problem).toContain(`run ${runs[1]} committed no longer matches its seal`);
  });

  it('rows of two runs altered: both are named, the earliest first (review EK; every break since review GW)', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const report = await verifyAfter(
      h,
      `UPDATE cpq.user_change_log SET diff = diff || '{"forged": true}'::jsonb
       WHERE id IN (SELECT min(id) FROM cpq.user_change_log WHERE run_id IN ($1::bigint, $2::bigint) GROUP BY run_id)`,
      [runs[1], runs[2]],
    );
    expect(report.breaks.map((b) => b.runId)).toEqual([runs[1], runs[2]]);
    expect(report.breaks[0]!.problem).toContain(`run ${runs[1]} committed no longer matches its seal`);
    expect(report.breaks[1]!.problem).toContain(`run ${runs[2]} committed no longer matches its seal`);
    expect(
      formatChain(report)
        .split('\n')
        .filter((l) => l.includes('BROKEN at run')),
    ).toEqual([`site default: BROKEN at run ${runs[1]}: ${report.breaks[0]!.problem}`, `site default: BROKEN at run ${runs[2]}: ${report.breaks[1]!.problem}`]);
  });

  it('breaks of different kinds in one site: each is named, the earliest run first, whichever check found it (review EK, mutant VF7)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const [user] = await h.t.query<{ id: string; login: string }>(`SELECT id::text, login FROM cpq.users ORDER BY users.id LIMIT 1`);
    // The seal check finds the second run; the rows naming no run name a later one: the second is named first.
    const later = await verifyAfter(
      h,
      `WITH altered AS (UPDATE cpq.user_change_log SET diff = diff || '{"forged": true}'::jsonb WHERE id = (SELECT min(id) FROM cpq.user_change_log WHERE run_id = $1))
       INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
       VALUES (999999, $2, '_host', $3, 'update', '{}', 'default', now())`,
      [runs[1], user!.id, user!.login],
    );
    expect(later.breaks.map((b) => b.runId)).toEqual([runs[1], '999999']);
    // The seal check finds the third run; the rows naming no run name an earlier one: that one is named first.
    const earlier = await verifyAfter(
      h,
      `WITH altered AS (UPDATE cpq.user_change_log SET diff = diff || '{"forged": true}'::jsonb WHERE id = (SELECT min(id) FROM cpq.user_change_log WHERE run_id = $1))
       INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
       VALUES ($2, $3, '_host', $4, 'update', '{}', 'default', now())`,
      [runs[2], String(BigInt(runs[0]!) - 1n), user!.id, user!.login],
    );
    expect(earlier.breaks).toEqual([
      {
        site: 'default',
        runId: String(BigInt(runs[0]!) - 1n),
        problem: `change-log rows name run ${String(BigInt(runs[0]!) - 1n)}, which is no run of this site: they were added, outside any seal`,
      },
      {
        site: 'default',
        runId: runs[2],
        problem: expect.stringContaining(`run ${runs[2]} committed no longer matches its seal`) as unknown,
      },
    ]);
  });

  it("one seal's chain hash altered names that run alone, not the next, untouched one (review HC)", async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const report = await verifyAfter(h, `UPDATE cpq.run_seals SET chain_sha256 = repeat('0', 64) WHERE run_id = $1`, [runs[1]]);
    expect(report.breaks.map((b) => [b.runId, b.problem])).toEqual([
      [runs[1], `run ${runs[1]}'s chain hash does not follow from the run before it (this seal was altered, or the one before it was rewritten to match)`],
    ]);
  });

  it("a run's rows and its chain hash altered, or two neighbouring chain hashes altered, name those runs alone, not the untouched one after (review HD)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const rowsAndChain = await verifyAfter(
      h,
      `WITH altered AS (UPDATE cpq.user_change_log SET diff = coalesce(diff, '{}'::jsonb) || '{"forged": true}' WHERE id = (SELECT min(id) FROM cpq.user_change_log WHERE run_id = $1) RETURNING run_id)
       UPDATE cpq.run_seals SET chain_sha256 = repeat('0', 64) WHERE run_id IN (SELECT run_id FROM altered)`,
      [runs[0]],
    );
    // One line per problem of the run: its rows, and its seal's chain hash.
    expect(rowsAndChain.breaks.map((b) => [b.runId, b.problem])).toEqual([
      [runs[0], expect.stringContaining(`run ${runs[0]} committed no longer matches its seal`)],
      [runs[0], `run ${runs[0]}'s chain hash does not follow from the run before it (this seal was altered, or the one before it was rewritten to match)`],
    ]);
    const twoChains = await verifyAfter(h, `UPDATE cpq.run_seals SET chain_sha256 = repeat('0', 64) WHERE run_id = ANY($1::bigint[])`, [[runs[0], runs[1]]]);
    expect(twoChains.breaks.map((b) => b.runId)).toEqual([runs[0], runs[1]]);
  });

  it("a seal's two hashes rewritten over a forged content hash, rows altered with the chain hash recomputed over them, or a seal's link and chain hash altered: that run alone is named (review HG)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const previousChain = `(SELECT p.chain_sha256 FROM cpq.run_seals p WHERE p.run_id = s.previous_run_id)`;
    const named = async (statement: string) => [...new Set((await verifyAfter(h, statement, [runs[1]])).breaks.map((b) => b.runId))];
    expect(
      await named(
        `UPDATE cpq.run_seals s SET content_sha256 = repeat('f', 64), chain_sha256 = cpq.run_chain_sha256(s.site, s.run_id, ${previousChain}, repeat('f', 64)) WHERE s.run_id = $1`,
      ),
    ).toEqual([runs[1]]);
    expect(
      await named(
        `WITH altered AS (UPDATE cpq.user_change_log SET diff = coalesce(diff, '{}'::jsonb) || '{"forged": true}' WHERE id = (SELECT min(id) FROM cpq.user_change_log WHERE run_id = $1) RETURNING run_id)
         UPDATE cpq.run_seals s SET chain_sha256 = cpq.run_chain_sha256(s.site, s.run_id, ${previousChain}, cpq.run_content_sha256(s.run_id, s.lines))
         WHERE s.run_id IN (SELECT run_id FROM altered)`,
      ),
    ).toEqual([runs[1]]);
    expect(await named(`UPDATE cpq.run_seals SET previous_run_id = NULL, chain_sha256 = repeat('0', 64) WHERE run_id = $1`)).toEqual([runs[1]]);
  });

  it('an ended version deleted, or a seal recomputed for altered content, is found too', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    // The third run ended the deleted user's version: removing it breaks that run's seal.
    await h.t.query(`DELETE FROM cpq.user_versions WHERE version_id = (SELECT max(version_id) FROM cpq.user_versions WHERE ended_by_run_id = $1)`, [runs[2]]);
    expect((await verifyChain(h.t.pool)).breaks.map((b) => b.runId)).toEqual([runs[2]]);

    // Resealing the altered run alone does not help: its chain hash no longer follows... unless
    // the whole chain after it is recomputed, which is why the head hash is kept elsewhere.
    await h.t.query(`UPDATE cpq.run_seals SET content_sha256 = cpq.run_content_sha256(run_id, lines) WHERE run_id = $1`, [runs[2]]);
    const report = await verifyChain(h.t.pool);
    expect(report.breaks.map((b) => b.runId)).toEqual([runs[2]]);
    expect(report.breaks[0]!.problem).toContain('chain hash does not follow');

    // A seal removed (or a run a worker of a release before seals committed) is a break of its own.
    await h.t.query(`DELETE FROM cpq.run_seals WHERE run_id = $1`, [runs.at(-1)]);
    expect((await verifyChain(h.t.pool)).breaks).toContainEqual({
      site: 'default',
      runId: runs.at(-1),
      problem: `run ${runs.at(-1)} succeeded but has no seal (removed, or committed by a worker of a release before migration 0012 left running after the upgrade)`,
    });
  });

  it("a run's completeness proof (cpq.run_company_counts) altered afterwards is found: a full read whose logins differed made to match (review FQ)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
    const runs = await history(h);
    const [full] = await h.t.query<{ company_login: string }>(
      `SELECT company_login FROM cpq.run_company_counts WHERE run_id = $1 AND mode = 'full' ORDER BY company_login LIMIT 1`,
      [runs[2]],
    );
    // What verify would print as "logins DIFFER", rewritten to "logins match"; or a count row removed.
    const forged = await verifyAfter(
      h,
      `UPDATE cpq.run_company_counts SET received = received + 1, received_checksum = 'ffffffffffffffff' WHERE run_id = $1 AND company_login = $2`,
      [runs[2], full!.company_login],
    );
    expect(forged.breaks.map((b) => [b.runId, b.problem])).toEqual([[runs[2], expect.stringContaining('no longer matches its seal')]]);
    const removed = await verifyAfter(h, `DELETE FROM cpq.run_company_counts WHERE run_id = $1`, [runs[0]]);
    expect(removed.breaks.map((b) => b.runId)).toEqual([runs[0]]);
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  });

  it('seals made before migration 0032 (lines 1, without the counts), before 0033 (lines 2) and before 0040 (lines 3) still verify; a seal set back to older lines is found (reviews FQ, FS)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
    const runs = await history(h);
    const seals = await h.t.query<{ lines: number }>(`SELECT lines FROM cpq.run_seals ORDER BY run_id`);
    expect(seals.map((s) => s.lines)).toEqual([4, 4, 4]);
    // Each seal set back to what an older release stored: the content of its lines, and the chain
    // over it (in run order, so that each seal's chain follows from the one just rewritten).
    for (const lines of [1, 2, 3]) {
      const client = await h.t.pool.connect();
      try {
        await client.query('BEGIN');
        for (const run of runs) {
          await client.query(
            `UPDATE cpq.run_seals s SET lines = $2, content_sha256 = cpq.run_content_sha256(s.run_id, $2::smallint),
               chain_sha256 = cpq.run_chain_sha256(s.site, s.run_id, (SELECT p.chain_sha256 FROM cpq.run_seals p WHERE p.run_id = s.previous_run_id), cpq.run_content_sha256(s.run_id, $2::smallint))
             WHERE s.run_id = $1`,
            [run, lines],
          );
        }
        const old = await verifyChain(client);
        expect(old.breaks).toEqual([]);
        expect(old.sites.map((s) => s.runs)).toEqual([3]);
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
    }
    // A forger cannot move a new seal to older lines to leave the counts, or the nulls inside a
    // row's jsonb, outside it: a run that ended versions, and the first, which ended none.
    for (const lines of [1, 2, 3]) {
      for (const run of [runs[0], runs[1]]) {
        const downgraded = await verifyAfter(h, `UPDATE cpq.run_seals SET lines = $2 WHERE run_id = $1`, [run, lines]);
        expect(downgraded.breaks.map((b) => b.runId)).toEqual([run]);
      }
    }
  });

  it("a null added or removed inside a sealed row's jsonb (a version's raw, a group change's diff), or a change's diff set from SQL NULL to JSON null, is found (review FS)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 });
    await h.sync();
    const [a, b] = logins(h);
    // A custom field holding a nested null, kept in raw; the next runs end the version holding it.
    h.sim.updateUser('_host', a!, { lastName: 'Second', customNote: { reason: null, code: 1 } });
    h.sim.addGroup('_host', b!, { variableName: 'auditors', label: 'Auditors', type: 'Administrator' });
    await h.sync();
    h.sim.updateUser('_host', a!, { lastName: 'Third' });
    await h.sync();
    const runs = (await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY sync_runs.id`)).map((r) => r.id);
    const [version] = await h.t.query<{ version_id: string; note: unknown }>(
      `SELECT version_id::text, raw -> 'customNote' AS note FROM cpq.user_versions WHERE ended_by_run_id = $1 AND raw ? 'customNote'`,
      [runs[2]],
    );
    expect(version!.note).toEqual({ reason: null, code: 1 });
    const [groupChange] = await h.t.query<{ id: string; run_id: string }>(
      `SELECT id::text, run_id::text FROM cpq.group_changes ORDER BY group_changes.id LIMIT 1`,
    );
    const [insert] = await h.t.query<{ id: string }>(
      `SELECT id::text FROM cpq.user_change_log WHERE run_id = $1 AND change = 'insert' AND diff IS NULL ORDER BY user_change_log.id LIMIT 1`,
      [runs[0]],
    );
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);

    const namedAfter = async (statement: string, params: unknown[]) =>
      (await verifyAfter(h, statement, params)).breaks.map((x) => [x.runId, x.problem.includes('no longer matches its seal')]);
    const inRaw = (set: string) => `UPDATE cpq.user_versions SET raw = ${set} WHERE version_id = $1`;
    expect(await namedAfter(inRaw(`raw #- '{customNote,reason}'`), [version!.version_id])).toEqual([[runs[2], true]]);
    expect(await namedAfter(inRaw(`jsonb_set(raw, '{customNote,since}', 'null')`), [version!.version_id])).toEqual([[runs[2], true]]);
    expect(await namedAfter(inRaw(`raw || '{"customAttr7": null}'`), [version!.version_id])).toEqual([[runs[2], true]]);
    expect(await namedAfter(`UPDATE cpq.group_changes SET diff = diff || '{"note": null}' WHERE id = $1`, [groupChange!.id])).toEqual([
      [groupChange!.run_id, true],
    ]);
    expect(await namedAfter(`UPDATE cpq.user_change_log SET diff = 'null' WHERE id = $1`, [insert!.id])).toEqual([[runs[0], true]]);
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  });

  it('sealing or verifying a run computes its content hash once, and sealing again gives the same seal', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const last = runs.at(-1)!;
    const [sealed] = await h.t.query<{ chain_sha256: string }>(`SELECT chain_sha256 FROM cpq.run_seals WHERE run_id = $1`, [last]);
    const client = await h.t.pool.connect();
    try {
      await client.query('BEGIN');
      // track_functions counts this transaction's calls of a function that is not inlined, which
      // run_lines4_sha256 (a SQL function with SET clauses) never is.
      await client.query(`SET LOCAL track_functions = 'all'`);
      await client.query('DELETE FROM cpq.run_seals WHERE run_id = $1', [last]);
      expect(await sealRun(client, 'default', last)).toBe(sealed!.chain_sha256);
      expect(await contentHashCalls(client)).toBe(1);
      // Verifying recomputes each sealed run's content once too.
      const checks = await readSealChecks(client);
      expect(checks.map((c) => c.content_now)).toEqual(checks.map((c) => c.content_sha256));
      expect(await contentHashCalls(client)).toBe(1 + runs.length);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('a failed run is not sealed and leaves the chain intact', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 0 });
    await runsWithOneFailed(h);
    const seals = await h.t.query<{ run_id: string; previous_run_id: string | null }>(
      `SELECT run_id::text, previous_run_id::text FROM cpq.run_seals ORDER BY run_seals.run_id`,
    );
    expect(seals).toHaveLength(2);
    expect(seals[1]!.previous_run_id).toBe(seals[0]!.run_id);
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  });

  it('history rows added afterwards under a run that did not succeed (which no seal covers) are found: an ended membership, a change row', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 0 });
    await runsWithOneFailed(h);
    const [failed] = await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'failed'`);
    const [user] = await h.t.query<{ id: string; login: string }>(`SELECT id::text, login FROM cpq.users ORDER BY users.id LIMIT 1`);
    // Review R's forgery: someone puts a user in an admin group for a while, and logs it, under the failed run's id.
    const forgeries = [
      `INSERT INTO cpq.user_group_versions (user_id, group_variable_name, added_at, valid_to, ended_by_run_id, site)
       VALUES (${user!.id}, 'adminAccessGroupsOnly', now() - interval '2 days', now() - interval '1 day', ${failed!.id}, 'default')`,
      `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
       VALUES (${failed!.id}, ${user!.id}, '_host', '${user!.login}', 'update', '{"is_user_admin_perm_enabled": {"old": false, "new": true}}', 'default', now())`,
    ];
    for (const forgery of forgeries) {
      expect((await verifyAfter(h, forgery)).breaks, forgery).toEqual([
        {
          site: 'default',
          runId: failed!.id,
          problem: `run ${failed!.id} failed, yet change-log rows or ended versions name it: they were added afterwards, outside any seal`,
        },
      ]);
    }
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  });

  it('a run older than the first seal, recorded failed, whose rows are named is still a break, saying a release before seals could have recorded it so (review X, then Z)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 0 });
    const { failed, user } = await failedFirstRun(h);
    // A forger's rows under a failed first run, or a release before seals that recorded it failed
    // after its commit went through: verify cannot tell, so it names it, with both readings.
    await logUpdateUnder(h, failed.id, user, '{"last_name": {"old": "A", "new": "B"}}', 'now()');
    const expected = {
      site: 'default',
      runId: failed.id,
      problem:
        `run ${failed.id} failed, yet change-log rows or ended versions name it: they were added afterwards, outside any seal` +
        ' (or, if it started before migration 0012 was applied, by a release before seals that recorded it failed after its commit went through)',
    };
    // With every seal removed too: still named (review Z).
    await expectNamedWithAndWithoutSeals(h, expected);
  });

  it('a failed run older than the first seal, recorded succeeded afterwards with rows added under it, is a break: it started after migration 0012, so a release that seals ran it (review FQ)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 0 });
    const { unsealed } = await failedRunMadeSucceeded(h);
    // A site none of whose runs has a seal is held to the same.
    await expectNamedWithAndWithoutSeals(h, unsealed);
  });

  it("a failed run recorded succeeded with rows added under it, its seal filed under another site's name, is named under both sites (review HH)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 0 });
    const { failed, unsealed } = await failedRunMadeSucceeded(h);
    // A seal that matches what the run holds, and chains as the first of a site 'ghost'.
    await h.t.query(
      `INSERT INTO cpq.run_seals (run_id, site, previous_run_id, content_sha256, chain_sha256, lines)
       SELECT $1::bigint, 'ghost', NULL, c, cpq.run_chain_sha256('ghost', $1::bigint, NULL, c), 4 FROM cpq.run_content_sha256($1::bigint, 4::smallint) AS c`,
      [failed.id],
    );
    const misfiled = {
      site: 'ghost',
      runId: failed.id,
      problem: `run ${failed.id}'s seal is filed under this site, but run ${failed.id} is a run of site default: a seal was moved or made for it`,
    };
    expect((await verifyChain(h.t.pool, ['default'])).breaks).toEqual([unsealed]);
    expect((await verifyChain(h.t.pool, ['ghost'])).breaks).toEqual([misfiled]);
    expect((await verifyChain(h.t.pool)).breaks).toEqual([unsealed, misfiled]);
  });

  it("an ended version or group change of a site under another site's run is found by a verify of that site alone (--site), as a change row is (review FQ)", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
    const runs = await history(h);
    const [other] = await h.t.query<{ id: string }>(`INSERT INTO cpq.sync_runs (site, mode, status) VALUES ('elsewhere', 'full', 'failed') RETURNING id::text`);
    // A copy of an ended version, back-dated by a year, ended by the other site's run: the as-of
    // functions of site default show it, and no seal of site default reads it.
    const copyVersion = `INSERT INTO cpq.user_versions OVERRIDING SYSTEM VALUE
       SELECT (jsonb_populate_record(NULL::cpq.user_versions, to_jsonb(v) || jsonb_build_object(
         'version_id', (SELECT max(version_id) + 1 FROM cpq.user_versions), 'ended_by_run_id', $1::bigint,
         'valid_from', v.valid_from - interval '1 year', 'valid_to', v.valid_from - interval '300 days'))).*
       FROM cpq.user_versions v WHERE v.ended_by_run_id = $2 LIMIT 1`;
    const forged = await verifyAfter(h, copyVersion, [other!.id, runs[2]]);
    expect(forged.breaks).toContainEqual({
      site: 'default',
      runId: other!.id,
      problem: `ended versions or group changes name run ${other!.id}, which is no run of this site: they were added, outside any seal`,
    });
    const groupChange = await verifyAfter(
      h,
      `INSERT INTO cpq.group_changes OVERRIDING SYSTEM VALUE
       SELECT (jsonb_populate_record(NULL::cpq.group_changes, to_jsonb(g) || jsonb_build_object('id', (SELECT max(id) + 1 FROM cpq.group_changes), 'run_id', $1::bigint))).*
       FROM cpq.group_changes g LIMIT 1`,
      [other!.id],
    );
    expect(groupChange.breaks.map((b) => [b.site, b.runId])).toContainEqual(['default', other!.id]);
    // What verify --chain --site default reads: the same.
    const client = await h.t.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(copyVersion, [other!.id, runs[2]]);
      expect((await verifyChain(client, ['default'])).breaks.map((b) => [b.site, b.runId])).toEqual([['default', other!.id]]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
    expect((await verifyChain(h.t.pool, ['default'])).breaks).toEqual([]);
  });

  it("a change row naming a run that does not exist, or another site's, is found; a run recorded failed after its commit, seal included, is left to its seal", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 0 });
    await h.sync();
    const [user] = await h.t.query<{ id: string; login: string }>(`SELECT id::text, login FROM cpq.users ORDER BY users.id LIMIT 1`);
    const forged = await verifyAfter(
      h,
      `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
       VALUES (999999, $1, '_host', $2, 'update', '{"is_user_admin_perm_enabled": {"old": false, "new": true}}', 'default', '2025-06-01')`,
      [user!.id, user!.login],
    );
    expect(forged.breaks).toEqual([
      { site: 'default', runId: '999999', problem: 'change-log rows name run 999999, which is no run of this site: they were added, outside any seal' },
    ]);
    // Another site's run: that site's seal reads its rows by run id, and so would call the other site broken.
    const [run] = await h.t.query<{ id: string }>(`SELECT max(id)::text AS id FROM cpq.sync_runs`);
    const otherSite = await verifyAfter(
      h,
      `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
       VALUES ($1, $2, '_host', $3, 'delete', '{}', 'elsewhere', now())`,
      [run!.id, user!.id, user!.login],
    );
    expect(otherSite.breaks).toContainEqual({
      site: 'elsewhere',
      runId: run!.id,
      problem: `change-log rows name run ${run!.id}, which is no run of this site: they were added, outside any seal`,
    });
    // Releases before 265adc1 could record as failed a run whose commit (and seal) reached the database.
    await h.t.query(`UPDATE cpq.sync_runs SET status = 'failed' WHERE id = (SELECT max(run_id) FROM cpq.run_seals)`);
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  });
});
