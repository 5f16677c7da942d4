import { readFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:tls';
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
