import { copyFileSync, mkdtempSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withSslModeAsVerified } from '../src/db/database.js';
import { cli } from './helpers/cli-process.js';
import { postgresTlsFront, TEST_CERT_FILE } from './helpers/tls-front.js';

/*
 * DATABASE_URL with TLS against a server whose certificate this machine does not trust, one that
 * names another host, and one without TLS: each got the pg_hba.conf hint, which is not what to
 * change, after node-postgres's nine-line SECURITY WARNING on stderr for sslmode=require.
 */

const PASSWORD = 'Tls-Secret-77';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function negotiatingServer(answer: 'S' | 'N', host?: string): Promise<number> {
  const server = await postgresTlsFront(answer, host);
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

/** `run` and `check` against `url`: run's one stderr line (exit code 6), and check's database step with its fix. */
async function failures(url: string): Promise<{ run: string; check: string }> {
  const env = { DATABASE_URL: url, CPQ_BASE_URL: 'http://127.0.0.1:9' };
  const run = await cli(['run'], env);
  expect(run.code, run.stderr).toBe(6);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  expect(lines, run.stderr).toHaveLength(1);
  const check = await cli(['check'], env);
  expect(check.code, check.stdout).toBe(1);
  // check reports on stdout: nothing of node-postgres's on stderr either.
  expect(check.stderr).toBe('');
  const step = /✗ database .*\n +fix: .*/.exec(check.stdout)?.[0];
  expect(step, check.stdout).toBeDefined();
  for (const text of [run.stderr, run.stdout, check.stdout]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain('SECURITY WARNING');
  }
  return { run: lines[0]!, check: step! };
}

describe('a database connection whose TLS fails: the hint says what to change, in one line', () => {
  it('a certificate no trusted CA issued, with sslmode=require: set sslrootcert (node-postgres verifies it, unlike libpq)', async () => {
    const port = await negotiatingServer('S');
    const { run, check } = await failures(`postgres://sync:${PASSWORD}@127.0.0.1:${port}/warehouse?sslmode=require`);
    expect(run).toBe(
      `cpq-sync: cannot connect to Postgres at postgres://sync:***@127.0.0.1:${port}/warehouse?sslmode=require: self-signed certificate; hint: the database server's certificate is not issued by a CA this system trusts: set sslrootcert=/path/ca.crt in DATABASE_URL to that CA (PEM); node-postgres verifies the certificate with sslmode=require too, unlike libpq`,
    );
    expect(check).toMatch(/fix: the database server's certificate is not issued by a CA this system trusts: set sslrootcert=/);
  }, 60_000);

  it('a certificate for another host name, its CA trusted (sslmode=verify-full&sslrootcert): use the host it names', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpq-db-tls-'));
    const ca = join(dir, 'ca.crt');
    copyFileSync(TEST_CERT_FILE, ca);
    // Loopback, but not an address the certificate names (127.0.0.1, localhost).
    const port = await negotiatingServer('S', '127.0.0.2');
    const { run, check } = await failures(`postgres://sync:${PASSWORD}@127.0.0.2:${port}/warehouse?sslmode=verify-full&sslrootcert=${ca}`);
    expect(run).toMatch(
      /: Hostname\/IP does not match certificate's altnames: .*; hint: the database server's certificate does not name the host of DATABASE_URL: use the host name the certificate was issued for$/,
    );
    expect(check).toMatch(/fix: the database server's certificate does not name the host of DATABASE_URL/);
  }, 60_000);

  it('a server with TLS off: turn it on there, or drop sslmode', async () => {
    const port = await negotiatingServer('N');
    const { run, check } = await failures(`postgres://sync:${PASSWORD}@127.0.0.1:${port}/warehouse?sslmode=require`);
    expect(run).toBe(
      `cpq-sync: cannot connect to Postgres at postgres://sync:***@127.0.0.1:${port}/warehouse?sslmode=require: The server does not support SSL connections; hint: the database server does not accept TLS connections: turn TLS on at the server (ssl = on in postgresql.conf, with its certificate and key), or drop sslmode from DATABASE_URL`,
    );
    expect(check).toMatch(/fix: the database server does not accept TLS connections/);
  }, 60_000);

  it('sslmode=prefer, require and verify-ca are given to node-postgres as the verify-full it makes of them; other parts, and libpq-compatible ones, as written', () => {
    expect(withSslModeAsVerified('postgres://u:p@h/db?sslmode=require&application_name=a%20b#x')).toBe(
      'postgres://u:p@h/db?sslmode=verify-full&application_name=a%20b#x',
    );
    expect(withSslModeAsVerified('postgres://u:p@h/db?sslmode=prefer')).toBe('postgres://u:p@h/db?sslmode=verify-full');
    expect(withSslModeAsVerified('postgres://u:p@h/db?sslmode=verify-ca&sslrootcert=/a%20b.crt')).toBe(
      'postgres://u:p@h/db?sslmode=verify-full&sslrootcert=/a%20b.crt',
    );
    for (const url of [
      'postgres://u:p@h/db?sslmode=disable',
      'postgres://u:p@h/db?sslmode=no-verify',
      'postgres://u:p@h/db?sslmode=require&uselibpqcompat=true',
      'postgres://u:p@h/db',
      'postgres://u:p@h/db#sslmode=require',
    ]) {
      expect(withSslModeAsVerified(url)).toBe(url);
    }
  });
});
