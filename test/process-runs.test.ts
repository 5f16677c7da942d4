import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { processRuns } from '../src/process-runs.js';
import { until } from './helpers/cli-process.js';

describe('processRuns', () => {
  it('a running process runs; one that ended but is not reaped (a zombie) does not; nor does an id no process has', async () => {
    // `sh` starts a sleep in the background, prints its id, then becomes a long sleep, which never
    // reaps its children: the background one, once the test kills it, ends as a zombie, as an orphan
    // does under a PID 1 that does not reap. Ended by the test, not by a short sleep of its own: a
    // `sleep 0.2` could end before a loaded machine let the test look at it running.
    const parent = spawn('sh', ['-c', 'sleep 30 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const child = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
      // The shell prints the id before it becomes the long sleep, and a shell reaps its children
      // (dash does, between builtins): killed before the exec, the background sleep was reaped and
      // left no zombie (official CI at 18c4626: ENOENT on its /proc/<pid>/stat).
      await until('the shell to become the long sleep', () => readFileSync(`/proc/${String(parent.pid)}/comm`, 'utf8') === 'sleep\n', 10_000);
      expect(processRuns(child), 'the background sleep while it sleeps').toBe(true);
      expect(processRuns(parent.pid!), 'the long sleep').toBe(true);
      process.kill(child, 'SIGKILL');
      // The signal is delivered, and the process ends, a moment after kill() returns.
      await until('the killed sleep to end', () => !processRuns(child), 10_000);
      expect(processRuns(child), 'the background sleep once ended, unreaped').toBe(false);
      expect(readFileSync(`/proc/${String(child)}/stat`, 'utf8'), 'a zombie, not gone').toMatch(/\) Z /);
    } finally {
      parent.kill('SIGKILL');
    }
    await new Promise((r) => parent.once('exit', r));
    expect(processRuns(parent.pid!), 'a process reaped').toBe(false);
  });
});
