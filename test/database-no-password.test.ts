import { describe, expect } from 'vitest';
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
