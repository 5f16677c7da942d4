import { describe, expect, it as plain } from 'vitest';
import { databaseHint } from '../src/error-hints.js';
import { cli } from './helpers/cli-process.js';
import { acceptsAnyPassword } from './helpers/database.js';
import { it } from './helpers/fixtures.js';

/*
 * node-postgres fails the SCRAM step itself when the URL names no password ("client password must
 * be a string"), and left that connection open: the server ended it at its authentication_timeout
 * (a minute by default), and the command, its one line printed, exited only then.
 */
describe('a DATABASE_URL without a password, to a server that asks for one', () => {
  it('fails at once with its hint, exit code 6: the process does not wait for the server to drop the connection', async ({ createDatabase, skip }) => {
    const t = await createDatabase();
    skip(await acceptsAnyPassword(t.url), 'this server takes any password (trust), so it never asks for one');
    const [setting] = await t.query<{ ms: number }>(`SELECT setting::int * 1000 AS ms FROM pg_catalog.pg_settings WHERE name = 'authentication_timeout'`);
    skip(setting!.ms < 20_000, `this server drops a connection still authenticating after ${String(setting!.ms)} ms: too soon to tell a wait from none`);

    const noPassword = new URL(t.url);
    noPassword.password = '';
    const started = Date.now();
    const out = await cli(['migrate'], { DATABASE_URL: noPassword.toString() });
    const took = Date.now() - started;
    expect(out.code).toBe(6);
    expect(out.stderr).toMatch(/; hint: DATABASE_URL names no password and the server asks for one: write it in the URL \(.*\) or set PGPASSWORD\n$/);
    expect(took).toBeLessThan(10_000);
  });
});

describe('the hint, whatever authentication method asked for the password', () => {
  // The server's and node-postgres's words, as Postgres 15 gave them to this URL with pg_hba's md5
  // and password methods (a test server's pg_hba is not the test's to change): each said
  // "check DATABASE_URL", or nothing of the password, for a URL that names none.
  const url = 'postgres://sync@db.example.com:5432/warehouse';
  const refusals = {
    'scram-sha-256': `cannot connect to Postgres at ${url}: SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string`,
    md5: `cannot connect to Postgres at ${url}: password authentication failed for user "sync"`,
    password: `cannot connect to Postgres at ${url}: empty password returned by client`,
  };
  plain('says the URL names no password, or that PGPASSWORD was refused, or the URL password', () => {
    for (const [method, message] of Object.entries(refusals)) {
      expect(databaseHint(message, {}), method).toBe(
        'DATABASE_URL names no password and the server asks for one: write it in the URL (postgres://user:password@host/database) or set PGPASSWORD',
      );
    }
    expect(databaseHint(refusals.md5, { PGPASSWORD: 'x' })).toBe(
      'the database refused the user of DATABASE_URL or the password of PGPASSWORD (the URL names none): check both',
    );
    const withPassword = refusals.md5.replace('sync@', 'sync:***@');
    expect(databaseHint(withPassword, {})).toBe('the database refused the user or password: check DATABASE_URL');
    // node-postgres takes a password parameter as the URL's password (the message shows it as ***).
    expect(databaseHint(refusals.md5.replace('/warehouse', '/warehouse?password=***'), { PGPASSWORD: 'x' })).toBe(
      'the database refused the user or password: check DATABASE_URL',
    );
    // A socket URL (no host before the path) is read as node-postgres reads it.
    expect(databaseHint(refusals.md5.replace('db.example.com:5432/warehouse', '/warehouse?host=/run/postgresql'), {})).toMatch(
      /^DATABASE_URL names no password/,
    );
  });
});
