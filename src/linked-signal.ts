/**
 * A signal that follows `parent` (aborted when it is), and fires after `timeoutMs` if given, but
 * only until `done()`: once its holder's work is over, nothing aborts it, and `parent` holds no
 * listener of it. `abort()` aborts it alone, the parent untouched.
 *
 * Why not AbortSignal.any([parent, AbortSignal.timeout(ms)]):
 * - Node 20's fetch (its bundled undici) refuses a response of more than five Content-Encodings
 *   yet leaves that response's body stream listening to the request's signal. Aborted later (the
 *   run failing, the timeout firing), the stream emits an 'error' that nobody hears, and the
 *   process dies, with every other site's run. A request's signal that can no longer be aborted
 *   once the request is over cannot do that.
 * - Node 20 keeps a signal made by AbortSignal.any, while it has listeners, for as long as its
 *   sources live: a run's reads made from a worker's signal (which lives as long as the process)
 *   were kept, about 1 KB a run, for good (review EF).
 */
export class LinkedSignal {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onParentAbort = () => this.controller.abort(this.parent?.reason);

  constructor(
    private readonly parent: AbortSignal | undefined,
    timeoutMs?: number,
  ) {
    if (parent?.aborted) this.controller.abort(parent.reason);
    else parent?.addEventListener('abort', this.onParentAbort, { once: true });
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(() => this.controller.abort(new DOMException('no response within the request timeout', 'TimeoutError')), timeoutMs);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether it was aborted by its timeout. */
  get timedOut(): boolean {
    return this.controller.signal.aborted && (this.controller.signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
  }

  /** Aborts this signal (the first reason stays), not the parent. */
  abort(reason?: unknown): void {
    this.controller.abort(reason);
  }

  /** The work is over: nothing aborts the signal from now on but `abort()`. */
  done(): void {
    clearTimeout(this.timer);
    this.parent?.removeEventListener('abort', this.onParentAbort);
  }
}
