import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { toDatabaseOrInternal } from '../src/errors.js';
import { cli } from './helpers/cli-process.js';

/*
 * A database server that accepts connections and never answers (a proxy or load balancer whose
 * Postgres is down): every command waited for ever, a SIGTERM past SHUTDOWN_TIMEOUT too.
 * DATABASE_CONNECT_TIMEOUT bounds the making of each connection.
 */

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A TCP server on loopback that takes every connection and never writes a byte; its port. */
async function silentServer(): Promise<number> {
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

describe('DATABASE_CONNECT_TIMEOUT', () => {
  it('a database that accepts and never answers fails run, status and check in one line, exit code 6, within the timeout (review DZ: they waited for ever)', async () => {
    const port = await silentServer();
    const env = { DATABASE_URL: `postgres://sync:Silent-Pa55@127.0.0.1:${port}/warehouse`, CPQ_BASE_URL: 'http://127.0.0.1:9', DATABASE_CONNECT_TIMEOUT: '1s' };
    for (const command of ['run', 'status']) {
      const started = Date.now();
      const out = await cli([command], env);
      expect({ command, code: out.code, within10s: Date.now() - started < 10_000 }).toEqual({ command, code: 6, within10s: true });
      expect(out.stderr).toMatch(
        new RegExp(
          `^cpq-sync: cannot connect to Postgres at postgres://sync:\\*\\*\\*@127\\.0\\.0\\.1:${port}/warehouse: no answer within DATABASE_CONNECT_TIMEOUT \\(1 s\\); hint: something at that host and port took the connection but did not answer as Postgres: [^\\n]*\\n$`,
        ),
      );
      expect(out.stderr + out.stdout).not.toContain('Silent-Pa55');
    }
    const check = await cli(['check'], env);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(
      /✗ database +cannot connect to Postgres at \S+: no answer within DATABASE_CONNECT_TIMEOUT \(1 s\)\n +fix: something at that host and port took the connection/,
    );
  }, 60_000);

  it('a connection made later that gets no answer (a pool growing mid-run) is a database error, exit code 6, not an internal one', async () => {
    const port = await silentServer();
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'u', password: 'p', database: 'd', connectionTimeoutMillis: 300 });
    const failure = await client.connect().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(Error);
    const error = toDatabaseOrInternal(failure);
    expect({ kind: error.kind, message: error.message }).toEqual({
      kind: 'database',
      message: 'database error: a new connection to Postgres got no answer within DATABASE_CONNECT_TIMEOUT',
    });
  });
});
