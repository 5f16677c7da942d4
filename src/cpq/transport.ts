import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';

/**
 * The fetch dispatcher for a site behind a private CA: the system's roots plus CPQ_CA_FILE.
 * Verification stays on either way; without a CA file the default dispatcher is used.
 */
export function dispatcherFor(ca: string | undefined): Dispatcher | undefined {
  return ca ? new Agent({ connect: { ca: [...rootCertificates, ca] } }) : undefined;
}

/** fetch options carrying the dispatcher (Node's RequestInit type does not declare it). */
export function withDispatcher(init: RequestInit, dispatcher: Dispatcher | undefined): RequestInit {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- an undici (npm) Agent; Node's RequestInit types it with undici-types' own copy of the Dispatcher class, which the built-in fetch accepts
  return dispatcher ? { ...init, dispatcher } : init;
}
