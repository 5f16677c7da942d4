import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/database.js';
import { HealthConnection } from '../../src/worker/readiness.js';
import { cli } from '../helpers/cli-process.js';
import { TEST_CERT_FILE } from '../helpers/tls-front.js';

const TEST_KEY_FILE = fileURLToPath(new URL('../fixtures/tls/test-only-key.pem', import.meta.url));

/*
 * Review GS. DATABASE_URL on loopback: while its Postgres is down (a restart, an upgrade), any local
 * user may listen on its port and, posing as the server, ask for the password in clear text
 * (AuthenticationCleartextPassword), which node-postgres sent. Every connection of ours refuses
 * that request without TLS, and sends nothing.
 */
const PASSWORD = 'Db-Secret-Pw-42';

/**
 * A listener that answers every startup with a request for the password in clear text, and notes
 * each password it is sent. `tls`: it takes a client's SSLRequest, with the tests' own certificate
 * (self-signed: verified only by a client that names it as its CA). `open()`: its connections not closed yet.
 */
async function impostor(tls = false): Promise<{ url: string; received: string[]; open: () => number }> {
  const received: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let stream: Socket = socket;
    let buffer = Buffer.alloc(0);
    let started = false;
    const onData = (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8 || buffer.length < buffer.readInt32BE(0)) return;
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(buffer.readInt32BE(0));
          // SSLRequest: TLS when this listener has it, the startup then comes over it.
          if (code === 80877103) {
            if (!tls) {
              socket.write('N');
              continue;
            }
            socket.removeListener('data', onData);
            socket.write('S');
            stream = new TLSSocket(socket, { isServer: true, cert: readFileSync(TEST_CERT_FILE), key: readFileSync(TEST_KEY_FILE) });
            stream.on('error', () => undefined);
            stream.on('data', onData);
            return;
          }
          started = true;
          const request = Buffer.alloc(9);
          request.write('R', 0);
          request.writeInt32BE(8, 1);
          request.writeInt32BE(3, 5);
          stream.write(request);
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
        // A password message ('p'); a client's Terminate ('X') on ending says nothing.
        if (buffer[0] === 0x70) received.push(buffer.subarray(5, 1 + buffer.readInt32BE(1)).toString('utf8'));
        buffer = buffer.subarray(1 + buffer.readInt32BE(1));
      }
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  servers.push({ server, sockets });
  return { url: `postgres://sync:${PASSWORD}@127.0.0.1:${port}/warehouse`, received, open: () => sockets.size };
}

const servers: { server: Server; sockets: Set<Socket> }[] = [];
afterEach(async () => {
  for (const { server, sockets } of servers.splice(0)) {
    sockets.forEach((s) => s.destroy());
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

const REFUSAL = /the database server asked for the password in clear text over a connection without verified TLS: refused, not sent/;

describe('a listener posing as Postgres on DATABASE_URL asks for the password in clear text (review GS)', () => {
  it('a command refuses it, exit code 6, one line, and sends no password', async () => {
    const fake = await impostor();
    const status = await cli(['status'], { DATABASE_URL: fake.url });
    expect(status.code).toBe(6);
    expect(status.stderr).toMatch(REFUSAL);
    expect(status.stderr.trim().split('\n')).toHaveLength(1);
    expect(status.stderr).not.toContain(PASSWORD);
    expect(fake.received).toEqual([]);
  });

  it("a pool's connection and the health connection (/readyz, /metrics) refuse it too; node-postgres' own client sends the password (what this guards against)", async () => {
    const fake = await impostor();
    const pool = createPool(fake.url);
    try {
      await expect(pool.query('SELECT 1')).rejects.toThrow(REFUSAL);
    } finally {
      await pool.end();
    }
    const health = HealthConnection.forPool(createPool(fake.url));
    try {
      await expect(health.query('SELECT 1')).rejects.toThrow(REFUSAL);
    } finally {
      await health.close();
    }
    expect(fake.received).toEqual([]);
    // Each refused connection is closed (review GT): a listener holding them would use up the worker's descriptors.
    await expect.poll(() => fake.open()).toBe(0);

    // The control: a plain client answers the request with the password.
    const plain = new pg.Client({ connectionString: fake.url, connectionTimeoutMillis: 2000 });
    plain.on('error', () => undefined);
    await plain.connect().catch(() => undefined);
    await plain.end().catch(() => undefined);
    await expect.poll(() => fake.received).toEqual([`${PASSWORD}\u0000`]);
  });

  it('over TLS that verified nothing (sslmode=no-verify) it is refused too; over TLS that verified the server (verify-full, its CA named) the password is sent', async () => {
    const fake = await impostor(true);
    const unverified = createPool(`${fake.url}?sslmode=no-verify`);
    try {
      await expect(unverified.query('SELECT 1')).rejects.toThrow(REFUSAL);
    } finally {
      await unverified.end();
    }
    expect(fake.received).toEqual([]);
    // The control: the same listener, verified, is the server the operator named, and is answered.
    const verified = createPool(`${fake.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(TEST_CERT_FILE)}`, 1, undefined, 3000);
    try {
      await expect(verified.query('SELECT 1')).rejects.toThrow();
    } finally {
      await verified.end();
    }
    expect(fake.received).toEqual([`${PASSWORD}\u0000`]);
  });
});
