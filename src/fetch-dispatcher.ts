import { rootCertificates } from 'node:tls';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import { requireWhenUsed } from './require-when-used.js';

/**
 * How long the default dispatcher of Node's fetch waits for a response's headers, and between two
 * pieces of its body, before it ends the request (undici's headersTimeout and bodyTimeout).
 */
export const DEFAULT_DISPATCHER_TIMEOUT_MS = 300_000;

/** The dispatchers made, one per CA file's text ('' for none), shared by every client of the process. */
const dispatchers = new Map<string, Dispatcher>();

/**
 * The fetch dispatcher of requests to CPQ, its OAuth token service and the alert webhook, whose
 * callers bound each request themselves (CPQ_REQUEST_TIMEOUT, as a deadline or as the longest pause
 * of a download; ALERT_WEBHOOK_TIMEOUT):
 * undefined, the default one, unless a CA file is given (the system's roots plus CPQ_CA_FILE;
 * certificates are verified either way) or `timeoutMs` is not shorter than the default one's own
 * timeouts. Then an undici Agent, with those timeouts off: the default dispatcher failed a site
 * slower than 300 s on every attempt (UND_ERR_HEADERS_TIMEOUT), whatever CPQ_REQUEST_TIMEOUT said.
 * undici (npm) is loaded only then: it costs a CLI call ~80 ms.
 */
export function dispatcherFor(ca: string | undefined, timeoutMs: number): Dispatcher | undefined {
  if (!ca && timeoutMs < DEFAULT_DISPATCHER_TIMEOUT_MS) return undefined;
  let dispatcher = dispatchers.get(ca ?? '');
  if (!dispatcher) {
    const { Agent } = requireWhenUsed('undici') as typeof Undici;
    dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0, ...(ca ? { connect: { ca: [...rootCertificates, ca] } } : {}) });
    dispatchers.set(ca ?? '', dispatcher);
  }
  return dispatcher;
}

/** fetch options carrying the dispatcher (Node's RequestInit type does not declare it). */
export function withDispatcher(init: RequestInit, dispatcher: Dispatcher | undefined): RequestInit {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- an undici (npm) Agent; Node's RequestInit types it with undici-types' own copy of the Dispatcher class, which the built-in fetch accepts
  return dispatcher ? { ...init, dispatcher } : init;
}
