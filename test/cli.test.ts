import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

const BIN = fileURLToPath(new URL('../bin/cpq-sync.js', import.meta.url));

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would, with only the given environment (plus PATH). */
function cli(args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('cpq-sync CLI', () => {
  it('run: syncs and exits 0, logging JSON lines with a page line and a summary', async () => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 0 });
    const out = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l.msg === 'page read' && l.stream === 'companies/_host')).toBe(true);
    expect(lines.find((l) => l.msg === 'sync run succeeded')).toMatchObject({ inserted: 7 });
    const rows = await h.t.query(`SELECT 1 FROM cpq.users`);
    expect(rows).toHaveLength(7);
  });

  it('exit code 2 and one line naming the variable for bad configuration', async () => {
    const out = await cli(['run'], { CPQ_BASE_URL: 'https://x.example.com', CPQ_PAGE_SIZE: 'lots', DATABASE_URL: 'postgres://127.0.0.1:1/none' });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/^cpq-sync: invalid configuration: CPQ_PAGE_SIZE: "lots" is not a whole number from 1 to 1000\n$/);
  });

  it('exit code 4 when CPQ refuses the credentials, without printing them', async () => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, auth: { basic: { username: 'u', password: 'right' } } });
    const out = await cli(['run'], { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, CPQ_USERNAME: 'u', CPQ_PASSWORD: 'wrong-secret-value' });
    expect(out.code).toBe(4);
    expect(out.stderr).toMatch(/^cpq-sync: GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users\?\S+: CPQ refused the credentials \(401\)/);
    expect(out.stdout + out.stderr).not.toContain('wrong-secret-value');
  });

  it('exit code 6 when the database is unreachable', async () => {
    const out = await cli(['run'], { CPQ_BASE_URL: 'http://127.0.0.1:9', DATABASE_URL: 'postgres://sync:pw-not-shown@127.0.0.1:1/none' });
    expect(out.code).toBe(6);
    expect(out.stderr).toMatch(/cannot connect to Postgres at postgres:\/\/sync:\*\*\*@127\.0\.0\.1:1\/none/);
    expect(out.stderr).not.toContain('pw-not-shown');
  });

  it('migrate: applies migrations to an empty database and reports it', async () => {
    h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1 });
    await h.t.query('DROP SCHEMA cpq CASCADE');
    const out = await cli(['migrate'], { DATABASE_URL: h.t.url });
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/"applied":\["0001_initial","0002_history"\]/);
  });
});
