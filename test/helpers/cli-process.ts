import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/cpq-sync.js', import.meta.url));

export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export type LogLine = Record<string, unknown> & { msg?: string };

export interface CliOptions {
  /** Default: this checkout's bin/cpq-sync.js. */
  bin?: string;
  cwd?: string;
  /** A process group of its own (the group a terminal's Ctrl-C signals): `process.kill(-child.pid, …)` reaches it and its children. */
  detached?: boolean;
}

/** The built CLI as a user runs it, with only the given environment (plus PATH), JSON logs. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<Outcome>;
  private waiters: { test: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];

  constructor(args: string[], env: Record<string, string>, options: CliOptions = {}) {
    this.child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.detached ? { detached: true } : {}),
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      this.notify();
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }));
    });
  }

  /** Log lines written so far (stdout lines that are JSON). */
  lines(): LogLine[] {
    return this.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return {};
        }
      });
  }

  private notify() {
    const lines = this.lines();
    this.waiters = this.waiters.filter((w) => {
      const hit = lines.find(w.test);
      if (hit) w.resolve(hit);
      return !hit;
    });
  }

  /** The first log line matching `test`; fails after `timeoutMs` or when the process ends first. */
  waitForLine(test: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const found = this.lines().find(test);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; output:\n${this.stdout}\n${this.stderr}`)), timeoutMs);
      const done = (line: LogLine) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push({ test, resolve: done });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`the process ended before a matching log line; output:\n${this.stdout}\n${this.stderr}`));
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal);
  }
}

/** Runs the CLI to its end. */
export function cli(args: string[], env: Record<string, string>, options: CliOptions = {}): Promise<Outcome> {
  return new CliProcess(args, env, options).exited;
}

/** A promise and the function that settles it: a gate a test opens when it wants. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** What a test leaves to undo: CLI processes still running (killed) and other cleanups, last first. */
export class Cleanups {
  private readonly steps: (() => unknown)[] = [];

  push(step: () => unknown): void {
    this.steps.push(step);
  }

  spawn(args: string[], env: Record<string, string>, options?: CliOptions): CliProcess {
    const p = new CliProcess(args, env, options);
    this.push(async () => {
      if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL');
      await p.exited;
    });
    return p;
  }

  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) await step();
  }
}

/** Waits until `check` holds, polling every 100 ms; fails naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A word for a POSIX shell command line: single-quoted. */
export const quoted = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/** The built CLI with these arguments, as one shell command line (`then`: a redirection after it). */
export const cliLine = (args: string[], then = '') => `${[process.execPath, BIN, ...args].map(quoted).join(' ')}${then}`;

/**
 * A command line in a pseudo-terminal: util-linux `script` gives it a real pty (stdout and stderr
 * isTTY, unless the line redirects them) and copies what it draws to our pipe, escape sequences
 * included, both streams in one.
 */
export function inPty(line: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', line, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '', TERM: 'xterm', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
