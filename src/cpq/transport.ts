import { rootCertificates } from 'node:tls';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import { requireWhenUsed } from '../require-when-used.js';

/**
 * The fetch dispatcher for a site behind a private CA: the system's roots plus CPQ_CA_FILE.
 * Verification stays on either way; without a CA file the default dispatcher is used.
 */
export function dispatcherFor(ca: string | undefined): Dispatcher | undefined {
  if (!ca) return undefined;
  const { Agent } = requireWhenUsed('undici') as typeof Undici;
  return new Agent({ connect: { ca: [...rootCertificates, ca] } });
}

/** fetch options carrying the dispatcher (Node's RequestInit type does not declare it). */
export function withDispatcher(init: RequestInit, dispatcher: Dispatcher | undefined): RequestInit {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- an undici (npm) Agent; Node's RequestInit types it with undici-types' own copy of the Dispatcher class, which the built-in fetch accepts
  return dispatcher ? { ...init, dispatcher } : init;
}
