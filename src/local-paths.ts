import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * The first part of `path` (a folder on the way, or the path itself) that another local user
 * could change: one owned by a user not in `trusted.users`, or a folder every user, or a group not
 * in `trusted.groups`, may write to without the sticky bit (they may rename what is in it). A
 * group-writable folder of this user's private group (umask 002 makes them) or root's is trusted. Checked as given, link by link, and
 * as resolved. As root, a data folder another user had replaced with a link was handed to the
 * postgres account (chown) and its password file's target made 0600 (chmod), wherever it led.
 * `leaf` adds whom the path itself may belong to: the server's account its data folder, never a
 * folder on the way to it (review CZ: as root, a link the account put in a folder of its own on
 * the way had root hand it any folder named like the data folder, and create files beside it).
 */
export function foreignPathPart(
  path: string,
  trusted: { users: ReadonlySet<number>; groups: ReadonlySet<number> },
  leaf: { users: ReadonlySet<number>; groups: ReadonlySet<number> } = trusted,
): string | undefined {
  const check = (full: string, whole: boolean) => {
    const parts: string[] = [];
    for (let dir = resolve(full); ; dir = dirname(dir)) {
      parts.unshift(dir);
      if (dirname(dir) === dir) break;
    }
    for (const [i, part] of parts.entries()) {
      let stats;
      try {
        stats = lstatSync(part);
      } catch {
        return undefined; // what does not exist yet, this process creates
      }
      const own = whole && i === parts.length - 1 && !stats.isSymbolicLink() ? leaf : trusted;
      if (!trusted.users.has(stats.uid) && !own.users.has(stats.uid)) return `${part} belongs to uid ${stats.uid}`;
      if (stats.isDirectory() && (stats.mode & 0o1000) === 0) {
        if ((stats.mode & 0o002) !== 0) return `${part} can be written by every user (no sticky bit)`;
        if ((stats.mode & 0o020) !== 0 && !trusted.groups.has(stats.gid) && !own.groups.has(stats.gid))
          return `${part} can be written by its group ${stats.gid} (no sticky bit)`;
      }
    }
    return undefined;
  };
  let real = resolve(path);
  while (!existsSync(real) && dirname(real) !== real) real = dirname(real);
  return check(path, true) ?? check(realpathSync(real), real === resolve(path));
}

/** The entries of /etc/passwd's text (name, password, uid, gid, …), each split at its colons; lines too short to hold a gid left out. */
function accountsIn(passwd: string): string[][] {
  return passwd
    .split('\n')
    .map((line) => line.split(':'))
    .filter((a) => a.length > 3);
}

/** `postgres (uid 101)`: a uid with the name /etc/passwd gives it, for messages (`uid 101` where it gives none). */
export function uidName(uid: number): string {
  try {
    const name = accountsIn(readFileSync('/etc/passwd', 'utf8')).find((a) => Number(a[2]) === uid)?.[0];
    return name ? `${name} (uid ${uid})` : `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
}

/**
 * This process's group when it is this user's alone (a user private group, as umask 002 goes
 * with): /etc/group names it after this user (as /etc/passwd does), no other account has it as its
 * primary group, and no name /etc/group gives it lists another member. A shared one (`users`), or
 * one known by neither file, lets its other members rename what its group may write.
 */
export function ownPrivateGroup(): number[] {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid === undefined || gid === undefined || gid === 0) return [];
  try {
    return privateGroupIn(uid, gid, readFileSync('/etc/passwd', 'utf8'), readFileSync('/etc/group', 'utf8'));
  } catch {
    return [];
  }
}

/** ownPrivateGroup's answer for `uid` and `gid` from the text of /etc/passwd and /etc/group. */
export function privateGroupIn(uid: number, gid: number, passwd: string, group: string): number[] {
  const accounts = accountsIn(passwd);
  const me = accounts.find((a) => Number(a[2]) === uid)?.[0];
  if (accounts.some((a) => Number(a[2]) !== uid && Number(a[3]) === gid)) return [];
  // Every name /etc/group gives the gid: a second one (groupadd -o) listing another account made
  // that account a member too, and what "your" group may write was theirs to change (review DV).
  const names = group
    .split('\n')
    .map((line) => line.split(':'))
    .filter((g) => g.length > 2 && g[2] !== '' && Number(g[2]) === gid);
  // Known to be private only when /etc/group lists it under the user's own name with no other
  // member: a group from a directory (SSSD, LDAP: "domain users") is in neither file, and was
  // taken for private though every account of the domain has it (review DR).
  if (me === undefined || !names.some((g) => g[0] === me)) return [];
  const members = names.flatMap((g) => (g[3] ?? '').split(',')).filter((m) => m.trim() !== '' && m.trim() !== me);
  return members.length === 0 ? [gid] : [];
}

/**
 * Why `dir` (TMPDIR) is refused for `folder`, a private folder this process makes in it, or
 * undefined: another local user could swap that folder for one of theirs where a part of its path
 * is someone else's, or its group (not this user's private one, nor root's) or every user may
 * write it without the sticky bit. /tmp, root's and sticky, is fine: there only a folder's owner
 * may rename it. `exposed` says what they would then get; `orElse`, another way out.
 */
export function tmpdirRefusal(dir: string, folder: string, exposed = '', orElse = ''): string | undefined {
  const problem = foreignPathPart(dir, { users: new Set([0, process.getuid?.() ?? 0]), groups: new Set([0, ...ownPrivateGroup()]) });
  if (problem === undefined) return undefined;
  return `refusing TMPDIR ${dir} for ${folder}: ${problem}, so another local user could put a folder of theirs in its place${exposed}; set TMPDIR to a folder only you (or root) can change (/tmp is fine)${orElse}`;
}
