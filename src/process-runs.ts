import { readFileSync } from 'node:fs';
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
