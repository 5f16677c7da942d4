import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    expect(out.stderr).toMatch(
      /; hint: DATABASE_URL names no password and the server asks for one: write it in the URL \(.*\), set PGPASSWORD, or add a line for it to ~\/\.pgpass \(PGPASSFILE\)\n$/,
    );
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
        'DATABASE_URL names no password and the server asks for one: write it in the URL (postgres://user:password@host/database), set PGPASSWORD, or add a line for it to ~/.pgpass (PGPASSFILE)',
      );
    }
    // The connection notes a password the password file gave (a line of ~/.pgpass the operator wrote).
    expect(databaseHint(`${refusals.md5} (password from /home/sync/.pgpass)`, {})).toBe(
      'the database refused the user of DATABASE_URL or the password /home/sync/.pgpass gives it (the URL names none, nor PGPASSWORD): check both',
    );
    // The connection notes a password file there but ignored for its mode: its line is not what is missing.
    expect(databaseHint(`${refusals['scram-sha-256']} (password file /home/sync/.pgpass ignored: its group has access to it (mode 0640))`, {})).toBe(
      'DATABASE_URL names no password and the server asks for one; the password file /home/sync/.pgpass is ignored, as libpq ignores it, since its group has access to it (mode 0640): chmod 600 /home/sync/.pgpass',
    );
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

describe('a password from the password file (PGPASSFILE, or ~/.pgpass), as psql takes it', () => {
  it("is used without a word on stderr; a wrong one is named as the file's; one others can read is ignored, with its warning, and the hint says to chmod it", async ({
    createDatabase,
    skip,
  }) => {
    const t = await createDatabase();
    skip(await acceptsAnyPassword(t.url), 'this server takes any password (trust), so it never asks for one');
    const url = new URL(t.url);
    const password = decodeURIComponent(url.password);
    url.password = '';
    const folder = await mkdtemp(join(tmpdir(), 'cpq-pgpass-'));
    const file = join(folder, 'pgpass');
    // host:port:database:user:password, ':' and '\\' escaped as the format asks.
    const line = (pw: string) => `${url.hostname}:${url.port || '5432'}:*:${decodeURIComponent(url.username)}:${pw.replace(/([:\\])/g, '\\$1')}\n`;
    try {
      await writeFile(file, line(password), { mode: 0o600 });
      // node-postgres read the file itself, and printed a DeprecationWarning (pgpass support ends in pg 9) on stderr at every command.
      const right = await cli(['migrate'], { DATABASE_URL: url.toString(), PGPASSFILE: file });
      expect({ code: right.code, stderr: right.stderr }).toEqual({ code: 0, stderr: '' });
      // PGPASSWORD set but empty (`PGPASSWORD=` in a .env) is no password, as libpq takes it: the file
      // is read. Before, it went unread, and the hint asked for the line it held.
      const emptyPgPassword = await cli(['migrate'], { DATABASE_URL: url.toString(), PGPASSFILE: file, PGPASSWORD: '' });
      expect({ code: emptyPgPassword.code, stderr: emptyPgPassword.stderr }).toEqual({ code: 0, stderr: '' });

      await writeFile(file, line('not-the-password'));
      const wrong = await cli(['migrate'], { DATABASE_URL: url.toString(), PGPASSFILE: file });
      expect(wrong.code).toBe(6);
      expect(wrong.stderr).toMatch(
        new RegExp(
          `^cpq-sync: cannot connect to Postgres at \\S+: .* \\(password from ${file}\\); hint: the database refused the user of DATABASE_URL or the password ${file} gives it \\(the URL names none, nor PGPASSWORD\\): check both\\n$`,
        ),
      );

      await writeFile(file, line(password));
      await chmod(file, 0o644);
      const loose = await cli(['migrate'], { DATABASE_URL: url.toString(), PGPASSFILE: file });
      expect(loose.code).toBe(6);
      // The hint asked for the line the file holds: the file's mode is what is wrong.
      expect(loose.stderr).toMatch(
        new RegExp(
          `^WARNING: password file "${file}" has group or world access; .*\\n.* \\(password file ${file} ignored: its group and others have access to it \\(mode 0644\\)\\); hint: DATABASE_URL names no password and the server asks for one; the password file ${file} is ignored, as libpq ignores it, since its group and others have access to it \\(mode 0644\\): chmod 600 ${file}\\n$`,
        ),
      );
      // check's database step gives the same fix (its site step fails apart: nothing listens at port 9).
      const checked = await cli(['check'], { CPQ_BASE_URL: 'http://127.0.0.1:9', DATABASE_URL: url.toString(), PGPASSFILE: file });
      expect(checked.code).toBe(1);
      expect(checked.stdout).toMatch(
        new RegExp(
          `✗ database +cannot connect to Postgres at \\S+: .*\\n +fix: DATABASE_URL names no password .*the password file ${file} is ignored, .*: chmod 600 ${file}\\n`,
        ),
      );

      // So with PGPASSWORD set but empty: the file is looked at, and its mode named.
      const looseEmpty = await cli(['migrate'], { DATABASE_URL: url.toString(), PGPASSFILE: file, PGPASSWORD: '' });
      expect(looseEmpty.code).toBe(6);
      expect(looseEmpty.stderr).toMatch(
        /^WARNING: password file .*; hint: .* is ignored, as libpq ignores it, since its group and others have access to it \(mode 0644\): chmod 600 /s,
      );

      // Only others (not the group) given access, the hint says so.
      await chmod(file, 0o604);
      const others = await cli(['migrate'], { DATABASE_URL: url.toString(), PGPASSFILE: file });
      expect(others.code).toBe(6);
      expect(others.stderr).toMatch(/; hint: .* is ignored, as libpq ignores it, since others have access to it \(mode 0604\): chmod 600 /);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
