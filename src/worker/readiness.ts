import pg from 'pg';
import type { Queryable } from '../db/compiled-query.js';
import { DatabaseClient } from '../db/database.js';
import { durationSetting } from '../config-env.js';
import { errorMessage, oneLine } from '../errors.js';
import { readRunHealth } from './run-health.js';
import { withTimeout } from './timeout.js';

export interface ReadinessOptions {
  /** The sites to judge (every configured one). */
  sites: readonly string[];
  /** SYNC_STALE_AFTER: how long runs may keep failing before the worker reports not ready. */
  staleAfterMs: number;
  /** A probe must answer quickly; a database that does not answer in time counts as unreachable. */
  timeoutMs?: number;
  /**
   * How long this worker has been up, by its own monotonic clock. A site without a success for
   * longer than SYNC_STALE_AFTER and no failed run to show for it (or none ever) is stale once the
   * worker has been trying for that long too: one started after an outage has its ticks first.
   * Unset (a check outside a worker): judged by the last success alone; never a success is ready.
   */
  upForMs?: number;
  /**
   * Whether this worker's last attempt at a site failed before a run was recorded (the database
   * refused the run's record or the tick's claim, no connection): a try, however recently the
   * worker started. Without it a worker restarted more often than SYNC_STALE_AFTER (deploys, a
   * crash loop) never counted as having tried, and a site whose every run fails unrecorded stayed
   * ready for ever.
   */
  failedUnrecorded?: (site: string) => boolean;
  now?: () => Date;
}

/** One site's verdict. */
export interface SiteReadiness {
  site: string;
  ready: boolean;
  /** "ok", or since when the site's runs have been failing. */
  runs: string;
  lastRun: { id: string; status: string; finishedAt: string | null; error: string | null } | null;
  lastSuccessAt: string | null;
}

/** The full verdict, for the worker's own log: it holds error text (URLs, logins, field values), so it is never served over HTTP. */
export interface ReadinessReport {
  /** The database answers and no site is stale. */
  ready: boolean;
  /** "ok", or why the database could not be read (or was not: `migrating: …`). */
  database: string;
  sites: SiteReadiness[];
  /** The sites whose runs have been failing for longer than SYNC_STALE_AFTER. */
  staleSites: string[];
  /** The time ages were measured at: the database's, as the run times are (this process's when it did not answer). */
  checkedAt: Date;
}

/**
 * What /readyz tells whoever asks: ready or not, how long ago the least recently synced site last
 * succeeded (null: a site never did, or the database could not be read), and which sites are
 * stale (their names are the operator's, not secrets). No error text, no run details.
 */
export interface PublicReadiness {
  ready: boolean;
  lastSuccessAgeSeconds: number | null;
  staleSites: string[];
}

export function publicReadiness(report: ReadinessReport, now: Date = report.checkedAt): PublicReadiness {
  const successes = report.sites.map((s) => (s.lastSuccessAt === null ? null : Date.parse(s.lastSuccessAt)));
  const oldest = report.sites.length === 0 || successes.includes(null) ? null : Math.min(...(successes as number[]));
  return {
    ready: report.ready,
    lastSuccessAgeSeconds: oldest === null ? null : Math.max(0, Math.round((now.getTime() - oldest) / 1000)),
    staleSites: report.staleSites,
  };
}

/** Readiness while the worker applies this release's migrations: not ready, and nothing read (the tables may not be there yet). */
export function migratingReadiness(): ReadinessReport {
  return { ready: false, database: "migrating: this release's migrations are not applied yet", sites: [], staleSites: [], checkedAt: new Date() };
}

/**
 * Ready = the database answers, and every site's last success is within SYNC_STALE_AFTER. One
 * failed run after a good one does not flip readiness (CPQ has outages; the next run retries); a
 * streak of failures that outlasts SYNC_STALE_AFTER does, and so does no success at all for that
 * long: a run that fails before it has a record (the database refusing its INSERT, no connection
 * slot free, a tick that never fired) leaves no failure to count. That last rule waits until the
 * worker has been up for SYNC_STALE_AFTER too (upForMs): started after an outage, or on a site
 * that never succeeded, it has its ticks first; or, for a site that succeeded once, until one of
 * this worker's own runs of it failed unrecorded (failedUnrecorded), so that restarts cannot
 * keep it waiting.
 */
export async function checkReadiness(source: Queryable, options: ReadinessOptions): Promise<ReadinessReport> {
  let healths;
  try {
    healths = await withTimeout(
      (async () => {
        // One site after another: the source may be one connection (HealthConnection).
        const out = [];
        for (const site of options.sites) out.push(await readRunHealth(source, site));
        return out;
      })(),
      options.timeoutMs ?? 3000,
    );
  } catch (err) {
    return { ready: false, database: `unreachable: ${oneLine(errorMessage(err))}`, sites: [], staleSites: [], checkedAt: options.now?.() ?? new Date() };
  }
  // Run times are the database's clock: a worker whose own clock is off must not judge their age by it.
  const now = options.now?.() ?? healths.find((h) => h.now !== undefined)?.now ?? new Date();
  // The limit's value in the messages: an operator reading /readyz need not find the setting to judge it.
  const limit = `SYNC_STALE_AFTER=${durationSetting(options.staleAfterMs)}`;
  const sites = healths.map((health, i): SiteReadiness => {
    const { lastRun, lastSuccessAt, failingSince, runningSince } = health;
    const older = (since: Date | null) => since !== null && now.getTime() - since.getTime() > options.staleAfterMs;
    // A run still `running` for longer than SYNC_STALE_AFTER hangs (holding its lock, so every
    // tick of the site is skipped): as stale as a streak of failures.
    const hung = older(runningSince);
    const failing = older(failingSince);
    const site = options.sites[i]!;
    const tried =
      options.upForMs === undefined
        ? lastSuccessAt !== null
        : options.upForMs > options.staleAfterMs || (lastSuccessAt !== null && options.failedUnrecorded?.(site) === true);
    const overdue = tried && (lastSuccessAt === null || older(lastSuccessAt));
    return {
      site,
      ready: !(hung || failing || overdue),
      runs: hung
        ? `a run has been running since ${runningSince!.toISOString()} (longer than ${limit})`
        : failing
          ? `runs have not succeeded since ${failingSince!.toISOString()} (longer than ${limit})`
          : overdue
            ? lastSuccessAt === null
              ? `no run has succeeded since the worker started, longer ago than ${limit} (runs that fail before they are recorded leave no failed run: see the log)`
              : `no run has succeeded since ${lastSuccessAt.toISOString()} (longer than ${limit}; runs that fail before they are recorded leave no failed run: see the log)`
            : failingSince
              ? `the last run failed; runs have not succeeded since ${failingSince.toISOString()}, within ${limit}`
              : 'ok',
      lastRun: lastRun && {
        id: lastRun.id,
        status: lastRun.status,
        finishedAt: lastRun.finishedAt?.toISOString() ?? null,
        error: lastRun.error,
      },
      lastSuccessAt: lastSuccessAt?.toISOString() ?? null,
    };
  });
  const staleSites = sites.filter((s) => !s.ready).map((s) => s.site);
  return { ready: staleSites.length === 0, database: 'ok', sites, staleSites, checkedAt: now };
}

/**
 * The database connection of /readyz and /metrics: one connection of its own, never one of the
 * sync's pool, so that requests to those endpoints — however many — cannot take the
 * connections a run needs or queue work in front of it. Every statement on it has a
 * server-side `statement_timeout` (a query stuck behind a lock is cancelled, not left
 * holding anything), concurrent requests share the query in flight instead of queueing one
 * each, and different queries take turns (node-postgres deprecates queueing on one client). A
 * connection that failed or timed out is dropped; the next request opens another.
 */
export class HealthConnection implements Queryable {
  private client: Promise<pg.Client> | undefined;
  private readonly inFlight = new Map<string, Promise<pg.QueryResult>>();
  /** The last query sent: different queries take turns on the one connection. */
  private tail: Promise<unknown> = Promise.resolve();

  /**
   * `config`: how the sync's pool connects (pool.options); `timeoutMs`: statement, lock and
   * connect timeout — under checkReadiness's 3 s, so that the server has cancelled a stuck
   * query by the time /readyz answers.
   */
  constructor(
    private readonly config: pg.ClientConfig,
    private readonly timeoutMs = 2000,
  ) {}

  static forPool(pool: pg.Pool, timeoutMs?: number): HealthConnection {
    return new HealthConnection(pool.options, timeoutMs);
  }

  private connect(): Promise<pg.Client> {
    this.client ??= (async () => {
      const client = new DatabaseClient({
        ...this.config,
        application_name: 'cpq-user-sync health',
        statement_timeout: this.timeoutMs,
        lock_timeout: this.timeoutMs,
        connectionTimeoutMillis: this.timeoutMs,
      });
      // A connection that dies while idle must not crash the worker; the next query reports it.
      client.on('error', () => this.drop(client));
      await client.connect();
      return client;
    })();
    const pending = this.client;
    pending.catch(() => {
      if (this.client === pending) this.client = undefined;
    });
    return pending;
  }

  private drop(client: pg.Client): void {
    void this.client?.then(
      (current) => {
        if (current === client) this.client = undefined;
      },
      () => undefined,
    );
    void client.end().catch(() => undefined);
  }

  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    const key = JSON.stringify([text, values ?? []]);
    let pending = this.inFlight.get(key);
    if (!pending) {
      const turn = this.tail.catch(() => undefined);
      pending = (async () => {
        await turn;
        const client = await this.connect();
        try {
          // The outer bound covers a server that does not answer at all (statement_timeout is the server's).
          return await withTimeout(client.query(text, values), this.timeoutMs + 500, 'the database gave no answer');
        } catch (err) {
          // An answer from the server (a statement timeout, a missing table) leaves the connection
          // usable; anything else (it broke, or never answered) ends it.
          if (!(err instanceof pg.DatabaseError)) this.drop(client);
          throw err;
        }
      })().finally(() => this.inFlight.delete(key));
      this.tail = pending;
      this.inFlight.set(key, pending);
    }
    return pending as Promise<pg.QueryResult<R>>;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.then((c) => c.end()).catch(() => undefined);
  }
}
