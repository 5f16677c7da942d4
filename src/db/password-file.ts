import { createReadStream, stat, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import pgpass from 'pgpass/lib/helper.js';

/**
 * The password file libpq reads: PGPASSFILE, or ~/.pgpass. Without HOME (a service's environment),
 * the account's home folder, as libpq finds it; node-postgres read ./.pgpass of the working
 * directory then, a file anyone who can write there could have made.
 */
function passwordFileName(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGPASSFILE || join(env.HOME || homedir(), '.pgpass');
}

/**
 * Why usePgPass refused the file of `stats`, when it was for its mode: its group or others have
 * access to it (usePgPass warned of that on stderr); undefined when it was for another reason (not
 * a plain file). libpq ignores such a file too, its lines unread: the hint then asks for a chmod,
 * not for a line.
 */
function looseMode(stats: Stats): string | undefined {
  const access = stats.mode & 0o077;
  if (!stats.isFile() || access === 0) return undefined;
  const who = access & 0o070 ? (access & 0o007 ? 'its group and others have' : 'its group has') : 'others have';
  return `${who} access to it (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')})`;
}

/**
 * pgpass's check of the file (a plain file no one else may read, with libpq's warnings), which
 * also refuses it whenever PGPASSWORD is in the environment. It is looked up only when the
 * connection has no password, PGPASSWORD set but empty included: libpq reads the file then (an
 * empty password is none), and `PGPASSWORD=` in a .env made the file's right line go unread.
 */
function usable(stats: Stats, file: string): boolean {
  const empty = process.env.PGPASSWORD;
  if (empty === undefined) return pgpass.usePgPass(stats, file);
  // Synchronous: nothing else runs while PGPASSWORD (empty, no secret) is out of the environment.
  delete process.env.PGPASSWORD;
  try {
    return pgpass.usePgPass(stats, file);
  } finally {
    process.env.PGPASSWORD = empty;
  }
}

/**
 * The password the password file gives `target`, as pgpass's own entry point finds it, but in
 * passwordFileName's file; or why that file, there, was ignored.
 */
function lookUp(target: Parameters<typeof pgpass.getPassword>[0]): Promise<{ password: string; file: string } | { ignored: string; file: string } | undefined> {
  const file = passwordFileName();
  return new Promise((resolve) =>
    stat(file, (err, stats) => {
      if (err) {
        resolve(undefined);
        return;
      }
      if (!usable(stats, file)) {
        const ignored = looseMode(stats);
        resolve(ignored === undefined ? undefined : { ignored, file });
        return;
      }
      pgpass.getPassword(target, createReadStream(file), (password) => resolve(password === undefined ? undefined : { password, file }));
    }),
  );
}

/** What the password file did for a client: the note its failed connection's error gets (withPasswordFileNoted). */
const fromFile = new WeakMap<pg.Client, string>();

/**
 * Has `client`, when neither its URL nor PGPASSWORD gives it a password, take it from the password
 * file, as psql would. node-postgres reads that file itself, but says on stderr at every connection
 * that it will stop (pg 9): a line in front of every command's output, and support an upgrade
 * would end. The file's own warnings (one others can read is ignored, as libpq ignores it) still
 * go to stderr, as psql's do.
 */
export function readPasswordFileWhenNone(client: pg.Client): void {
  // node-postgres leaves it null (whatever its types say) when neither the URL nor PGPASSWORD gives
  // one, and '' when either gives an empty one, which libpq takes for none and reads the file.
  if (typeof client.password === 'string' && client.password !== '') return;
  // node-postgres calls a function given as the password with the connection's parameters.
  const fromPasswordFile = async (target: Parameters<typeof lookUp>[0]) => {
    const found = await lookUp(target);
    if (found === undefined) return undefined;
    if ('ignored' in found) {
      fromFile.set(client, `password file ${found.file} ignored: ${found.ignored}`);
      return undefined;
    }
    fromFile.set(client, `password from ${found.file}`);
    return found.password;
  };
  (client as { password?: unknown }).password = fromPasswordFile;
}

/**
 * A failed connection's error, saying when the password tried came from the password file, or
 * that the file was there but ignored for its mode: else its fix would ask for a password, or a
 * line of that file, the operator did give (the hint reads this note).
 */
export function withPasswordFileNoted<E>(client: pg.Client, err: E): E {
  const note = fromFile.get(client);
  if (note !== undefined && err instanceof Error) err.message = `${err.message} (${note})`;
  return err;
}
