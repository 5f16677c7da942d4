import { lstatSync, statSync, type Stats } from 'node:fs';
import dotenv from 'dotenv';
import { ConfigError } from './config.js';

/**
 * Reads `.env` in the working directory into the environment (variables already set win), unless
 * another local user could have written it: in a folder others can write to (a shared working
 * directory, /tmp), someone else's `.env` would set what the operator left unset, DATABASE_URL
 * among it (every synced user's personal data to their database). Refused, not skipped: the
 * operator meant some `.env` to apply.
 */
export function loadDotenvFile(path = '.env'): void {
  let link: Stats;
  try {
    link = lstatSync(path);
  } catch {
    return; // none
  }
  const uid = process.getuid?.();
  if (uid !== undefined) {
    // The link and what it names: either, written by someone else, says what is read.
    for (const [what, stats] of [
      ['', link],
      [' (what the link names)', link.isSymbolicLink() ? statSync(path) : link],
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
  dotenv.config({ path, quiet: true });
}
