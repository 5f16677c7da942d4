import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import dotenv from 'dotenv';
import { ConfigError } from './config.js';

/**
 * Reads `.env` in the working directory (or the file DOTENV_CONFIG_PATH names) into the
 * environment, variables already set winning (unless DOTENV_CONFIG_OVERRIDE=true), unless another
 * local user could have written it: in a folder others can write to (a shared working directory,
 * /tmp), someone else's `.env` would set what the operator left unset, DATABASE_URL among it
 * (every synced user's personal data to their database). Refused, not skipped: the operator meant
 * some `.env` to apply.
 *
 * The file is opened once, and what is checked is the file opened (fstat), then read from that
 * same descriptor: a name checked and then opened again could be swapped in between.
 */
export function loadDotenvFile(env: NodeJS.ProcessEnv = process.env): void {
  if (env.DOTENV_KEY) throw new ConfigError('DOTENV_KEY: encrypted .env.vault files are not read; decrypt it to a .env file');
  const named = env.DOTENV_CONFIG_PATH ? env.DOTENV_CONFIG_PATH.replace(/^~(?=\/|$)/, homedir()) : undefined;
  const path = named ?? '.env';
  const encoding = env.DOTENV_CONFIG_ENCODING ?? 'utf8';
  if (!Buffer.isEncoding(encoding)) throw new ConfigError(`DOTENV_CONFIG_ENCODING: "${encoding}" is not an encoding`);
  let link: Stats;
  try {
    link = lstatSync(path);
  } catch {
    if (named !== undefined) throw new ConfigError(`DOTENV_CONFIG_PATH: cannot read ${path}`);
    return; // none
  }
  let fd;
  try {
    // The implicit .env without waiting on a FIFO put in its place; a pipe named on purpose
    // (DOTENV_CONFIG_PATH=<(sops -d …), /dev/stdin) is read as it comes.
    fd = openSync(path, constants.O_RDONLY | (named === undefined ? constants.O_NONBLOCK : 0));
  } catch (err) {
    throw new ConfigError(`${path}: cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const file = fstatSync(fd);
    // A folder named .env (a Python virtual environment's usual name) is no configuration.
    if (file.isDirectory() && named === undefined) return;
    const uid = process.getuid?.();
    if (uid !== undefined) {
      // The link (one someone else owns may be pointed elsewhere) and the file it led to.
      for (const [what, stats] of [
        ['', link],
        [link.isSymbolicLink() ? ' (what the link names)' : '', file],
      ] as const) {
        const problem =
          stats.uid !== uid && stats.uid !== 0
            ? `is owned by uid ${stats.uid}, not by this user (${uid}) or root`
            : !stats.isSymbolicLink() && (stats.mode & 0o022) !== 0
              ? `can be written by ${(stats.mode & 0o002) !== 0 ? 'every user' : 'its group'} (mode ${(stats.mode & 0o777).toString(8)})`
              : undefined;
        if (problem !== undefined) {
          throw new ConfigError(
            `${path}${what} ${problem}: refusing to read it, since whoever wrote it sets the configuration (DATABASE_URL among it); make it yours and not writable by others (chown, chmod go-w)`,
          );
        }
      }
    }
    if (!file.isFile() && (named === undefined || file.isDirectory())) throw new ConfigError(`${path} is not a file`);
    dotenv.populate(env, dotenv.parse(readFileSync(fd).toString(encoding)), { override: env.DOTENV_CONFIG_OVERRIDE === 'true' });
  } finally {
    closeSync(fd);
  }
}
