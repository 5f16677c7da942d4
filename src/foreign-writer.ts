import { closeSync, fstatSync, type Stats } from 'node:fs';
import { ownPrivateGroup } from './local-paths.js';

/**
 * Why another local user could have written what `stats` describes (a file of configuration, or
 * the link naming it), or undefined: owned by someone other than this user (`uid`) or root, or,
 * not being a link, writable by every user, or by its group unless that group is this user's
 * private one (umask 002, the default of user private groups, makes every file so). `.env` and
 * CPQ_SITES_FILE are refused so: whoever writes either chooses where the credentials go.
 */
export function foreignWriter(stats: Stats, uid: number): string | undefined {
  if (stats.uid !== uid && stats.uid !== 0) return `is owned by uid ${stats.uid}, not by this user (${uid}) or root`;
  const groupWrites = (stats.mode & 0o020) !== 0 && !ownPrivateGroup().includes(stats.gid);
  if (!stats.isSymbolicLink() && ((stats.mode & 0o002) !== 0 || groupWrites))
    return `can be written by ${(stats.mode & 0o002) !== 0 ? 'every user' : 'its group'} (mode ${(stats.mode & 0o777).toString(8)})`;
  return undefined;
}

/**
 * foreignWriter of a configuration file opened through a name: of the name itself (a link someone
 * else owns may be pointed elsewhere), then of the file it led to; the problem, after which of the
 * two (" (what the link names) is owned by ..."), or undefined.
 */
export function foreignWriterOfOpened(link: Stats, file: Stats, uid: number): string | undefined {
  for (const [what, stats] of [
    ['', link],
    [link.isSymbolicLink() ? ' (what the link names)' : '', file],
  ] as const) {
    const problem = foreignWriter(stats, uid);
    if (problem !== undefined) return `${what} ${problem}`;
  }
  return undefined;
}

/**
 * A pipe opened without waiting (O_NONBLOCK: someone else's FIFO would otherwise hold the start
 * before any check), once checked, opened again by `open` blocking, so that it is read as it
 * comes (`<(sops -d …)`): the new descriptor, the first one closed; or undefined, the new one
 * closed, when the name now leads to another file than the one checked (swapped meanwhile).
 */
export function reopenPipeBlocking(fd: number, checked: Stats, open: () => number): number | undefined {
  const blocking = open();
  const again = fstatSync(blocking);
  if (again.dev !== checked.dev || again.ino !== checked.ino) {
    closeSync(blocking);
    return undefined;
  }
  closeSync(fd);
  return blocking;
}
