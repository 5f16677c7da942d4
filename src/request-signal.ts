/**
 * The signal of one HTTP request: aborted when `parent` is, or after `timeoutMs`, but only until
 * `done()`, which the caller calls once the request is over, body read or not.
 *
 * Why not AbortSignal.any([parent, AbortSignal.timeout(ms)]): Node 20's fetch (its bundled
 * undici) refuses a response of more than five Content-Encodings yet leaves that response's body
 * stream listening to the request's signal. Aborted later (the run failing, the timeout firing),
 * the stream emits an 'error' that nobody hears, and the process dies, with every other site's
 * run. A signal that can no longer be aborted once its request is over cannot do that.
 */
export class RequestSignal {
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

  /** Whether the request was aborted by its timeout. */
  get timedOut(): boolean {
    return this.controller.signal.aborted && (this.controller.signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
  }

  /** The request is over: nothing aborts the signal from now on. */
  done(): void {
    clearTimeout(this.timer);
    this.parent?.removeEventListener('abort', this.onParentAbort);
  }
}
