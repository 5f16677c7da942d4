import type { Server, Socket } from 'node:net';

/** A proxy's sockets, and `keep`, which holds one until it closes (its errors ignored: tests cut connections on purpose). */
export function proxySockets(): { sockets: Set<Socket>; keep: (socket: Socket) => Socket } {
  const sockets = new Set<Socket>();
  const keep = (socket: Socket) => {
    sockets.add(socket.on('error', () => undefined).on('close', () => sockets.delete(socket)));
    return socket;
  };
  return { sockets, keep };
}

/**
 * Starts a proxy's `server` on a free loopback port (not a fixed one: it may be another test's or
 * process's on a shared machine). Returns `url` with the proxy's host and port, and `close`, which
 * ends every socket of `sockets` and stops the server listening.
 */
export async function listenInFrontOf(server: Server, url: string, sockets: Set<Socket>): Promise<{ url: string; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as { port: number }).port);
  return {
    url: proxied.toString(),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
