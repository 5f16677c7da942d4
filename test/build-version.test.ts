import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect } from 'vitest';
import { packageVersion } from '../src/build.js';
import { checkoutCommit } from '../src/checkout-commit.js';
import { Cleanups, cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/*
 * `--version` printed package.json's version for every build: after `git pull` and `npm ci` in
 * place, an operator could not tell which build ran, nor an auditor which build wrote a run.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const version = packageVersion();

const cleanups = new Cleanups();
afterEach(async () => {
  await cleanups.run();
});

/** A folder of its own, removed after the test. */
function folder(prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  chmodSync(dir, 0o755);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * git, as a user runs it in `dir`, with an author of its own, and none of this machine's or
 * user's configuration (a global core.hooksPath whose pre-commit hook refused the commits) nor a
 * GIT_DIR or GIT_WORK_TREE this test was run with (from a git hook).
 */
const gitEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GIT_'))),
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};
const git = async (dir: string, ...args: string[]) =>
  (
    await run('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, env: gitEnv })
  ).stdout.trim();

/** A new checkout at `dir` with one commit; its id. */
async function commitAll(dir: string): Promise<string> {
  if (!existsSync(join(dir, '.git'))) await git(dir, 'init', '-q', '-b', 'main');
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '--allow-empty', '-m', 'a commit');
  return git(dir, 'rev-parse', 'HEAD');
}

describe('--version and the run-start line name the build: the release and the commit it was built from', () => {
  it('a copy without .git prints the version alone; built in a checkout, the commit, and the same after a new commit until the next build; run and schedule log it', async ({
    startHarness,
  }) => {
    // The package as a copy without .git: its sources, built there as `npm ci` builds them.
    const app = folder('cpq-build-');
    for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', '.gitignore', 'src', 'bin', 'migrations'])
      cpSync(join(ROOT, entry), join(app, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
    const bin = join(app, 'bin', 'cpq-sync.js');
    // From another working directory: the package's own folder is read, not the one the command is run in.
    const elsewhere = folder('cpq-build-cwd-');
    const printed = async () => {
      const out = await cli(['--version'], {}, { bin, cwd: elsewhere });
      expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
      return out.stdout;
    };
    const build = () => run('npm', ['run', 'build', '--silent'], { cwd: app, timeout: 110_000 });

    await build();
    expect(await printed()).toBe(`${version}\n`);

    const built = await commitAll(app);
    await build();
    const name = `${version} (commit ${built.slice(0, 7)})`;
    expect(await printed()).toBe(`${name}\n`);

    // A `git pull` without a build: dist/ is still the code of the first commit, and says so.
    await commitAll(app);
    expect(await printed()).toBe(`${name}\n`);

    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const env = { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url };
    const once = await cli(['run'], env, { bin, cwd: elsewhere });
    expect({ code: once.code, stderr: once.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = once.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'sync run started')).toMatchObject({ build: name });

    const worker = cleanups.spawn(['schedule'], { ...env, SYNC_CRON: '*/1 * * * * *' }, { bin, cwd: elsewhere });
    expect(await worker.waitForLine((l) => l.msg === 'sync run started')).toMatchObject({ build: name });
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  }, 240_000); // two builds (tsc) on a loaded 2-core machine
});

describe('checkoutCommit: the commit checked out, read from .git as git writes it', () => {
  it('a branch as a loose ref, then packed (git pack-refs), then a detached HEAD', async () => {
    const dir = folder('cpq-checkout-');
    const first = await commitAll(dir);
    expect(checkoutCommit(dir)).toBe(first);
    await git(dir, 'pack-refs', '--all');
    expect(readdirSync(join(dir, '.git', 'refs', 'heads'))).toEqual([]);
    expect(checkoutCommit(dir)).toBe(first);
    const second = await commitAll(dir);
    await git(dir, 'checkout', '-q', '--detach', first);
    expect(checkoutCommit(dir)).toBe(first);
    await git(dir, 'checkout', '-q', 'main');
    expect(checkoutCommit(dir)).toBe(second);
  });

  it('none for a folder without .git, a branch with no commit yet, a worktree (.git a file, not followed), or a HEAD too large to be git’s', async () => {
    const dir = folder('cpq-checkout-');
    expect(checkoutCommit(dir)).toBeUndefined();
    await git(dir, 'init', '-q', '-b', 'main');
    expect(checkoutCommit(dir)).toBeUndefined();
    await commitAll(dir);
    const worktree = join(folder('cpq-worktree-'), 'tree');
    await git(dir, 'worktree', 'add', '-q', worktree);
    expect(checkoutCommit(worktree)).toBeUndefined();
    const large = join(folder('cpq-checkout-'), '.git');
    mkdirSync(large);
    writeFileSync(join(large, 'HEAD'), `${'0'.repeat(40)}\n${' '.repeat(2000)}`);
    expect(checkoutCommit(join(large, '..'))).toBeUndefined();
  });
});
