import { readFileSync, readlinkSync, type Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { errorCode } from './errors.js';

/**
 * Whether a process of that id runs on this machine (EPERM: it does, as another user). A zombie
 * does not: it has ended and waits for its parent to reap it, which an orphan's new parent may
 * never do (PID 1 of some containers does not reap: an embedded server that stopped after its
 * starter was killed stayed "running" to kill(pid, 0)).
 */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errorCode(err) === 'ESRCH') return false;
  }
  return !isZombie(pid);
}

/** Linux's /proc: the state after the command name in /proc/<pid>/stat; false where it cannot be told. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** This machine's name as a file name can hold it (no `-`, which separates the parts of ownerTag). */
const machine = () =>
  hostname()
    .replace(/[^A-Za-z0-9.]/g, '_')
    .slice(0, 64) || 'host';

/**
 * The process-id namespace of this process (the inode /proc/self/ns/pid names): containers that
 * share a host name and a folder (host networking, replicas given one hostname) each number their
 * processes anew, so a process id means something only within its namespace. `x` where it cannot
 * be read (not Linux): what such a process leaves is never judged (leftByEndedProcess).
 */
function pidNamespace(): string {
  try {
    return /\[([0-9]+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? 'x';
  } catch {
    return 'x';
  }
}

/**
 * `<machine>-<pid namespace>-<pid>`: put in the name of a temporary file or folder, it says which
 * process made it, so that a later process can remove what a killed one (SIGKILL, the
 * out-of-memory killer, which run no cleanup) left. OWNER_TAG matches it.
 */
export const ownerTag = () => `${machine()}-${pidNamespace()}-${String(process.pid)}`;

/** An ownerTag as a pattern part: machine, pid namespace and pid captured, in that order. */
export const OWNER_TAG = '([A-Za-z0-9._]+)-([0-9]+|x)-([0-9]+)';

/** Whether an ownerTag's machine and namespace are this process's, so that its process id means a process here (false where the namespace cannot be read). */
export function taggedHere(tagMachine: string, tagNamespace: string): boolean {
  const namespace = pidNamespace();
  return namespace !== 'x' && tagMachine === machine() && tagNamespace === namespace;
}

/**
 * Whether the process an ownerTag names (its three parts) has ended: only a process of this
 * machine and process-id namespace (a process id of another names another process), not this
 * one, that no longer runs (a live process, even another user's, keeps what it made: its id may
 * have been reused; that then waits for a later look after it ends). False where this process's
 * namespace cannot be read.
 */
export function leftByEndedProcess(tagMachine: string, tagNamespace: string, tagPid: string): boolean {
  if (!taggedHere(tagMachine, tagNamespace)) return false;
  const pid = Number(tagPid);
  return Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !processRuns(pid);
}

/**
 * What processes since ended left in `folder`, for the caller to remove: the entries whose name
 * `tagOf` finds an ownerTag in (its three groups, in OWNER_TAG's order) naming a process that has
 * ended (leftByEndedProcess: a running one keeps its own), of this user (another account's are not
 * ours to judge), each with its lstat (a link is never followed). Never throws: a folder or entry
 * it cannot read is left out.
 */
export async function leftoversOfEndedProcesses(folder: string, tagOf: (name: string) => RegExpExecArray | null): Promise<{ path: string; stats: Stats }[]> {
  const names = await readdir(folder).catch(() => [] as string[]);
  const uid = process.getuid?.();
  const leftovers: { path: string; stats: Stats }[] = [];
  for (const name of names) {
    const tag = tagOf(name);
    if (!tag || !leftByEndedProcess(tag[1]!, tag[2]!, tag[3]!)) continue;
    const path = join(folder, name);
    const stats = await lstat(path).catch(() => undefined);
    if (stats !== undefined && (uid === undefined || stats.uid === uid)) leftovers.push({ path, stats });
  }
  return leftovers;
}
