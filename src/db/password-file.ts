import { createReadStream, stat } from 'node:fs';
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

/** The password the password file gives `target`, as pgpass's own entry point finds it, but in passwordFileName's file. */
function lookUp(target: Parameters<typeof pgpass.getPassword>[0]): Promise<{ password: string; file: string } | undefined> {
  const file = passwordFileName();
  return new Promise((resolve) =>
    stat(file, (err, stats) => {
      if (err || !pgpass.usePgPass(stats, file)) {
        resolve(undefined);
        return;
      }
      pgpass.getPassword(target, createReadStream(file), (password) => resolve(password === undefined ? undefined : { password, file }));
    }),
  );
}

/** The clients whose password the password file gave, with its name. */
const fromFile = new WeakMap<pg.Client, string>();

/**
 * Has `client`, when neither its URL nor PGPASSWORD gives it a password, take it from the password
 * file, as psql would. node-postgres reads that file itself, but says on stderr at every connection
 * that it will stop (pg 9): a line in front of every command's output, and support an upgrade
 * would end. The file's own warnings (one others can read is ignored, as libpq ignores it) still
 * go to stderr, as psql's do.
 */
export function readPasswordFileWhenNone(client: pg.Client): void {
  // node-postgres leaves it null (whatever its types say) when neither the URL nor PGPASSWORD gives one.
  if (typeof client.password === 'string') return;
  // node-postgres calls a function given as the password with the connection's parameters.
  const fromPasswordFile = async (target: Parameters<typeof lookUp>[0]) => {
    const found = await lookUp(target);
    if (found !== undefined) fromFile.set(client, found.file);
    return found?.password;
  };
  (client as { password?: unknown }).password = fromPasswordFile;
}

/**
 * A failed connection's error, saying when the password tried came from the password file: else
 * its fix would ask for a password the operator did give (the hint reads this note).
 */
export function withPasswordFileNoted<E>(client: pg.Client, err: E): E {
  const file = fromFile.get(client);
  if (file !== undefined && err instanceof Error) err.message = `${err.message} (password from ${file})`;
  return err;
}
