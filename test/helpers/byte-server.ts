import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ByteResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * A loopback HTTP server in front of the simulator: a path registered here is answered with
 * exactly the given bytes (invalid UTF-8, a hand-made zip...), which the simulator's string
 * faults cannot send; every other request is passed to the simulator unchanged.
 */
export class ByteServer {
  private readonly routes = new Map<string, ByteResponse>();
  private server: Server | undefined;
  /** The simulator's base URL, set once it is started. */
  target = '';
  url = '';

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const fixed = this.routes.get(path);
      const answer = fixed
        ? Promise.resolve(fixed)
        : fetch(this.target + (req.url ?? '/'), {
            headers: Object.fromEntries(['accept', 'authorization'].filter((h) => req.headers[h]).map((h) => [h, String(req.headers[h])])),
          }).then(async (r) => ({
            status: r.status,
            headers: { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' },
            body: Buffer.from(await r.arrayBuffer()),
          }));
      answer.then(
        (r) => {
          res.writeHead(r.status, { ...r.headers, 'content-length': String(r.body.length) });
          res.end(r.body);
        },
        () => res.destroy(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  serve(path: string, response: ByteResponse): void {
    this.routes.set(path, response);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
