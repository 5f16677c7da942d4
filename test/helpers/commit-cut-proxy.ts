import { connect, createServer, type Socket } from 'node:net';

export interface CommitCutProxy {
  /** `url`, its host and port the proxy's. */
  url: string;
  /** Whether a COMMIT was passed on and its answer lost. */
  readonly cut: boolean;
  /** Ends every connection through the proxy and stops it listening. */
  close: () => Promise<void>;
}

/**
 * A TCP proxy on loopback in front of `url`'s server that loses the answer to one COMMIT: the
 * first `COMMIT` sent (a simple query) on a connection whose transaction began with `BEGIN
 * ISOLATION LEVEL READ COMMITTED` (a run's, forget's) is passed on to the server, which commits,
 * and the client's connection is cut at once, before the answer comes. Every other message passes
 * as it is. Postgres's protocol: a first (startup) message of a length and a body, then messages
 * of a type byte and a length.
 */
export async function commitCutProxy(url: string): Promise<CommitCutProxy> {
  const target = new URL(url);
  const sockets = new Set<Socket>();
  const kept = (socket: Socket) => {
    sockets.add(socket.on('error', () => undefined).on('close', () => sockets.delete(socket)));
    return socket;
  };
  let cut = false;
  const server = createServer((client) => {
    kept(client);
    const upstream = kept(connect(Number(target.port), target.hostname));
    upstream.on('data', (d: Buffer) => client.write(d));
    upstream.on('close', () => client.destroy());
    let pending = Buffer.alloc(0);
    let started = false;
    let inTransaction = false;
    client.on('close', () => {
      // Once the COMMIT is passed on, the server's connection stays until it has answered (it commits).
      if (!cut || !inTransaction) upstream.destroy();
    });
    client.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        const header = started ? 5 : 4;
        if (pending.length < header) return;
        const length = (started ? pending.readInt32BE(1) : pending.readInt32BE(0)) + (started ? 1 : 0);
        if (pending.length < length) return;
        const message = pending.subarray(0, length);
        pending = pending.subarray(length);
        const query =
          started && message[0] === 0x51
            ? message
                .subarray(5, message.length - 1)
                .toString('utf8')
                .trim()
            : undefined;
        started = true;
        upstream.write(message);
        if (query?.startsWith('BEGIN ISOLATION LEVEL READ COMMITTED')) inTransaction = true;
        if (!cut && inTransaction && query === 'COMMIT') {
          cut = true;
          client.destroy();
          upstream.once('data', () => setTimeout(() => upstream.destroy(), 50));
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as { port: number }).port);
  return {
    url: proxied.toString(),
    get cut() {
      return cut;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
