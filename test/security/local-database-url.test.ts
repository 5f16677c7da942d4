import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { redactUrl } from '../../src/db/database.js';
import { cli } from '../helpers/cli-process.js';
import { it } from '../helpers/fixtures.js';

/** The same server and database, with the password moved from the user part into the query string. */
function passwordInQuery(url: string, extra: Record<string, string> = {}): { url: string; password: string } {
  const parsed = new URL(url);
  const password = decodeURIComponent(parsed.password);
  parsed.password = '';
  parsed.searchParams.set('password', password);
  for (const [name, value] of Object.entries(extra)) parsed.searchParams.set(name, value);
  return { url: parsed.toString(), password };
}

describe("a password in DATABASE_URL's query string", () => {
  it('`migrate` names the database without printing the password given as ?password=', async ({ createDatabase }) => {
    const t = await createDatabase();
    const { url, password } = passwordInQuery(t.url);
    // A server that asks for no password would make this test prove nothing.
    expect(password.length).toBeGreaterThan(3);
    const out = await cli(['migrate'], { DATABASE_URL: url });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('database is up to date');
    expect(out.stdout).toContain('password=***');
    const printed = out.stdout + out.stderr;
    expect(printed).not.toContain(`password=${encodeURIComponent(password)}`);
    expect(printed).not.toContain(`password=${password}`);
    expect(printed).not.toContain(`:${password}@`);
  });

  it('a connection error prints neither ?password= nor ?sslpassword= nor other secret-looking parameters', async () => {
    const secrets = ['Pw-in-query-7391', 'Ssl-pw-2284', 'Token-5521'];
    const url = `postgres://sync@127.0.0.1:1/warehouse?password=${secrets[0]}&sslpassword=${secrets[1]}&api_token=${secrets[2]}&application_name=nightly`;
    for (const command of [['migrate'], ['status']]) {
      const out = await cli(command, { DATABASE_URL: url });
      expect(out.code).toBe(6);
      expect(out.stderr).toMatch(
        /^cpq-sync: cannot connect to Postgres at postgres:\/\/sync@127\.0\.0\.1:1\/warehouse\?password=\*\*\*&sslpassword=\*\*\*&api_token=\*\*\*&application_name=nightly: /,
      );
      for (const secret of secrets) expect(out.stdout + out.stderr).not.toContain(secret);
    }
  });

  it('redactUrl hides the user-part password and every secret-looking parameter, and keeps the rest', () => {
    expect(redactUrl('postgres://u:p%40ss@db:5432/w?PASSWORD=a&sslpassword=b&sslmode=require&password=c')).toBe(
      'postgres://u:***@db:5432/w?PASSWORD=***&sslpassword=***&sslmode=require&password=***',
    );
    expect(redactUrl('postgres://db/w?sslmode=verify-full&host=%2Fvar%2Frun')).toBe('postgres://db/w?sslmode=verify-full&host=%2Fvar%2Frun');
  });
});

describe('DATABASE_URL in the socket form with an empty host (postgres://user:pw@/db?host=/run/postgresql)', () => {
  it('is read as node-postgres reads it: `migrate` connects through the socket, and names the database with the password hidden', async ({
    createDatabase,
    skip,
  }) => {
    const t = await createDatabase();
    const given = new URL(t.url);
    // The server's own socket folder (the embedded one's private folder; none reachable in a container).
    const folder = (await t.query<{ dirs: string }>(`SELECT current_setting('unix_socket_directories') AS dirs`))[0]!.dirs.split(',')[0]!.trim();
    const port = (await t.query<{ port: string }>(`SELECT current_setting('port') AS port`))[0]!.port;
    skip(!existsSync(join(folder, `.s.PGSQL.${port}`)), `the test server has no socket this process can reach (${folder || 'none'})`);
    const password = decodeURIComponent(given.password);
    expect(password.length).toBeGreaterThan(3);
    const url = `postgres://${given.username}:${given.password}@${given.pathname}?host=${encodeURIComponent(folder)}&port=${port}`;
    const out = await cli(['migrate'], { DATABASE_URL: url });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`postgres://${given.username}:***@${given.pathname}?host=`);
    expect(out.stdout + out.stderr).not.toContain(password);
  });

  it('redactUrl hides its password and keeps its empty host', () => {
    expect(redactUrl('postgres://sync:S3cret@/warehouse?host=/run/postgresql&password=x')).toBe(
      'postgres://sync:***@/warehouse?host=%2Frun%2Fpostgresql&password=***',
    );
  });
});

describe('a DATABASE_URL whose password is no URL password (review HM)', () => {
  // An unescaped / ? # in the password ends the URL's host early; without `//` (or a scheme) no part is a password. Each was printed whole.
  const urls = [
    'postgres://sync:2024/Spring-hunter2@127.0.0.1:1/db',
    'postgres://sync:12#hunter2x@127.0.0.1:1/db',
    'postgres://sync:#hunter2x@127.0.0.1:1/db',
    'postgresql://sync:?hunter2x@127.0.0.1:1/db',
    'postgres://sync:p@ss#hunter2x@127.0.0.1:1/db',
    'postgres:/sync:hunter2x@127.0.0.1:1/db',
    'postgres:sync:hunter2x@127.0.0.1:1/db',
    'sync:hunter2x@127.0.0.1:1/db',
    '//sync:hunter2x@127.0.0.1:1/db',
    'mysql://sync:hunter2x@127.0.0.1:1/db',
  ];
  it.each(urls)('%s is refused as configuration (exit code 2), in one line that holds no part of it', async (url) => {
    const out = await cli(['status'], { DATABASE_URL: url });
    expect(out.code, out.stderr).toBe(2);
    expect(out.stderr).toMatch(/^cpq-sync: invalid configuration: DATABASE_URL: (is not a postgres:\/\/ URL|holds an @ after its host)[^\n]*\n$/);
    expect(out.stdout + out.stderr).not.toContain('hunter2');
  });

  // An @ in a query value node-postgres reads as such (Azure's user@server login) is no password's rest (review HP).
  it.each([
    'postgres://127.0.0.1:1/warehouse?user=myadmin@myserver&password=hunter2x',
    'postgresql://u:hunter2x@127.0.0.1:1/db?application_name=sync@prod',
    // A certificate file whose name holds an @ (review IZ): node-postgres reads it; here it is not there, so the connection is tried after.
    'postgres://u:hunter2x@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca@corp.pem',
    // In a folder's name too, as systemd's credentials of a template unit are (review JA).
    'postgres://u:hunter2x@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/run/credentials/cpq-sync@prod.service/ca.pem',
  ])('%s is read: the connection is tried, its password hidden', async (url) => {
    const out = await cli(['status'], { DATABASE_URL: url });
    expect(out.code, out.stderr).toBe(6);
    expect(out.stderr).toMatch(/^cpq-sync: cannot connect to Postgres at postgres(ql)?:\/\/\S+: /);
    expect(out.stdout + out.stderr).not.toContain('hunter2');
  });
});

describe('a DATABASE_URL whose password holds an unescaped ? and = (review IM)', () => {
  // Digits (or nothing) up to the `?`, then name=value, with no port or path after the host: the URL
  // read as the host `sync`, port 2024 and a parameter `Spring`, with the password's rest in its value,
  // so it passed the check for an @ after the host (an @ in a query value, as Azure's user=admin@server)
  // and was printed whole by every command (`check` in its heading too).
  const refused = [
    'postgres://sync:2024?Spring=Summer9hunter2@localhost',
    'postgres://sync:?Spring=Summer9hunter2@localhost',
    'postgres://sync:2024/?Spring=Summer9hunter2@localhost',
    // After a database name too, in a parameter node-postgres gives no meaning to (review IN).
    'postgres://sync:2024/x?Spring=Summer9hunter2@localhost',
  ];
  it.each(refused)('%s is refused as configuration (exit code 2) by migrate, status and check, without printing the password', async (url) => {
    for (const command of ['migrate', 'status', 'check']) {
      const out = await cli([command], { DATABASE_URL: url, DATABASE_CONNECT_TIMEOUT: '5s', CPQ_BASE_URL: 'https://cpq.invalid' });
      expect(out.stdout + out.stderr, command).not.toContain('hunter2');
      expect(out.stdout + out.stderr, command).toContain('DATABASE_URL: holds an @ after its host');
      expect(out.code, `${command}: ${out.stderr}`).toBe(2);
    }
  });

  // With a path before the `?` and a name that takes a login (user=admin@server), no rule tells the
  // rest of such a password from a login, so the connection is tried: the value holding the @ is hidden.
  it('with a path before the ? and user=, the connection is tried and the value holding the @ is hidden', async () => {
    const out = await cli(['status'], { DATABASE_URL: 'postgres://sync:2024/x?user=Summer9hunter2@localhost', DATABASE_CONNECT_TIMEOUT: '5s' });
    expect(out.code, out.stderr).toBe(6);
    expect(out.stderr).toMatch(/^cpq-sync: cannot connect to Postgres at postgres:\/\/sync:2024\/x\?user=\*\*\*: /);
    expect(out.stdout + out.stderr).not.toContain('hunter2');
  });

  // Azure's login without a database name: written with %40, which node-postgres decodes.
  it('postgres://127.0.0.1:1?user=myadmin%40myserver&password=hunter2x is read: the connection is tried, its password hidden', async () => {
    const out = await cli(['status'], { DATABASE_URL: 'postgres://127.0.0.1:1?user=myadmin%40myserver&password=hunter2x' });
    expect(out.code, out.stderr).toBe(6);
    expect(out.stderr).toMatch(/^cpq-sync: cannot connect to Postgres at postgres:\/\/127\.0\.0\.1:1\?user=\*\*\*&password=\*\*\*: /);
    expect(out.stdout + out.stderr).not.toContain('hunter2');
  });

  it('redactUrl hides every query value holding an @, and keeps the others', () => {
    expect(redactUrl('postgres://sync:2024/x?Spring=Summer9hunter2@db&application_name=sync@prod&sslmode=require')).toBe(
      'postgres://sync:2024/x?Spring=***&application_name=***&sslmode=require',
    );
  });
});
