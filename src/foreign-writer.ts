import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, statSync, type Stats } from 'node:fs';
import { parseConnectionUrl } from './connection-url.js';
import { ownPrivateGroup } from './local-paths.js';

/**
 * Why another local user could have written what `stats` describes (a file of configuration, or
 * the link naming it), or undefined: owned by someone other than this user (`uid`) or root, or,
 * not being a link, writable by every user, or by its group unless that group is this user's
 * private one (umask 002, the default of user private groups, makes every file so). `.env` and
 * CPQ_SITES_FILE are refused so (readOwnConfigFile): whoever writes either chooses where the
 * credentials go.
 */
function foreignWriter(stats: Stats, uid: number): string | undefined {
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
function foreignWriterOfOpened(link: Stats, file: Stats, uid: number): string | undefined {
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
function reopenPipeBlocking(fd: number, checked: Stats, open: () => number): number | undefined {
  const blocking = open();
  const again = fstatSync(blocking);
  if (again.dev !== checked.dev || again.ino !== checked.ino) {
    closeSync(blocking);
    return undefined;
  }
  closeSync(fd);
  return blocking;
}

/**
 * Whether a user other than this one may read the file: every user may, or its group may and that
 * group is not this user's private one (a secret in a file of mode 660 under umask 002 is this
 * user's alone, and was warned about for nothing, review DV).
 */
export function othersMayRead(file: Stats, privateGroups: readonly number[] = ownPrivateGroup()): boolean {
  return (file.mode & 0o004) !== 0 || ((file.mode & 0o040) !== 0 && !privateGroups.includes(file.gid));
}

/**
 * Why another local user could have written the file at `path` (or the link naming it), as
 * readOwnConfigFile judges it, or undefined; for a file another library reads (a certificate
 * DATABASE_URL names), which is therefore looked at and not opened (a pipe read here would be
 * empty there). Throws the system's error (ENOENT …).
 */
export function foreignWriterOfPath(path: string): string | undefined {
  const uid = process.getuid?.();
  return uid === undefined ? undefined : foreignWriterOfOpened(lstatSync(path), statSync(path), uid);
}

/**
 * What follows the problem of a file another local user could have written, in every refusal of
 * one: what is not done, what its writer would choose, and the fix.
 */
export function foreignWriterRefusal(refusing: 'read it' | 'connect' | 'start', writerChooses: string): string {
  return `: refusing to ${refusing}, since whoever wrote it ${writerChooses}; make it yours and not writable by others (chown, chmod go-w)`;
}

/** What whoever writes each certificate file a connection string names chooses. */
const DATABASE_CERTIFICATE_FILES: Record<string, string> = {
  sslrootcert: 'which server is trusted as the database, and so where its password goes',
  sslcert: 'which client certificate the connections present',
  sslkey: 'which client key the connections present',
};

/**
 * Why a connection to `url` is refused, when a certificate file it names (sslrootcert, sslcert,
 * sslkey) could have been written by another local user, or undefined: as with CPQ_CA_FILE
 * (review HA), a group member who added a CA of theirs to sslrootcert passed sslmode=verify-full as
 * the database, and was sent the password the tool sends only over verified TLS. node-postgres
 * reads those files at every connection, so it is asked there too (DatabaseClient), not only at
 * start (review HB). A file that cannot be read is left to the connection to name.
 */
export function foreignDatabaseCertificate(url: string): string | undefined {
  // The files named as node-postgres reads them too: it first encodes a URL holding a space or a
  // % that escapes nothing (encodeURI, %25 and two digits put back), so that "a b%4a.crt" is read
  // where this URL's own reading says "a bJ.crt" (review HC). Each reading's files are checked.
  let asDriverReads = url;
  try {
    if (/ |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url)) asDriverReads = encodeURI(url).replace(/%25(\d\d)/g, '%$1');
  } catch {
    // A lone surrogate: the driver cannot read the URL either.
  }
  const readings = [parseConnectionUrl(url)?.searchParams, parseConnectionUrl(asDriverReads)?.searchParams];
  for (const [name, chooses] of Object.entries(DATABASE_CERTIFICATE_FILES)) {
    const files = new Set(readings.flatMap((params) => params?.getAll(name) ?? []));
    for (const file of [...files].filter((f) => f !== '')) {
      let problem;
      try {
        problem = foreignWriterOfPath(file);
      } catch {
        continue;
      }
      if (problem !== undefined) return `its ${name} ${file}${problem}${foreignWriterRefusal('connect', `chooses ${chooses}`)}`;
    }
  }
  return undefined;
}

/** Why readOwnConfigFile did not read a file: what follows its name in the refusal (" is owned by uid 1001, …", " changed while it was opened", …). */
export class ConfigFileRefused extends Error {
  constructor(
    readonly reason: 'foreign-writer' | 'changed' | 'too-large',
    readonly problem: string,
  ) {
    super(problem);
  }
}

/**
 * A configuration file whose writer chooses what this process does (`.env`, CPQ_SITES_FILE,
 * ALERT_WEBHOOK_URL_FILE), read unless another local user could have written it
 * (foreignWriterOfOpened): its bytes and what it is; undefined when `skip` says so of what was
 * opened (a folder named .env). The file checked is the one read: the name is opened once
 * (without waiting on a FIFO, which someone else's would otherwise hold the start with), checked
 * through that descriptor, and read from it; a pipe or device named on purpose (`<(sops -d …)`,
 * /dev/stdin) is read as it comes, through a second descriptor that must be the same one.
 * Throws ConfigFileRefused, or the system's error (ENOENT, EACCES, EISDIR …) for its caller to word.
 */
export function readOwnConfigFile(
  path: string,
  options: { maxBytes?: number; skip?: (file: Stats) => boolean } = {},
): { bytes: Buffer; file: Stats } | undefined {
  const link = lstatSync(path);
  let fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const file = fstatSync(fd);
    if (options.skip?.(file) === true) return undefined;
    const uid = process.getuid?.();
    const problem = uid === undefined ? undefined : foreignWriterOfOpened(link, file, uid);
    if (problem !== undefined) throw new ConfigFileRefused('foreign-writer', problem);
    if (options.maxBytes !== undefined && file.size > options.maxBytes) throw new ConfigFileRefused('too-large', ` is larger than ${options.maxBytes} bytes`);
    if (!file.isFile() && !file.isDirectory()) {
      const blocking = reopenPipeBlocking(fd, file, () => openSync(path, constants.O_RDONLY));
      if (blocking === undefined) throw new ConfigFileRefused('changed', ' changed while it was opened');
      fd = blocking;
    }
    return { bytes: readFileSync(fd), file };
  } finally {
    closeSync(fd);
  }
}
