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
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    if (!signal) return;
    // Thrown as fetch throws it; this code aborts with Errors (a DOMException when no reason is given), anything else is made one.
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // Raced below; a rejection after the last read must not count as unhandled.
  aborted.catch(() => undefined);
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), aborted]);
      if (done) return;
      yield value;
    }
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    // Also ends a read left waiting by the race (it resolves as done).
    await reader.cancel().catch(() => undefined);
  }
}
