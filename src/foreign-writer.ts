import type { Stats } from 'node:fs';

/**
 * Why another local user could have written what `stats` describes (a file of configuration, or
 * the link naming it), or undefined: owned by someone other than this user (`uid`) or root, or,
 * not being a link, writable by its group or every user. `.env` and CPQ_SITES_FILE are refused so:
 * whoever writes either chooses where the credentials go.
 */
export function foreignWriter(stats: Stats, uid: number): string | undefined {
  if (stats.uid !== uid && stats.uid !== 0) return `is owned by uid ${stats.uid}, not by this user (${uid}) or root`;
  if (!stats.isSymbolicLink() && (stats.mode & 0o022) !== 0)
    return `can be written by ${(stats.mode & 0o002) !== 0 ? 'every user' : 'its group'} (mode ${(stats.mode & 0o777).toString(8)})`;
  return undefined;
}
