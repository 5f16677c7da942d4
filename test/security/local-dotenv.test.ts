import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { BIN, cli } from '../helpers/cli-process.js';
import { it } from '../helpers/harness.js';

/*
 * `.env` in the working directory is read into the environment. In a folder other local users can
 * write to, theirs set what the operator left unset: a reviewer's DATABASE_URL sent every synced
 * user to the attacker's database. One written (or writable) by someone else is refused.
 */

const NOBODY = 65534;
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function sharedFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-dotenv-'));
  await chmod(dir, 0o1777);
  dirs.push(dir);
  return dir;
}

const status = (cwd: string) => cli(['status', '--json'], {}, { cwd });

describe('.env in the working directory', () => {
  it("is read when it is this user's and not writable by others", async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const cwd = await sharedFolder();
    await writeFile(join(cwd, '.env'), `DATABASE_URL=${h.t.url}\n`, { mode: 0o600 });
    const out = await status(cwd);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ sites: [{ site: 'default' }] });
  });

  it('holding a secret, readable by its group or every user: a warning at every start and in check, naming the variables and the mode, never the value', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const cwd = await sharedFolder();
    const file = join(cwd, '.env');
    const url = new URL(h.t.url);
    url.password = url.password || 'db-secret-Zq9';
    // EMEA_PASSWORD: what a sites file's ${EMEA_PASSWORD} names (review CO: not warned of).
    await writeFile(file, `CPQ_BASE_URL=${h.sim.baseUrl}\nCPQ_USERNAME=sync\nCPQ_PASSWORD=s3cret-Xy7\nDATABASE_URL=${url.href}\nEMEA_PASSWORD=emea-Pw4\n`);
    const warning = /\.env holds CPQ_PASSWORD, DATABASE_URL, EMEA_PASSWORD and other users can read it \(mode 644\): chmod 600 it/;
    await chmod(file, 0o644);
    // A wrong database password (trust clusters take any): the warning comes before anything is tried.
    const started = await status(cwd);
    expect(started.stderr).toMatch(warning);
    const checked = await cli(['check'], { CPQ_RETRY_BASE_DELAY: '5ms' }, { cwd });
    expect(checked.stdout).toMatch(
      /! configuration {2}valid; \S*\.env holds CPQ_PASSWORD, DATABASE_URL, EMEA_PASSWORD and other users can read it \(mode 644\)/,
    );
    for (const out of [started, checked]) {
      expect(out.stdout + out.stderr).not.toContain('s3cret-Xy7');
      expect(out.stdout + out.stderr).not.toContain('emea-Pw4');
      expect(out.stdout + out.stderr).not.toContain(url.password);
    }

    await chmod(file, 0o600);
    expect((await status(cwd)).stderr).not.toMatch(/other users can read it/);
    // Readable, but no secret in it (DATABASE_URL without a password, the CPQ password in a file of its own).
    await writeFile(
      file,
      `DATABASE_URL=postgres://db.example/cpq\nCPQ_PASSWORD_FILE=/run/secrets/cpq\nCPQ_OAUTH_TOKEN_URL=https://idcs.example.com/oauth2/v1/token\n`,
    );
    await chmod(file, 0o644);
    expect((await status(cwd)).stderr).not.toMatch(/other users can read it/);
    // The socket form, whose empty host the URL standard refuses, holds a password too.
    await writeFile(file, `DATABASE_URL=postgres://sync:sock-Pw8@/cpq?host=/run/postgresql\n`);
    await chmod(file, 0o644);
    const socketForm = await status(cwd);
    expect(socketForm.stderr).toMatch(/\.env holds DATABASE_URL and other users can read it \(mode 644\)/);
    expect(socketForm.stdout + socketForm.stderr).not.toContain('sock-Pw8');
  });

  it('is refused, with one line and exit code 2, when its group or every user can write it', async () => {
    const cwd = await sharedFolder();
    const file = join(cwd, '.env');
    await writeFile(file, 'DATABASE_URL=postgres://attacker.example/db\n');
    for (const [mode, who] of [
      [0o666, 'every user'],
      [0o620, 'its group'],
    ] as const) {
      await chmod(file, mode);
      const out = await status(cwd);
      expect(out.code).toBe(2);
      expect(out.stdout).toBe('');
      expect(out.stderr).toBe(
        `cpq-sync: invalid configuration: .env can be written by ${who} (mode ${mode.toString(8)}): refusing to read it, since whoever wrote it sets the configuration (DATABASE_URL among it); make it yours and not writable by others (chown, chmod go-w)\n`,
      );
    }
  });

  it('DOTENV_CONFIG_PATH names another file, checked alike; a folder named .env (a Python virtual environment) is passed over', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const cwd = await sharedFolder();
    const file = join(cwd, 'cpq-sync.env');
    await writeFile(file, `DATABASE_URL=${h.t.url}\n`, { mode: 0o600 });
    await mkdir(join(cwd, '.env'));
    const out = await cli(['status', '--json'], { DOTENV_CONFIG_PATH: file }, { cwd });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ sites: [{ site: 'default' }] });
    await chmod(file, 0o666);
    const refused = await cli(['status', '--json'], { DOTENV_CONFIG_PATH: file }, { cwd });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^cpq-sync: invalid configuration: \S+cpq-sync\.env can be written by every user \(mode 666\): refusing to read it/);
  });

  it('DOTENV_CONFIG_PATH naming nothing, or a folder: one line saying which, in which folder, and why (review EG)', async () => {
    const cwd = await sharedFolder();
    await mkdir(join(cwd, 'conf'));
    const missing = await cli(['status'], { DOTENV_CONFIG_PATH: 'nosuch.env' }, { cwd });
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: invalid configuration: DOTENV_CONFIG_PATH: nosuch.env (in ${cwd}) does not exist\n`,
    });
    const folder = await cli(['status'], { DOTENV_CONFIG_PATH: join(cwd, 'conf') }, { cwd });
    expect({ code: folder.code, stderr: folder.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: invalid configuration: DOTENV_CONFIG_PATH: ${join(cwd, 'conf')} is a folder, not a file\n`,
    });
  });

  it('a link to a file that is not there (a secrets mount not yet made) is named as a link, with its target, not as a missing name (review EL)', async () => {
    const cwd = await sharedFolder();
    await symlink('/run/secrets/nosuch-cpq-sync.env', join(cwd, 'linked.env'));
    const named = await cli(['status'], { DOTENV_CONFIG_PATH: 'linked.env' }, { cwd });
    expect({ code: named.code, stderr: named.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: invalid configuration: DOTENV_CONFIG_PATH: linked.env (in ${cwd}) is a link to /run/secrets/nosuch-cpq-sync.env, which does not exist\n`,
    });
    await symlink('/run/secrets/nosuch-cpq-sync.env', join(cwd, '.env'));
    const unnamed = await cli(['status'], {}, { cwd });
    expect({ code: unnamed.code, stderr: unnamed.stderr }).toEqual({
      code: 2,
      stderr: `cpq-sync: invalid configuration: .env (in ${cwd}) is a link to /run/secrets/nosuch-cpq-sync.env, which does not exist\n`,
    });
  });

  it('DOTENV_KEY set for other programs stops nothing; beside an encrypted .env.vault it is refused aloud', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const cwd = await sharedFolder();
    await writeFile(join(cwd, '.env'), `DATABASE_URL=${h.t.url}\n`, { mode: 0o600 });
    expect((await cli(['status', '--json'], { DOTENV_KEY: 'dotenv://:key_1234@dotenv.org/vault/.env.vault?environment=production' }, { cwd })).code).toBe(0);
    await writeFile(join(cwd, '.env.vault'), 'DOTENV_VAULT_PRODUCTION="…"\n', { mode: 0o600 });
    const refused = await cli(['status', '--json'], { DOTENV_KEY: 'dotenv://:key_1234@dotenv.org/vault/.env.vault?environment=production' }, { cwd });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('cpq-sync: invalid configuration: DOTENV_KEY: .env.vault is encrypted, and encrypted files are not read; decrypt it to .env\n');
  });

  it('DOTENV_CONFIG_PATH may name a pipe (<(sops -d …)); DOTENV_CONFIG_OVERRIDE (true, 1, yes or on, read as every flag is) lets the file win', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    await h.sync();
    const cwd = await sharedFolder();
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(
        'bash',
        ['-c', `DOTENV_CONFIG_PATH=<(printf 'DATABASE_URL=%s\\n' "$URL") DOTENV_CONFIG_OVERRIDE=' On ' exec "$0" "$1" status --json`, process.execPath, BIN],
        {
          cwd,
          env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', URL: h.t.url, DATABASE_URL: 'postgres://127.0.0.1:1/not-this-one' },
        },
      );
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout }));
    });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ sites: [{ site: 'default' }] });
  });

  it.runIf(process.getuid?.() === 0)('(as root) is refused when another user owns it, or the file a .env link names', async () => {
    const cwd = await sharedFolder();
    const theirs = join(cwd, 'theirs.env');
    await writeFile(theirs, 'DATABASE_URL=postgres://attacker.example/db\n', { mode: 0o644 });
    await chown(theirs, NOBODY, NOBODY);
    await symlink(theirs, join(cwd, '.env'));
    const linked = await status(cwd);
    expect(linked.code).toBe(2);
    expect(linked.stderr).toMatch(
      /^cpq-sync: invalid configuration: \.env \(what the link names\) is owned by uid 65534, not by this user \(0\) or root: refusing to read it/,
    );
    await rm(join(cwd, '.env'));
    await writeFile(join(cwd, '.env'), 'DATABASE_URL=postgres://attacker.example/db\n', { mode: 0o644 });
    await chown(join(cwd, '.env'), NOBODY, NOBODY);
    const owned = await status(cwd);
    expect(owned.code).toBe(2);
    expect(owned.stderr).toMatch(/^cpq-sync: invalid configuration: \.env is owned by uid 65534, not by this user \(0\) or root: refusing to read it/);
    // Their FIFO at the path DOTENV_CONFIG_PATH names is refused at once, not waited on for a writer.
    const fifo = join(cwd, 'app.env');
    execFileSync('mkfifo', ['-m', '0600', fifo]);
    await chown(fifo, NOBODY, NOBODY);
    const piped = await cli(['status', '--json'], { DOTENV_CONFIG_PATH: fifo }, { cwd });
    expect(piped.code).toBe(2);
    expect(piped.stderr).toMatch(/app\.env is owned by uid 65534, not by this user \(0\) or root: refusing to read it/);
  });
});
