import { setTimeout as sleep } from 'node:timers/promises';

/** A request's place in the budget, from its start to its end (body read or failed). */
export interface Slot {
  /** The budget's generation when the slot was given: answers to requests sent before a cut say nothing new. */
  readonly generation: number;
  release(): void;
}

/** Each request answered well grows the limit by 1 / (GROWTH_ROUNDS x limit): a full step takes that many rounds of requests. */
const GROWTH_ROUNDS = 4;

/**
 * How many requests one CPQ site gets at once (CPQ_MAX_IN_FLIGHT), across every company, key
 * range, the integration-user stream and the zip export of a run. Adaptive: CPQ asking us to
 * slow down (429, 503) or not answering in time halves the limit, at most once per round of
 * requests (the answers to requests sent before a cut were caused by the load before it); each
 * request answered well grows it back slowly, never past the maximum. A Retry-After holds every
 * request of the site until it has passed, not just the one it answered.
 */
export class RequestBudget {
  private allowance: number;
  private active = 0;
  private readonly waiting: Array<{ grant: () => void; signal: AbortSignal | undefined; reject: (reason: unknown) => void }> = [];
  /** Per signal this budget listens to, a promise rejected when it aborts: one listener each, however many requests wait with it. */
  private readonly aborts = new WeakMap<AbortSignal, Promise<never>>();
  private cuts = 0;
  private pausedUntil = 0;
  /** The most requests it ever let out at once. */
  maxInFlight = 0;

  constructor(
    readonly max: number,
    // A clock that never steps: a pause is a span (Retry-After), and this process's clock stepped
    // back a day during one (NTP, a VM resumed) held every request of the site a day.
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isSafeInteger(max) || max < 1) throw new Error('the request budget must be a positive integer');
    this.allowance = max;
  }

  /** Requests allowed at once now (CPQ_MAX_IN_FLIGHT, less what slowdowns took). */
  get limit(): number {
    return Math.floor(this.allowance);
  }

  get inFlight(): number {
    return this.active;
  }

  /**
   * Waits for a free place (first come, first served), then for the end of any pause CPQ asked
   * for. Rejects with the signal's reason when it is aborted while waiting.
   */
  async acquire(signal?: AbortSignal): Promise<Slot> {
    signal?.throwIfAborted();
    if (this.active < this.limit && this.waiting.length === 0) this.active++;
    else await this.queue(signal);
    this.maxInFlight = Math.max(this.maxInFlight, this.active);
    let released = false;
    const slot: Slot = {
      generation: this.cuts,
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        this.wake();
      },
    };
    try {
      for (let wait = this.pausedUntil - this.now(); wait > 0; wait = this.pausedUntil - this.now()) {
        // Unreferenced: an interrupted run's pause must not keep the process alive.
        const paused = sleep(wait, undefined, { ref: false });
        await (signal ? Promise.race([paused, this.whenAborted(signal)]) : paused);
      }
    } catch (err) {
      slot.release();
      throw err;
    }
    return slot;
  }

  /** CPQ asked us to slow down (429, 503) or did not answer in time: halves the limit, once per round. */
  slowDown(slot: Slot): void {
    if (slot.generation !== this.cuts) return;
    this.cuts++;
    this.allowance = Math.max(1, this.allowance / 2);
  }

  /** A request was answered well: the limit grows back a little. */
  succeeded(): void {
    if (this.allowance >= this.max) return;
    // A step of 1/(rounds x limit) per answer; the small excess keeps rounding from needing one answer more.
    this.allowance = Math.min(this.max, this.allowance + 1 / (GROWTH_ROUNDS * this.limit) + 1e-9);
    this.wake();
  }

  /** Holds every request not yet sent until `ms` from now (a Retry-After). */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + ms);
  }

  private queue(signal: AbortSignal | undefined): Promise<void> {
    if (signal) void this.whenAborted(signal);
    // The place is counted by wake() as it is handed over, so no later arrival can take it first.
    return new Promise<void>((resolve, reject) => this.waiting.push({ grant: resolve, signal, reject }));
  }

  private whenAborted(signal: AbortSignal): Promise<never> {
    let aborted = this.aborts.get(signal);
    if (!aborted) {
      aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
      // Its one handler rejects the requests waiting with it.
      aborted.catch(() => this.drop(signal));
      this.aborts.set(signal, aborted);
    }
    return aborted;
  }

  /** Rejects every request waiting with an aborted signal, with its reason. */
  private drop(signal: AbortSignal): void {
    for (const waiter of this.waiting.filter((w) => w.signal === signal)) {
      this.waiting.splice(this.waiting.indexOf(waiter), 1);
      waiter.reject(signal.reason);
    }
  }

  private wake(): void {
    while (this.active < this.limit && this.waiting.length > 0) {
      this.active++;
      this.waiting.shift()!.grant();
    }
  }
}
