import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type pg from 'pg';

/**
 * CPU time of a Postgres server on this machine, every process of it together (the postmaster,
 * the backends, the checkpointer, WAL and background writers, autovacuum), read from /proc: what
 * a run cost the database, beside the sync process's own CPU time.
 *
 * A backend ends with its connection, before a run's end can be measured; the postmaster, which
 * reaps it, then counts its CPU time as its children's (cutime and cstime). So the server's total
 * is the postmaster's own and reaped children's time plus that of the children alive now (theirs
 * and their own reaped children's), and it only grows: the difference of two totals is what the
 * server used in between, whichever processes started or ended meanwhile.
 */
export class PostgresCpu {
  private constructor(
    private readonly client: pg.Client,
    private readonly postmaster: number,
    private readonly ticksPerSecond: number,
  ) {}

  /**
   * The server `client` is connected to, when its processes are this machine's: the postmaster.pid
   * file in the server's data directory names the parent of the client's backend. Undefined
   * otherwise (a remote server, a container's, or no /proc to read).
   */
  static async find(client: pg.Client): Promise<PostgresCpu | undefined> {
    try {
      const { rows } = await client.query<{ pid: number; dir: string }>("SELECT pg_backend_pid() AS pid, current_setting('data_directory') AS dir");
      const { pid, dir } = rows[0]!;
      const postmaster = Number(readFileSync(`${dir}/postmaster.pid`, 'utf8').split('\n')[0]);
      if (stat(pid).ppid !== postmaster) return undefined;
      return new PostgresCpu(client, postmaster, clockTicksPerSecond());
    } catch {
      return undefined;
    }
  }

  /**
   * Starts sampling, every 100 ms, the CPU time of each backend whose connection names itself
   * `applicationName`; `stop` gives the most any one of them used, in seconds: the backend a run
   * writes through, the busiest of its connections. A backend's last 100 ms before it ended may
   * be missed.
   */
  sampleBackends(applicationName: string): { stop: () => Promise<number | undefined> } {
    const used = new Map<number, number>();
    let sampling: Promise<void> | undefined;
    const sample = async () => {
      const { rows } = await this.client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
      for (const { pid } of rows) {
        try {
          const { utime, stime } = stat(pid);
          used.set(pid, Math.max(used.get(pid) ?? 0, utime + stime));
        } catch {
          // ended since the query saw it
        }
      }
    };
    const tick = () => {
      sampling ??= sample()
        .catch(() => undefined)
        .finally(() => (sampling = undefined));
    };
    const timer = setInterval(tick, 100);
    return {
      stop: async () => {
        clearInterval(timer);
        await sampling;
        return used.size === 0 ? undefined : Math.max(...used.values()) / this.ticksPerSecond;
      },
    };
  }

  /** The server's CPU seconds so far (see above); compare two. */
  total(): number {
    // A child reaped between reading the postmaster and reading /proc would be in neither: the
    // postmaster is read again after, and the children again if it reaped one meanwhile.
    for (let attempt = 0; ; attempt++) {
      const reaped = reapedTicks(this.postmaster);
      let ticks = 0;
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const child = stat(Number(entry));
          if (child.ppid === this.postmaster) ticks += child.utime + child.stime + child.cutime + child.cstime;
        } catch {
          // ended while we looked, and reaped: the check below sees it
        }
      }
      const after = reapedTicks(this.postmaster);
      if (after === reaped || attempt === 4) return (after + ticks) / this.ticksPerSecond;
    }
  }
}

/** The postmaster's own CPU ticks and those of the children it reaped. */
function reapedTicks(postmaster: number): number {
  const own = stat(postmaster);
  return own.utime + own.stime + own.cutime + own.cstime;
}

/** The unit of /proc's times: sysconf(_SC_CLK_TCK), 100 on every Linux this runs on when getconf is missing. */
function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(ticks) && ticks > 0) return ticks;
  } catch {
    // no getconf
  }
  return 100;
}

/** The fields of /proc/<pid>/stat used here (after the command name, which may hold spaces and parentheses). */
function stat(pid: number): { ppid: number; utime: number; stime: number; cutime: number; cstime: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 of proc(5): state; ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
  return { ppid: Number(fields[1]), utime: Number(fields[11]), stime: Number(fields[12]), cutime: Number(fields[13]), cstime: Number(fields[14]) };
}
