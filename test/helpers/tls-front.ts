import { readFileSync } from 'node:fs';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { createServer, TLSSocket, type Server } from 'node:tls';
import { fileURLToPath } from 'node:url';

// A self-signed certificate made for these tests only (CN "cpq-user-sync test CA", 127.0.0.1).
export const TEST_CERT_FILE = fileURLToPath(new URL('../fixtures/tls/test-only-cert.pem', import.meta.url));
const TEST_KEY_FILE = fileURLToPath(new URL('../fixtures/tls/test-only-key.pem', import.meta.url));

/**
 * TLS in front of a loopback port (the simulator's): what a CPQ site behind a private CA looks
 * like to the client. The caller closes the server.
 */
export function tlsFront(targetPort: number): Promise<Server> {
  const server = createServer({ cert: readFileSync(TEST_CERT_FILE), key: readFileSync(TEST_KEY_FILE) }, (socket) => {
    const upstream = connect(targetPort, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The https address of a front. */
export const frontUrl = (front: Server): string => `https://127.0.0.1:${(front.address() as AddressInfo).port}`;

/**
 * Postgres's side of the TLS negotiation, no more: it answers the client's 8-byte SSLRequest with
 * 'S' and a TLS handshake with the test-only certificate, or with 'N' (a server with ssl off).
 * Enough to reach what the client makes of it: a plain TLS front does not negotiate as Postgres
 * does. The caller closes the server (its clients, failing, close their connections).
 */
export function postgresTlsFront(answer: 'S' | 'N', host = '127.0.0.1'): Promise<NetServer> {
  const [cert, key] = [readFileSync(TEST_CERT_FILE), readFileSync(TEST_KEY_FILE)];
  const server = createTcpServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => {
      socket.write(answer);
      if (answer === 'S') new TLSSocket(socket, { isServer: true, cert, key }).on('error', () => undefined);
    });
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}
