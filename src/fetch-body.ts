/**
 * The pieces of a fetch response's body, each read ended by `signal` too (the request's own): a
 * read waiting when it aborts throws its reason, as a read of a body fetch errors does, and the
 * body is cancelled. Leaving the loop early (return, throw) cancels the rest of the body.
 *
 * Why not only the request's signal: Node 20's fetch (its bundled undici 6, nodejs/undici#4089)
 * stops listening to it once the whole body has arrived, yet feeds the body to its reader only as
 * the reader takes it. Aborted in between (a small export arrived while the download was writing
 * its first pieces to the file), the body was neither closed nor errored, and the next read waited
 * forever: a run signalled then outlived SHUTDOWN_TIMEOUT, its record left `running`.
 */
export async function* bodyChunks(response: Response, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  if (!response.body) return;
  // A fetch body is a byte stream; the DOM-less lib types it ReadableStream<any>.
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  // Thrown as fetch throws it; this code aborts with Errors (a DOMException when no reason is given), anything else is made one.
  const abortError = ({ reason }: AbortSignal): Error => (reason instanceof Error ? reason : new Error(String(reason)));
  // The abort cancels the body, which ends a read waiting (it resolves as done), rather than each
  // read being raced with one promise of the abort: every race left a reaction on that promise
  // holding its result, so each piece read stayed in memory until the body ended (a 4 GiB export
  // held whole).
  const onAbort = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const read = await reader.read().catch((err: unknown) => {
        // Fetch errors the body with the abort's reason as it lets go of it: the abort, said as one.
        throw signal?.aborted ? abortError(signal) : err;
      });
      if (signal?.aborted) throw abortError(signal);
      if (read.done) return;
      yield read.value;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await reader.cancel().catch(() => undefined);
  }
}
