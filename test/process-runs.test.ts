import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { processRuns } from '../src/process-runs.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('processRuns', () => {
  it('a running process runs; one that ended but is not reaped (a zombie) does not; nor does an id no process has', async () => {
    // `sh` starts a short sleep in the background, prints its id, then becomes a long sleep, which
    // never reaps its children: the short one ends as a zombie, as an orphan does under a PID 1 that does not reap.
    const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const child = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
      expect(processRuns(child), 'the short sleep while it sleeps').toBe(true);
      expect(processRuns(parent.pid!), 'the long sleep').toBe(true);
      await sleep(600);
      expect(processRuns(child), 'the short sleep once ended, unreaped').toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
    await new Promise((r) => parent.once('exit', r));
    expect(processRuns(parent.pid!), 'a process reaped').toBe(false);
  });
});
