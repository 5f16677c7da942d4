import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarizeProfile } from '../bench/profile-summary.js';

const run = promisify(execFile);

// A script that spins in one named function, then waits (idle samples), then exits the way the
// CLI does (process.exit). Compiled with a source map, as the repo's dist is: the summary should
// name the TypeScript line of the function (line 3 here), not the compiled one.
const SOURCE = `const seconds = (ms: number): number => ms / 1000;

function spinOnSquareRoots(until: number): number {
  let sum = 0;
  while (performance.now() < until) for (let i = 0; i < 10_000; i++) sum += Math.sqrt(i);
  return sum;
}

const sum = spinOnSquareRoots(performance.now() + 400);
setTimeout(() => {
  console.log(seconds(sum) > 0);
  process.exit(0);
}, 300);
`;

describe('bench profile summary', () => {
  let dir: string;
  let profile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'profile-summary-'));
    const out = ts.transpileModule(SOURCE, {
      fileName: 'busy.ts',
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: true },
    });
    await writeFile(join(dir, 'busy.mjs'), out.outputText.replace(/\/\/# sourceMappingURL=.*$/m, '//# sourceMappingURL=busy.mjs.map'));
    await writeFile(join(dir, 'busy.mjs.map'), out.sourceMapText!);
    await run(process.execPath, ['--cpu-prof', '--cpu-prof-dir', join(dir, 'profile'), join(dir, 'busy.mjs')], { cwd: dir });
    const files = await readdir(join(dir, 'profile'));
    expect(files).toHaveLength(1);
    profile = join(dir, 'profile', files[0]!);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the busy function first, at its line in the TypeScript source, with most of the busy samples', async () => {
    const summary = await summarizeProfile(profile, { root: dir, top: 15 });
    const [first] = summary.entries;
    expect(first?.name).toBe('spinOnSquareRoots');
    expect(first?.location).toBe('busy.ts:3');
    expect(first!.share).toBeGreaterThan(0.5);
    expect(first!.selfMs).toBeGreaterThan(200);
    expect(summary.lines[0]).toMatch(/^\s*busy\s+self ms\s+function\s+file:line$/);
    expect(summary.lines[1]).toMatch(/%\s+\d+\s+spinOnSquareRoots\s+busy\.ts:3$/);
  });

  it('leaves the idle samples out of the shares and keeps V8 own entries as lines of their own', async () => {
    const summary = await summarizeProfile(profile, { root: dir, top: 1000 });
    expect(summary.idleSamples).toBeGreaterThan(0);
    expect(summary.entries.map((e) => e.name)).not.toContain('(idle)');
    expect(summary.entries.reduce((sum, e) => sum + e.samples, 0)).toBe(summary.busySamples);
    expect(summary.entries.reduce((sum, e) => sum + e.share, 0)).toBeCloseTo(1, 6);
    expect(summary.entries.find((e) => e.name === '(program)')?.location).toBe('');
    // Node's own modules keep their node: names.
    expect(summary.entries.some((e) => e.location.startsWith('node:'))).toBe(true);
    const top3 = await summarizeProfile(profile, { root: dir, top: 3 });
    expect(top3.entries).toEqual(summary.entries.slice(0, 3));
    expect(top3.lines).toHaveLength(4);
  });

  it('refuses a file that is not a CPU profile, naming it', async () => {
    const bad = join(dir, 'not-a-profile.cpuprofile');
    await writeFile(bad, JSON.stringify({ nodes: [], samples: [1] }));
    await expect(summarizeProfile(bad, { root: dir })).rejects.toThrow(`CPU profile ${bad}: not a V8 CPU profile`);
    await writeFile(bad, '{"nodes": [');
    await expect(summarizeProfile(bad, { root: dir })).rejects.toThrow(`CPU profile ${bad}: `);
  });
});
