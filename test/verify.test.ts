import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { readLatestCompanyCounts } from '../src/db/sql/read-proofs.js';
import { loadConfig, siteCpqUrl, withCpq } from '../src/config.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { runSync } from '../src/sync/run.js';
import { countsExitCode, formatCounts, verifySite } from '../src/sync/verify.js';
import { WorkerMetrics } from '../src/worker/metrics.js';
import { CliProcess } from './helpers/cli-process.js';
import { it, type Harness } from './helpers/harness.js';
import { scriptRequests } from './helpers/scripted-pages.js';

interface CountRow {
  company_login: string;
  mode: string;
  total_results: string | null;
  received: string;
  received_checksum: string;
  active_rows: string;
  active_checksum: string;
  active_source: string;
}

const countsOf = (h: Harness, runId: string) =>
  h.t.query<CountRow>(
    `SELECT company_login, mode, total_results::text, received::text, received_checksum, active_rows::text, active_checksum, active_source
     FROM cpq.run_company_counts WHERE run_id = $1 ORDER BY company_login`,
    [runId],
  );

const cli = (args: string[], env: Record<string, string>) => new CliProcess(args, env).exited;

describe('proof of completeness', () => {
  it('each run records, per company, what CPQ reported, what it received and what the database holds, with login checksums', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 9, partnerCompanies: 2, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    const first = await h.sync();
    const companies = h.sim.companyLogins();
    const full = await countsOf(h, first.runId);
    expect(full.map((c) => c.company_login)).toEqual([...companies].sort());
    for (const c of full) {
      const n = String(h.sim.users(c.company_login).length);
      expect(c).toMatchObject({ mode: 'full', total_results: n, received: n, active_rows: n, active_source: 'table' });
      expect(c.received_checksum).toBe(c.active_checksum);
    }
    // Checksums tell companies apart (different logins), so an equal pair is not a coincidence of the function.
    expect(new Set(full.map((c) => c.active_checksum)).size).toBe(full.length);

    // An incremental run receives the changed users only; the database still holds all, and its
    // active counts are carried forward by the change log (new and restored users), equal to a count of the table.
    const [a] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', a!, { lastName: 'Changed' });
    const second = await h.sync();
    const host = (await countsOf(h, second.runId)).find((c) => c.company_login === '_host')!;
    expect(host.active_source).toBe('change_log');
    // The window (cursor less SYNC_LOOKBACK) holds the changed user and those last modified near the cursor.
    expect(host).toMatchObject({ mode: 'incremental', total_results: host.received, active_rows: '9' });
    expect(Number(host.received)).toBeGreaterThanOrEqual(1);
    expect(Number(host.received)).toBeLessThan(9);
    expect(host.active_checksum).toBe(full.find((c) => c.company_login === '_host')!.active_checksum);
    expect(host.received_checksum).not.toBe(host.active_checksum);

    const partner = companies.find((c) => c !== '_host')!;
    const [gone] = h.sim.users(partner).map((u) => String(u.login));
    h.sim.deleteUser(partner, gone!);
    await h.sync({ full: true });
    h.sim.addUser(partner, { login: gone }); // back in CPQ: restored
    h.sim.addUser('_host', { login: 'newcomer' });
    const third = await h.sync();
    const table = await h.t.query<{ company_login: string; n: string; checksum: string }>(
      `SELECT company_login, count(*)::text AS n, cpq.login_checksum(sum(cpq.login_hash(login))) AS checksum FROM cpq.users WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 1`,
    );
    const carried = await countsOf(h, third.runId);
    expect(carried.map((c) => [c.company_login, c.active_source, c.active_rows, c.active_checksum])).toEqual(
      table.map((t) => [t.company_login, 'change_log', t.n, t.checksum]),
    );
    expect(carried.find((c) => c.company_login === '_host')!.active_rows).toBe('10');
    expect(carried.find((c) => c.company_login === partner)!.active_rows).toBe('9');
    const changes = await h.t.query<{ change: string }>(`SELECT change FROM cpq.user_change_log WHERE run_id = $1 AND change <> 'update' ORDER BY change`, [
      third.runId,
    ]);
    expect(changes.map((c) => c.change)).toEqual(['insert', 'restore']);
  });

  it('verify compares CPQ now with the database: equal, then a user CPQ deleted and one it added since the last run', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 6, partnerCompanies: 1, integrationUsers: 0 }, { CPQ_COMPANIES: '*' });
    await h.sync();
    const site = h.config.sites[0]!;
    const ok = await verifySite(site, h.t.pool, h.log);
    expect(ok.map((c) => [c.company, c.cpq, c.database, c.ok])).toEqual(h.sim.companyLogins().map((c) => [c, 6, 6, true]));
    expect(ok.every((c) => c.lastFullRead?.checksumsEqual === true && c.lastFullRead.received === 6)).toBe(true);
    expect(countsExitCode(ok)).toBe(0);

    const [gone] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.deleteUser('_host', gone!);
    const partner = h.sim.companyLogins().find((c) => c !== '_host')!;
    h.sim.addUser(partner, { login: 'newcomer' });
    h.sim.addUser(partner, { login: 'newcomer2' });
    const differ = await verifySite(site, h.t.pool, h.log);
    expect(differ.map((c) => [c.company, c.cpq, c.database, c.ok])).toEqual([
      ['_host', 5, 6, false],
      [partner, 8, 6, false],
    ]);
    expect(countsExitCode(differ)).toBe(1);

    // The next full run catches up, and verify agrees again.
    await h.sync({ full: true });
    expect(countsExitCode(await verifySite(site, h.t.pool, h.log))).toBe(0);

    // Prometheus: both counts per company, from the database at scrape time.
    const metrics = new WorkerMetrics({ sites: ['default'], processMetrics: false, companyCounts: () => readLatestCompanyCounts(h.t.pool) });
    const text = await metrics.text();
    expect(text).toContain('cpq_sync_company_users{site="default",company="_host",source="cpq"} 5');
    expect(text).toContain('cpq_sync_company_users{site="default",company="_host",source="database"} 5');
    expect(text).toContain(`cpq_sync_company_users{site="default",company="${partner}",source="cpq"} 8`);
  });

  it('a company whose count CPQ does not report is no match, and one company unmatched is exit code 1 though another matches (review EK)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 3, integrationUsers: 0 }, { CPQ_COMPANIES: '_host,partner1' });
    await h.sync();
    scriptRequests(h.sim, async (req) => {
      if (req.path.endsWith('/_host/users')) req.reply((await req.realAnswer({ ...req.query, totalResults: 'false' })).body);
    });
    const checks = await verifySite(h.config.sites[0]!, h.t.pool, h.log);
    expect(checks.map((c) => [c.company, c.cpq, c.database, c.ok])).toEqual([
      ['_host', undefined, 3, false],
      ['partner1', 3, 3, true],
    ]);
    expect(countsExitCode(checks)).toBe(1);
  });

  it('a narrowed CPQ_COMPANIES: verify checks the companies it no longer names, marked so, and each run warns of them (review IL)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 4, partnerCompanies: 2, integrationUsers: 2 }, { CPQ_COMPANIES: '*' });
    const first = await h.sync();
    const [p1, p2] = h.sim.companyLogins().filter((c) => c !== '_host') as [string, string];
    // The list narrowed to the host: a full run reads it alone, and says what it leaves as it was.
    const narrowed = await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { companies: ['_host'] }), log: h.log }, { full: true });
    expect(narrowed.warnings).toEqual([
      `the database holds users of 2 companies CPQ_COMPANIES does not name ("${p1}", "${p2}"): no run reads them, so their users stay as last read (cpq.users.last_synced_at says when) and \`cpq-sync verify\` compares them with CPQ; to read them again, name them in CPQ_COMPANIES (no command drops the users of a company CPQ still has; a full run with CPQ_COMPANIES=* marks deleted those of a company CPQ no longer has)`,
    ]);
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_COMPANIES: '_host' };
    // CPQ agrees with the rows as run 1 left them: a match, each such company marked as read by no run since.
    const same = await cli(['verify'], env);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(new RegExp(`\\n${p1}\\s+4\\s+4\\s+0\\s+[0-9a-f]{16}\\s+run ${first.runId}: 4 received, logins match\\s+ok\\n`));
    expect(same.stdout).toContain('\nevery company matches (3)\n');
    for (const p of [p1, p2])
      expect(same.stdout).toMatch(
        new RegExp(
          `\\n${p}: not in CPQ_COMPANIES, no run reads it: its 4 users in the database are as run ${first.runId} last read them \\(the latest confirmed at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\)\\n`,
        ),
      );
    expect(same.stdout).not.toMatch(/\n_host: not in/);
    // A user CPQ deleted since, and a company gone from CPQ (its users 404): both differ, exit code 1.
    h.sim.deleteUser(p1, String(h.sim.users(p1)[0]!.login));
    scriptRequests(h.sim, async (req) => {
      if (req.path.includes(`/companies/${p2}/`)) req.reply(JSON.stringify({ title: 'Not Found', status: 404 }), { status: 404 });
    });
    const differs = await cli(['verify'], env);
    expect(differs.code).toBe(1);
    expect(differs.stdout).toMatch(new RegExp(`\\n${p1}\\s+3\\s+4\\s+1\\s+.*DIFFERENT\\n${p2}\\s+0\\s+4\\s+4\\s+.*DIFFERENT\\n\\n2 of 3 companies differ\\n`));
    // A list naming one of them again: the warning names the other alone.
    const named = await runSync({ pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { companies: ['_host', p1] }), log: h.log });
    expect(named.warnings).toEqual([
      `the database holds users of 1 company CPQ_COMPANIES does not name ("${p2}"): no run reads it, so their users stay as last read (cpq.users.last_synced_at says when) and \`cpq-sync verify\` compares it with CPQ; to read it again, name it in CPQ_COMPANIES (no command drops the users of a company CPQ still has; a full run with CPQ_COMPANIES=* marks deleted those of a company CPQ no longer has)`,
    ]);
  });

  it("refuses a base URL naming another CPQ than the site's rows came from, and a count said twice differently (review CD)", async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 });
    await h.sync();
    const other = new CpqSimulator({ seed: 5, usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 });
    const otherUrl = await other.start();
    try {
      const elsewhere = loadConfig({ CPQ_BASE_URL: otherUrl, DATABASE_URL: h.t.url }).sites[0]!;
      await expect(verifySite(elsewhere, h.t.pool, h.log)).rejects.toThrow(
        `site default was synced from ${siteCpqUrl(h.sim.baseUrl)}, and its base URL and path prefix (CPQ_BASE_URL and CPQ_PATH_PREFIX, or its baseUrl and pathPrefix in CPQ_SITES_FILE) now name ${siteCpqUrl(otherUrl)}: its counts would be compared with another CPQ's`,
      );
      expect(other.requests).toHaveLength(0);
    } finally {
      await other.stop();
    }
    // The count read as a page is: the last of two totalResults is not taken.
    scriptRequests(h.sim, async (req) => {
      if (req.query.totalResults === 'true') req.reply((await req.real()).replace(/\}$/, ',"totalResults":999}'));
    });
    await expect(verifySite(h.config.sites[0]!, h.t.pool, h.log)).rejects.toThrow(/says totalResults twice, differently/);
  });

  it('the CLI: verify prints a table and exits 1 on a difference; --chain and --file exit 0 when intact, 1 when not', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 4, partnerCompanies: 0, integrationUsers: 0 });
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    await h.sync();
    const equal = await cli(['verify'], env);
    expect(equal.code).toBe(0);
    expect(equal.stdout).toMatch(/^site default\ncompany\s+CPQ now\s+database\s+difference/);
    expect(equal.stdout).toMatch(/\n_host\s+4\s+4\s+0\s+[0-9a-f]{16}\s+run \d+: 4 received, logins match\s+ok\n/);
    h.sim.deleteUser('_host', String(h.sim.users('_host')[0]!.login));
    const differs = await cli(['verify'], env);
    expect(differs.code).toBe(1);
    expect(differs.stdout).toMatch(/\n_host\s+3\s+4\s+1\s+.*DIFFERENT\n\n1 of 1 companies differ\n/);
    // CPQ not answering is no difference but run's failure, with run's exit code (3) and one line.
    h.sim.addFault({ match: { path: /./ }, times: Infinity, status: 503, body: 'Down for maintenance' });
    const away = await cli(['verify'], { ...env, CPQ_MAX_RETRIES: '0' });
    h.sim.clearFaults();
    expect({ code: away.code, stdout: away.stdout }).toEqual({ code: 3, stdout: '' });
    expect(away.stderr).toMatch(/^cpq-sync: [^\n]*503[^\n]*\n$/);

    const chain = await cli(['verify', '--chain'], env);
    expect(chain.stdout).toMatch(/^site default: 1 sealed run, chain head [0-9a-f]{64}\nevery seal matches what its run committed\n$/);
    expect(chain.code).toBe(0);
    await h.t.query(`UPDATE cpq.user_change_log SET login = 'someone-else' WHERE id = (SELECT min(id) FROM cpq.user_change_log)`);
    const broken = await cli(['verify', '--chain'], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(
      /^site default: 1 sealed run, chain BROKEN \(below\): its head [0-9a-f]{64} is not one to keep\nsite default: BROKEN at run \d+: /,
    );
    // --site: only the sites named, and a site this database does not know is refused.
    expect(await cli(['verify', '--chain', '--site', 'default'], env)).toMatchObject({ code: 1, stdout: expect.stringContaining('BROKEN at run') as unknown });
    const unknown = await cli(['verify', '--chain', '--site', 'nosuch'], env);
    expect({ code: unknown.code, stderr: unknown.stderr }).toEqual({
      code: 2,
      stderr: 'cpq-sync: --site: no site named "nosuch" has run against this database (sites: default)\n',
    });

    // Export files and their manifests.
    const dir = await mkdtemp(join(tmpdir(), 'cpq-verify-'));
    const snapshot = join(dir, 'snapshot.csv');
    expect((await cli(['snapshot', '--out', snapshot], env)).code).toBe(0);
    const manifest = JSON.parse(await readFile(`${snapshot}.manifest.json`, 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ manifest: 'cpq-sync export manifest v1', file: 'snapshot.csv', kind: 'snapshot', format: 'csv', rows: 4 });
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    const changes = join(dir, 'changes.jsonl');
    const exported = await cli(['changes', '--after', '0', '--out', changes], env);
    expect(exported.code).toBe(0);
    expect(exported.stderr).toContain('watermark: 1');
    expect(JSON.parse(await readFile(`${changes}.manifest.json`, 'utf8'))).toMatchObject({ kind: 'changes', rows: 4, watermark: '1', from: { after: '0' } });
    for (const file of [snapshot, changes]) {
      const intact = await cli(['verify', '--file', file], {});
      expect(intact.stdout).toMatch(/: matches its manifest \(4 rows, SHA-256 [0-9a-f]{64}\)\n$/);
      expect(intact.code).toBe(0);
    }
    const text = await readFile(changes, 'utf8');
    await writeFile(changes, text.replace('"insert"', '"delete"'));
    const altered = await cli(['verify', '--file', changes], {});
    expect(altered.code).toBe(1);
    expect(altered.stdout).toMatch(/DIFFERS: SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}\n$/);
    // Nothing to check it against is no mismatch: an error, exit code 2, one line on stderr (review DB: "DIFFERS", exit code 1).
    const nothing = join(dir, 'nothing.csv');
    const missing = await cli(['verify', '--file', nothing], {});
    expect({ code: missing.code, stdout: missing.stdout, stderr: missing.stderr }).toEqual({
      code: 2,
      stdout: '',
      stderr: `cpq-sync: cannot check ${nothing}: ${nothing}.manifest.json does not exist: the file has no manifest to check it against\n`,
    });
    // --file checks the file alone: with --chain or --site, which it would not do, it is refused.
    const combined = await cli(['verify', '--file', snapshot, '--chain'], {});
    expect({ code: combined.code, stderr: combined.stderr }).toEqual({
      code: 2,
      stderr: 'cpq-sync: --file checks an export file against its manifest alone: --chain and --site do not apply\n',
    });
  });
  it('verify finds users changed in cpq.users outside a run: a login swapped, a user marked deleted and one added, where the counts still agree (review FQ)', async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 5, partnerCompanies: 1, integrationUsers: 2 }, { CPQ_COMPANIES: '*' });
    await h.sync();
    const site = h.config.sites[0]!;
    // Runs that change users since the last count keep verify ok: an incremental run adding one,
    // and a full run deleting one (both carried by the change log after the latest counts).
    h.sim.addUser('_host', { login: 'newcomer' });
    await h.sync();
    h.sim.deleteUser('_host', 'newcomer');
    await h.sync({ full: true });
    const honest = await verifySite(site, h.t.pool, h.log);
    // _host holds the 2 integration users besides its 5.
    expect(honest.map((c) => [c.company, c.cpq, c.database, c.ok])).toEqual(
      h.sim.companyLogins().map((c) => [c, c === '_host' ? 7 : 5, c === '_host' ? 7 : 5, true]),
    );
    expect(formatCounts('default', honest)).toContain('every company matches (2)');

    // An insider renames a user in cpq.users: CPQ and the database both count 7, and the last full
    // read's logins matched, yet the database holds a login CPQ does not and lacks one it has.
    const [alice] = h.sim.users('_host').map((u) => String(u.login));
    await h.t.query(`UPDATE cpq.users SET login = 'mallory' WHERE site = 'default' AND company_login = '_host' AND login = $1`, [alice]);
    const swapped = await verifySite(site, h.t.pool, h.log);
    const host = swapped.find((c) => c.company === '_host')!;
    expect([host.cpq, host.database, host.lastFullRead?.checksumsEqual, host.ok]).toEqual([7, 7, true, false]);
    expect(countsExitCode(swapped)).toBe(1);
    const text = formatCounts('default', swapped);
    expect(text).toMatch(/\n_host\s+7\s+7\s+0\s+[0-9a-f]{16}\s+run \d+: 7 received, logins match\s+NOT AS LOGGED\n/);
    expect(text).toMatch(
      /\n_host: the database holds 7 users, checksum [0-9a-f]{16}; its change log since run \d+ says 7, checksum [0-9a-f]{16}: cpq.users was changed outside a run\n/,
    );

    // Undone, and instead one user marked deleted and another added by SQL on the partner company.
    await h.t.query(`UPDATE cpq.users SET login = $1 WHERE login = 'mallory'`, [alice]);
    const partner = h.sim.companyLogins().find((c) => c !== '_host')!;
    await h.t.query(`UPDATE cpq.users SET deleted_at = now() WHERE id = (SELECT min(id) FROM cpq.users WHERE company_login = $1)`, [partner]);
    await h.t.query(
      `INSERT INTO cpq.users (site, company_login, login, is_integration_user, raw, content_hash, first_seen_at, last_synced_at, last_changed_at, valid_from)
       VALUES ('default', $1, 'planted', false, '{}', 'x', now(), now(), now(), now())`,
      [partner],
    );
    const planted = await verifySite(site, h.t.pool, h.log);
    expect(planted.map((c) => [c.company, c.cpq, c.database, c.ok])).toEqual([
      ['_host', 7, 7, true],
      [partner, 5, 5, false],
    ]);
  });
});
