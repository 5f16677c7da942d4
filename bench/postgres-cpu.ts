import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type pg from 'pg';

/**
 * CPU time of a Postgres server on this machine, all its processes together, read from /proc:
 * what a run cost the database, beside the sync process's own CPU time. A sync's backend is one
 * process, so the CPU time it used is a floor for the run's wall time that no change to the sync's
 * own code can lower.
 *
 * A backend ends with its connection, before a run's end can be measured; the postmaster, which
 * reaps it, then counts its CPU time as its children's (cutime and cstime). So the server's total
 * is the postmaster's own and reaped children's time plus that of the children alive now, and it
 * only grows: the difference of two totals is what the server used in between, whichever
 * processes started or ended meanwhile.
 */
export class PostgresCpu {
  private constructor(
    private readonly postmaster: number,
    private readonly ticksPerSecond: number,
  ) {}

  /**
   * The server `client` is connected to, when it runs here and /proc shows its processes (Linux,
   * and the right to read them); undefined otherwise (a remote BENCH_DATABASE_URL).
   */
  static async find(client: pg.Client, url: string): Promise<PostgresCpu | undefined> {
    const host = new URL(url).hostname;
    if (!['127.0.0.1', 'localhost', '[::1]', ''].includes(host)) return undefined;
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const postmaster = stat(rows[0]!.pid).ppid;
      if (!readFileSync(`/proc/${postmaster}/cmdline`, 'utf8').includes('postgres')) return undefined;
      const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      return new PostgresCpu(postmaster, Number.isInteger(ticks) && ticks > 0 ? ticks : 100);
    } catch {
      return undefined;
    }
  }

  /** The server's CPU seconds so far (see above); compare two. */
  total(): number {
    const own = stat(this.postmaster);
    let ticks = own.utime + own.stime + own.cutime + own.cstime;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const child = stat(Number(entry));
        if (child.ppid === this.postmaster) ticks += child.utime + child.stime;
      } catch {
        // ended while we looked: the postmaster counts it from now on
      }
    }
    return ticks / this.ticksPerSecond;
  }
}

/** The fields of /proc/<pid>/stat used here (after the command name, which may hold spaces and parentheses). */
function stat(pid: number): { ppid: number; utime: number; stime: number; cutime: number; cstime: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 of proc(5): state; ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
  return { ppid: Number(fields[1]), utime: Number(fields[11]), stime: Number(fields[12]), cutime: Number(fields[13]), cstime: Number(fields[14]) };
}
