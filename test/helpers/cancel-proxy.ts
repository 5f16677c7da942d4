import { connect, createServer } from 'node:net';
import { listenInFrontOf, proxySockets } from './loopback-proxy.js';

/** The protocol's CancelRequest code, as a CancelRequest packet holds it after its length. */
const CANCEL_REQUEST_CODE = 80877102;

export interface CancelProxy {
  /** `url`, its host and port the proxy's. */
  url: string;
  /** Ends every connection through the proxy and stops it listening. */
  close: () => Promise<void>;
}

/**
 * A TCP proxy on loopback in front of `url`'s server: it passes a session's connection through at
 * once, and a cancel request (cancelOnAbort sends it to the address its session is connected to:
 * the proxy) only once `forwardCancel` calls the function it is given. A test decides so when a
 * cancel reaches the server: late, or only after the server has done something else first (a
 * cancel sent on its own connection otherwise races whatever the test does on another).
 */
export async function cancelProxy(url: string, forwardCancel: (forward: () => void) => void): Promise<CancelProxy> {
  const target = new URL(url);
  const { sockets, keep } = proxySockets();
  // Half-open: the cancel's sender ends its side at once, and must see the connection close only once the server has read it.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    keep(client).once('data', (first) => {
      client.pause();
      const forward = () => {
        const upstream = keep(connect(Number(target.port), target.hostname));
        upstream.write(first);
        client.pipe(upstream).pipe(client);
      };
      const cancel = first.length >= 8 && first.readInt32BE(4) === CANCEL_REQUEST_CODE;
      if (cancel) forwardCancel(forward);
      else forward();
    });
  });
  return listenInFrontOf(server, url, sockets);
}
