import type { RunPhase, RunProgressReport } from '../db/schema.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { ReadTotals, type StreamProgress } from './stream-progress.js';

/**
 * How often at most a run writes its progress while it reads (besides each change of phase): a
 * page of 1,000 users comes every few tenths of a second, and `status` is read by people.
 */
export const RUN_PROGRESS_INTERVAL_MS = 2000;

/**
 * A run's progress (cpq.sync_runs.progress), from the totals its streams add to as they read, and written to its
 * record outside its transaction: at most every RUN_PROGRESS_INTERVAL_MS as pages come (the last
 * change written at the end of the interval it came in), at once on a change of phase. Best
 * effort, never awaited by the run but for its last phase (`last`): one write at a time, a failure
 * logged at debug (the write cannot wait for a lock: writeRunProgress), and nothing written once stopped.
 */
export class RunProgress {
  private phase: RunPhase = 'reading';
  /** The company streams the run reads, once the company list is known. */
  private companies: number | undefined;
  private done = 0;
  private lastWrite = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** The write on its way: one at a time, so that none overtakes a later one. */
  private writing: Promise<void> | undefined;
  /** A change of phase came while a write was on its way: written once it is done. */
  private due = false;
  private stopped = false;
  /** What the run's streams read, summed as they read: given to each (StreamProgress). */
  readonly read = new ReadTotals();

  constructor(
    /** The run's streams, as the run tracks them (a stream taken off, an absent integration feed, is no longer counted). */
    private readonly streams: readonly StreamProgress[],
    private readonly write: (progress: RunProgressReport) => Promise<boolean>,
    private readonly log: Logger,
    private readonly intervalMs = RUN_PROGRESS_INTERVAL_MS,
  ) {}

  /** The progress as it stands. */
  get report(): RunProgressReport {
    const read = this.read;
    // A stream is taken off before its first page only (an absent integration feed): it added nothing to the totals.
    const others = this.streams.length - read.companyStreams;
    return {
      phase: this.phase,
      pages: read.pages,
      received: read.received,
      // A sum past 2^53 - 1 (a site reporting absurd counts) is no count, as one such totalResults is not (countValue).
      totalResults: read.reporting === 0 || read.totalResults > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(read.totalResults),
      streamsDone: this.done,
      streams: this.companies === undefined ? null : this.companies + others,
    };
  }

  /** The run reads `n` companies (known once the company list is read, for CPQ_COMPANIES=*). */
  readsCompanies(n: number): void {
    this.companies = n;
    this.changed();
  }

  /** A stream's read ended (its last page read). */
  streamDone(): void {
    this.done++;
    this.changed();
  }

  /** The run moves on to `phase`: written at once. */
  enter(phase: RunPhase): void {
    this.phase = phase;
    this.flush();
  }

  /** Something counted changed (a stream started, a page read): written within the interval. */
  changed(): void {
    if (this.stopped || this.timer !== undefined) return;
    const wait = this.lastWrite + this.intervalMs - Date.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    // Not kept alive by it: a run that ends meanwhile stops it, and a process exiting need not wait.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait).unref();
  }

  /**
   * The run moves on to its last phase before its end writes its record (finishRun): written, and
   * awaited, after the write on its way, and nothing written after. Awaited, unlike the other
   * phases: the end's update locks the record while it waits for another site's run to commit
   * (migration 0017), and a write sent beside it found the record locked and was skipped (or, a
   * write on its way, was never sent), so `status` showed the phase before for all that wait. It
   * costs the run one statement that never waits for the record's lock and gives up a table lock
   * after 50 ms (writeRunProgress).
   */
  async last(phase: RunPhase): Promise<void> {
    this.phase = phase;
    this.stop();
    await this.writing;
    await this.writeNow();
  }

  /** No more writes: the run's end writes its record, progress included (finishRun). */
  stop(): void {
    this.stopped = true;
    this.due = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writing) {
      this.due = true;
      return;
    }
    this.writing = this.writeNow().finally(() => {
      this.writing = undefined;
      if (this.due) {
        this.due = false;
        this.flush();
      }
    });
  }

  /** Writes the progress as it stands; a failure is logged at debug, never thrown. */
  private async writeNow(): Promise<void> {
    this.lastWrite = Date.now();
    try {
      if (!(await this.write(this.report))) this.log.debug('run progress not written: its record is locked, or no longer running');
    } catch (err) {
      this.log.debug({ error: errorMessage(err) }, 'run progress not written');
    }
  }
}
