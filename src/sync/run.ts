import pLimit from 'p-limit';
import type pg from 'pg';
import { requireCpq, type AppConfig, type CpqConfig } from '../config.js';
import { createAuthenticator } from '../cpq/auth.js';
import { CpqHttpClient } from '../cpq/http-client.js';
import { isJsonObject, parseExactJson } from '../exact-json.js';
import type { Page } from '../cpq/paging.js';
import { zipUserPages } from '../cpq/zip-export.js';
import {
  INTEGRATION_STREAM,
  companyStream,
  companyUserPages,
  integrationUserDetail,
  integrationUserPages,
  listCompanies,
  type StreamId,
} from '../cpq/streams.js';
import { logAhead, migrate } from '../db/migrate.js';
import type { Db } from '../db/database.js';
import type { StreamReport } from '../db/schema.js';
import { SyncError, oneLine } from '../errors.js';
import type { Logger } from '../logger.js';
import { keepCompanyFeedFields, keepIntegrationFeedFields } from '../normalize/feed-fields.js';
import { canonicalize } from '../cpq/user-fields.js';
import { RecordError, normalizeUser, type UserRow } from '../normalize/user-record.js';
import { DirectLoad, firstLoadCompanies } from './direct-load.js';
import { countDeletionCandidates } from '../db/sql/count-deletion-candidates.js';
import { mergeNewUsers, mergeStaged, type MergeCounts } from './merge.js';
import { Stager } from './stager.js';

export interface RunOptions {
  /** Read every stream in full, ignoring stored cursors. */
  full?: boolean;
  /** Apply deletions even above SYNC_MAX_DELETE_FRACTION. */
  allowMassDelete?: boolean;
  signal?: AbortSignal;
}

export interface RunResult extends MergeCounts {
  runId: string;
  status: 'succeeded' | 'failed';
  mode: 'full' | 'incremental' | 'mixed';
  pages: number;
  streams: StreamReport[];
  warnings: string[];
  error?: string;
}

export interface SyncDeps {
  pool: pg.Pool;
  db: Db;
  config: AppConfig;
  log: Logger;
}

type Raw = Record<string, unknown>;
const userKey = (company: string, login: string) => `${company}\u0001${login}`;
/** pg advisory lock key that serializes sync runs against one database ("cpqsync" in ASCII). */
export const RUN_LOCK_KEY = '109052458006371';

/** Reads one stream's pages, tracking what the run record reports about it. */
class StreamProgress {
  readonly report: StreamReport;
  readonly startedAt = Date.now();
  cursor: string | null = null;

  constructor(readonly id: StreamId, since: Date | undefined) {
    this.report = {
      stream: id.name,
      mode: since ? 'incremental' : 'full',
      since: since?.toISOString() ?? null,
      pages: 0,
      received: 0,
      totalResults: null,
      shortRead: false,
    };
  }

  page(page: Page) {
    this.report.pages++;
    this.report.received += page.items.length;
    if (page.index === 0) this.report.totalResults = page.totalResults ?? null;
  }

  saw(rows: UserRow[]) {
    for (const row of rows) if (row.dateModified && (this.cursor === null || row.dateModified > this.cursor)) this.cursor = row.dateModified;
  }

  /** Fewer users were read than CPQ reported (totalResults). */
  get short(): boolean {
    const total = this.report.totalResults;
    return total !== null && this.report.received < total;
  }

  finish(): string | undefined {
    if (this.short) {
      this.report.shortRead = true;
      return `${this.id.name}: read ${this.report.received} of ${this.report.totalResults} users that CPQ reported (totalResults); the read was short`;
    }
    return undefined;
  }
}

/**
 * One sync run: every configured stream is read and staged inside one transaction, merged, and
 * committed together with the cursors and the run record, or rolled back whole.
 */
/** A run that inserted at least this many users analyzes the tables it filled. */
const ANALYZE_AFTER_INSERTS = 10_000;

/**
 * Runs `task` for every item, at most `concurrency` at once, like Promise.all, except that once
 * one fails no other starts, `onFailure` runs (to stop those under way), and every task is
 * awaited before the first failure is thrown: none outlives the run.
 */
async function allUntilFirstFailure<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
  onFailure: (err: unknown) => void = () => undefined,
): Promise<R[]> {
  const limit = pLimit(concurrency);
  let failure: { error: unknown } | undefined;
  const results = new Array<R>(items.length);
  await Promise.allSettled(
    items.map((item, index) =>
      limit(async () => {
        if (failure) return;
        try {
          results[index] = await task(item, index);
        } catch (err) {
          if (!failure) {
            failure = { error: err };
            onFailure(err);
          }
        }
      }),
    ),
  );
  if (failure) throw failure.error;
  return results;
}

export class SyncRun {
  private readonly cpq: CpqConfig;
  private readonly warnings: string[] = [];
  private readonly progress: StreamProgress[] = [];
  private http!: CpqHttpClient;
  /** The run's signal to its reads: aborted when the run is interrupted or one stream fails. */
  private readSignal!: AbortSignal;
  /** Aborted by the first stream that fails, so the others stop at their next request. */
  private readonly streamFailed = new AbortController();
  /** The first stream failure, and whether the run had been interrupted (SIGTERM) before it. */
  private firstStreamFailure: { error: unknown; afterInterrupt: boolean } | undefined;
  private connectionLost: Error | undefined;
  private stager: Stager | undefined;
  /**
   * When the versions this run writes start (their valid_from, sync_runs.effective_at): fixed
   * when its first merge, batch or final, begins.
   */
  private effectiveAt: Date | undefined;

  constructor(
    private readonly deps: SyncDeps,
    private readonly options: RunOptions = {},
  ) {
    this.cpq = requireCpq(deps.config);
  }

  private warn(message: string) {
    this.warnings.push(message);
    this.deps.log.warn(message);
  }

  async execute(): Promise<RunResult> {
    const { db, pool, log } = this.deps;
    await migrate(db, { onAhead: logAhead(log) }).catch((err: unknown) => {
      throw err instanceof SyncError ? err : toDatabaseOrInternal(err);
    });
    const client = await pool.connect().catch((err: unknown) => {
      throw toDatabaseOrInternal(err);
    });
    // Postgres ending the session (a restart) is emitted on the client while we may be waiting on
    // CPQ; unheard, it would crash the process. The next query on the client fails and says so.
    const onConnectionError = (err: Error) => {
      this.connectionLost = err;
    };
    client.on('error', onConnectionError);
    try {
      // Session-level: held by this connection for the whole run, released by Postgres if we die.
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [RUN_LOCK_KEY]);
      if (!rows[0]?.locked) {
        throw new SyncError('lock', 'another cpq-sync run holds the sync lock on this database; this run was skipped');
      }
      try {
        await this.abandonDeadRuns(client, log);
        return await this.locked(client);
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [RUN_LOCK_KEY]).catch(() => undefined);
      }
    } finally {
      client.off('error', onConnectionError);
      // A client whose connection broke must not go back to the pool.
      client.release(this.connectionLost);
    }
  }

  /** A run still `running` while we hold the lock was left by a process that died. */
  private async abandonDeadRuns(client: pg.PoolClient, log: Logger) {
    const { rows } = await client.query<{ id: string }>(
      `UPDATE cpq.sync_runs SET status = 'abandoned', finished_at = now(),
         error = coalesce(error, 'the process running it stopped before it finished; nothing it read was kept')
       WHERE status = 'running' RETURNING id`,
    );
    for (const row of rows) log.warn({ runId: row.id }, 'marked a run left running by a dead process as abandoned');
  }

  private async locked(client: pg.PoolClient): Promise<RunResult> {
    const { db, log } = this.deps;
    const run = await db
      .insertInto('cpq.sync_runs')
      .values({ status: 'running', mode: this.options.full ? 'full' : 'incremental', http_retries: '{}', streams: '[]', warnings: '[]' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const runId = String(run.id);
    const log2 = log.child({ runId });
    this.readSignal = this.options.signal ? AbortSignal.any([this.options.signal, this.streamFailed.signal]) : this.streamFailed.signal;
    this.http = new CpqHttpClient(this.cpq, createAuthenticator(this.cpq.auth, this.cpq.requestTimeoutMs, this.cpq.ca), log2, this.readSignal);
    const started = Date.now();
    log2.info({ site: this.cpq.baseUrl, full: this.options.full === true }, 'sync run started');

    try {
      await client.query('BEGIN');
      // The merge joins the users it read to tables of millions of rows. With the default cost of
      // a random page (4, for spinning disks) the planner scans those tables whole rather than
      // probe their keys for a few thousand changed users (at 100k users: 40-90 ms per step
      // instead of under 20). Index pages of a synced site are in memory or on SSD; 1.1 is the
      // usual setting for that.
      await client.query('SET LOCAL random_page_cost = 1.1');
      const result = await this.inTransaction(client, runId, log2);
      await client.query('COMMIT');
      log2.info({ ...result, runId: undefined, streams: undefined, seconds: (Date.now() - started) / 1000 }, 'sync run succeeded');
      return result;
    } catch (err) {
      await this.stager?.abandon();
      await client.query('ROLLBACK').catch(() => undefined);
      // A stream's own failure stays the reason even when a signal arrives while the others stop.
      const interrupted = this.options.signal?.aborted === true && (this.firstStreamFailure?.afterInterrupt ?? true);
      const error = interrupted
        ? new SyncError('interrupted', 'the run was interrupted (signal) before it finished')
        : err instanceof SyncError
          ? err
          : err instanceof RecordError
            ? new SyncError('data', err.message)
            : toDatabaseOrInternal(err);
      const message = oneLine(error.message);
      await db
        .updateTable('cpq.sync_runs')
        .set({
          status: error.kind === 'interrupted' ? 'interrupted' : 'failed',
          finished_at: new Date(),
          error: message,
          streams: JSON.stringify(this.progress.map((p) => p.report)),
          warnings: JSON.stringify([...this.warnings, 'the run was rolled back: the database is as the last good run left it']),
          http_requests: this.http.stats.requests,
          http_retries: JSON.stringify(this.http.stats.retries),
        })
        .where('id', '=', runId)
        .execute()
        .catch((recordErr: unknown) => log2.error({ error: (recordErr as Error).message }, 'could not record the failed run'));
      log2.error({ error: message, kind: error.kind }, 'sync run failed; nothing was changed');
      throw error;
    }
  }

  private async inTransaction(client: pg.PoolClient, runId: string, log: Logger): Promise<RunResult> {
    const { db } = this.deps;
    const state = new Map(
      (await db.selectFrom('cpq.sync_state').select(['stream', 'cursor', 'last_full_sync_at']).execute()).map((s) => [s.stream, s] as const),
    );
    // A stream is read in full when asked, when it has no cursor, or when its last full read is
    // older than SYNC_FULL_EVERY (only full reads can detect deletions).
    const sinceFor = (id: StreamId): Date | undefined => {
      const stream = state.get(id.name);
      if (this.options.full || !stream?.cursor || !stream.last_full_sync_at) return undefined;
      if (Date.now() - new Date(stream.last_full_sync_at).getTime() >= this.deps.config.fullEveryMs) return undefined;
      return new Date(new Date(stream.cursor).getTime() - this.deps.config.lookbackMs);
    };

    const stager = await Stager.create(client);
    this.stager = stager;
    const effectiveAt = () => (this.effectiveAt ??= new Date());
    // New users are merged in batches while the read goes on, so Postgres writes them while
    // this process reads and normalizes the next pages.
    let mergedUpTo = 0;
    let batchInserted = 0;
    const mergeNewUsersIfDue = async () => {
      const batch = this.deps.config.mergeBatchUsers;
      if (batch === 0 || stager.lastSeq - mergedUpTo < batch) return;
      const [from, to] = [mergedUpTo, stager.lastSeq];
      mergedUpTo = to;
      await stager.enqueue(async () => {
        batchInserted += await mergeNewUsers(client, runId, effectiveAt(), from, to, log);
      });
    };
    const integrationUsers = await this.readIntegrationUsers(sinceFor, log);
    const companies = this.cpq.companies.includes('*') ? await listCompanies(this.http, this.cpq) : this.cpq.companies;
    const firstLoads = await firstLoadCompanies(client, companies);
    const direct = new DirectLoad(client, this.deps.pool, stager, runId, effectiveAt, this.deps.config.directFirstLoad ? firstLoads : []);

    const readCompany = async (company: string): Promise<void> => {
      const id = companyStream(company);
      // The zip export has no filter: every zip read is a full read.
      const zip = this.cpq.exportFormat === 'zip';
      const progress = this.track(id, zip ? undefined : sinceFor(id));
      const since = progress.report.since ? new Date(progress.report.since) : undefined;
      const pages = zip
        ? zipUserPages(this.http, this.cpq, company, this.readSignal)
        : companyUserPages(this.http, this.cpq, company, since);
      for await (const page of pages) {
        // Another stream failed (or the run was interrupted) while this page was on its way: the
        // run is over, so nothing more is written.
        if (this.readSignal.aborted) throw new SyncError('interrupted', `${id.name}: stopped, the run is ending`);
        progress.page(page);
        const rows = page.items.map((item, i) => {
          // Most sites have no integration users left to match: skip re-keying the record for them.
          const login = !integrationUsers.isEmpty && isJsonObject(item) ? canonicalize(item).get('login') : undefined;
          const integration = typeof login === 'string' ? integrationUsers.take(userKey(company, login)) : undefined;
          const position = page.positions?.[i];
          return integration
            ? normalizeUser({ ...(item as Raw), ...integration }, { companyLogin: company, isIntegrationUser: true, origin: page.url, position }, i)
            : normalizeUser(item, { companyLogin: company, isIntegrationUser: false, origin: page.url, position }, i);
        });
        // A company the database holds no user of has no stored integration user; after a
        // complete integration read, a user it did not return is none.
        if (!integrationUsers.complete && !firstLoads.has(company)) await this.keepStoredIntegrationFields(company, page, rows);
        progress.saw(rows);
        const rest = await direct.take(company, rows);
        if (rest.length > 0) {
          await stager.add(id.name, rest);
          // An incremental read is users the database mostly holds already: a batch would probe
          // them all for new ones, and the final merge probes them again (at 1M users, 0.3 s of
          // a 6 s run for none found).
          if (since === undefined) await mergeNewUsersIfDue();
        }
        log.info(
          {
            stream: id.name,
            page: page.index,
            items: page.items.length,
            received: progress.report.received,
            totalResults: progress.report.totalResults,
            usersPerSecond: Math.round(progress.report.received / Math.max(0.001, (Date.now() - progress.startedAt) / 1000)),
          },
          'page read',
        );
      }
    };

    // The first stream to fail fails the run. The others stop at their next request and are
    // awaited, so that none goes on reading (or writing into the transaction being rolled back).
    await allUntilFirstFailure(companies, this.cpq.concurrency, readCompany, (err) => {
      this.firstStreamFailure = { error: err, afterInterrupt: this.options.signal?.aborted === true };
      this.streamFailed.abort();
    });
    await this.stageIntegrationOnly(integrationUsers, stager, client);
    await stager.finish();
    await direct.finish();

    for (const p of this.progress) {
      const warning = p.finish();
      if (warning) this.warn(warning);
    }
    const deletable = await this.deletableCompanies(client, runId, firstLoads);
    const counts = await mergeStaged(client, runId, effectiveAt(), deletable, batchInserted + direct.written, log);
    await this.saveCursors(client, runId);
    if (counts.inserted >= ANALYZE_AFTER_INSERTS) {
      // Planner statistics for what a big load wrote, without waiting for autovacuum: the next
      // run's merge joins its few changed users to these tables, and with no statistics it may
      // scan them whole instead of using keys.
      // Only the columns the merge joins and filters on: statistics of raw would take seconds.
      await client.query(
        'ANALYZE cpq.users (id, company_login, login, deleted_at, first_seen_run_id), cpq.user_groups, cpq.user_access_permissions',
      );
    }

    const modes = new Set(this.progress.map((p) => p.report.mode));
    const mode = modes.size === 1 ? [...modes][0]! : modes.size === 0 ? (this.options.full ? 'full' : 'incremental') : 'mixed';
    const pages = this.progress.reduce((n, p) => n + p.report.pages, 0);
    const streams = this.progress.map((p) => p.report);
    await client.query(
      `UPDATE cpq.sync_runs SET status = 'succeeded', finished_at = $12, mode = $2, pages = $3,
         users_seen = $4, users_inserted = $5, users_updated = $6, users_unchanged = $7,
         http_requests = $8, http_retries = $9, streams = $10, warnings = $11,
         users_deleted = $13, users_restored = $14, effective_at = $15
       WHERE id = $1`,
      [
        runId,
        mode,
        pages,
        counts.seen,
        counts.inserted,
        counts.updated,
        counts.unchanged,
        this.http.stats.requests,
        JSON.stringify(this.http.stats.retries),
        JSON.stringify(streams),
        JSON.stringify(this.warnings),
        new Date(),
        counts.deleted,
        counts.restored,
        effectiveAt(),
      ],
    );
    return { runId, status: 'succeeded', mode, pages, streams, warnings: this.warnings, ...counts };
  }

  /**
   * Companies whose users this run may mark deleted: read in full, not short, and not losing
   * more than SYNC_MAX_DELETE_FRACTION of their known users (unless --allow-mass-delete).
   * Refusals are recorded in the run's warnings and the stream's report.
   */
  private async deletableCompanies(client: pg.PoolClient, runId: string, firstLoads: ReadonlySet<string>): Promise<string[]> {
    const full = this.progress.filter((p) => p.id.kind === 'company' && p.report.mode === 'full');
    const eligible: string[] = [];
    for (const p of full) {
      if (p.report.shortRead) {
        p.report.deletion = 'skipped: short read';
        this.warn(`deletion skipped for ${p.id.name}: the read was short (${p.report.received} of ${p.report.totalResults}); nothing was marked deleted`);
      } else if (firstLoads.has(p.id.company!)) {
        // Nothing was known, so nothing is missing: no need to scan a million users to see it.
        p.report.deletion = 'applied: none missing';
      } else eligible.push(p.id.company!);
    }
    const fraction = this.deps.config.maxDeleteFraction;
    const allowed: string[] = [];
    for (const c of await countDeletionCandidates(client, runId, eligible)) {
      const p = full.find((f) => f.id.company === c.company)!;
      if (c.missing > 0 && c.missing > fraction * c.known && !this.options.allowMassDelete) {
        p.report.deletion = `aborted: ${c.missing} of ${c.known} would be deleted`;
        this.warn(
          `deletion aborted for ${p.id.name}: ${c.missing} of ${c.known} known users (${Math.round((100 * c.missing) / c.known)}%) ` +
            `are missing from the read, above SYNC_MAX_DELETE_FRACTION=${fraction}; nothing was marked deleted (rerun with --allow-mass-delete if this is real)`,
        );
      } else {
        p.report.deletion = c.missing > 0 ? `applied: ${c.missing} deleted` : 'applied: none missing';
        allowed.push(c.company);
      }
    }
    return allowed;
  }

  private track(id: StreamId, since: Date | undefined): StreamProgress {
    const progress = new StreamProgress(id, since);
    this.progress.push(progress);
    return progress;
  }

  private integrationEnabled(): boolean {
    return this.cpq.integrationUsers === 'on' || (this.cpq.integrationUsers === 'auto' && this.cpq.pathPrefix === '/cpq');
  }

  /** Integration users keyed by company and login, complete with groups, before company users are read. */
  private async readIntegrationUsers(sinceFor: (id: StreamId) => Date | undefined, log: Logger): Promise<IntegrationUsers> {
    const found = new IntegrationUsers();
    if (!this.integrationEnabled()) return found;
    const progress = this.track(INTEGRATION_STREAM, sinceFor(INTEGRATION_STREAM));
    const since = progress.report.since ? new Date(progress.report.since) : undefined;
    const readRecord = async (item: unknown, i: number, url: string): Promise<Record<string, unknown> | undefined> => {
      if (!isJsonObject(item)) throw new RecordError(`record ${i} of ${url}: expected a user object`);
      const fields = canonicalize(item);
      if (fields.has('groups')) return item;
      // The list did not expand groups: the detail endpoint has them.
      const partyNumber = fields.get('partyNumber');
      if (typeof partyNumber !== 'string') throw new RecordError(`record ${i} of ${url}: integration user without partyNumber, cannot read its groups`);
      const detail = await integrationUserDetail(this.http, partyNumber);
      return isJsonObject(detail) ? detail : undefined;
    };
    try {
      for await (const page of integrationUserPages(this.http, this.cpq, since)) {
        progress.page(page);
        const records = await allUntilFirstFailure(page.items, this.cpq.concurrency, (item, i) => readRecord(item, i, page.url));
        records.forEach((record, i) => {
          if (!record) return;
          const row = normalizeUser(record, { companyLogin: this.integrationCompany(record), isIntegrationUser: true, origin: page.url }, i);
          progress.saw([row]);
          found.add(userKey(row.companyLogin, row.login), record, page.url, i);
        });
        log.info({ stream: INTEGRATION_STREAM.name, page: page.index, items: page.items.length }, 'page read');
      }
      found.complete = progress.report.mode === 'full' && !progress.short;
    } catch (err) {
      if (err instanceof SyncError && err.status === 404 && this.cpq.integrationUsers === 'auto') {
        this.progress.splice(this.progress.indexOf(progress), 1);
        this.warn(`integration users: ${err.message.replace(/ with .*$/, '')}; this site has no integration-user endpoint (set CPQ_INTEGRATION_USERS=off to skip it)`);
        return new IntegrationUsers();
      }
      throw err;
    }
    return found;
  }

  /** The company an integration user belongs to: its company.loginName, with the host's real login name mapped to `_host`. */
  private integrationCompany(record: Raw): string {
    const company = canonicalize(record).get('company');
    const loginName = isJsonObject(company) ? canonicalize(company).get('loginName') : undefined;
    if (typeof loginName !== 'string' || loginName === '' || loginName === this.cpq.hostCompany) return '_host';
    return loginName;
  }

  /**
   * Integration users the company feeds did not return this run (their company is not synced, or
   * an incremental window missed it there): merged over the row we already hold, so fields only
   * the company feed carries (access permissions) are kept (see feed-fields.ts).
   */
  private async stageIntegrationOnly(users: IntegrationUsers, stager: Stager, client: pg.PoolClient) {
    const left = users.remaining();
    if (left.length === 0) return;
    const existing = await storedRecords(client, left, { integrationOnly: false });
    const staged = left.map((u) => {
      const record = keepCompanyFeedFields(u.record, existing.get(userKey(u.company, u.login)));
      return normalizeUser(record, { companyLogin: u.company, isIntegrationUser: true, origin: u.origin }, u.index);
    });
    await stager.add(INTEGRATION_STREAM.name, staged);
  }

  /**
   * Company-feed rows of users stored as integration users that this run's integration read did
   * not return (an incremental window that missed them, a feed that is off or absent): they stay
   * integration users, with the integration feed's fields as stored (see feed-fields.ts), so the
   * re-read logs no change for them. Rewrites those entries of `rows` in place.
   */
  private async keepStoredIntegrationFields(company: string, page: Page, rows: UserRow[]) {
    const candidates = rows.filter((row) => !row.isIntegrationUser).map((row) => ({ company, login: row.login }));
    if (candidates.length === 0) return;
    // Committed state, on another connection of the pool: the run's own connection is busy with
    // COPY, and nothing this run writes before its final merge touches a stored user.
    const stored = await storedRecords(this.deps.pool, candidates, { integrationOnly: true });
    if (stored.size === 0) return;
    rows.forEach((row, i) => {
      const before = row.isIntegrationUser ? undefined : stored.get(userKey(company, row.login));
      if (!before) return;
      const record = keepIntegrationFeedFields(page.items[i] as Raw, before);
      rows[i] = normalizeUser(record, { companyLogin: company, isIntegrationUser: true, origin: page.url, position: page.positions?.[i] }, i);
    });
  }

  /**
   * Moves each stream's cursor to the newest dateModified read. A short read moves nothing (the
   * unread users would be skipped by incremental runs until the next full read), and a cursor
   * never goes past now (one record dated in the future would hide every later edit).
   */
  private async saveCursors(client: pg.PoolClient, runId: string) {
    const now = Date.now();
    for (const p of this.progress) {
      if (p.cursor !== null && Date.parse(p.cursor) > now + this.deps.config.lookbackMs) {
        this.warn(`${p.id.name}: a record has dateModified ${p.cursor}, in the future; the cursor stops at the present`);
      }
      const complete = !p.report.shortRead;
      await client.query(
        `INSERT INTO cpq.sync_state (stream, cursor, last_full_sync_at, last_run_id, updated_at)
         VALUES ($1, LEAST($2::timestamptz, now()), CASE WHEN $3 THEN now() END, $4, now())
         ON CONFLICT (stream) DO UPDATE SET
           cursor = GREATEST(cpq.sync_state.cursor, excluded.cursor),
           last_full_sync_at = COALESCE(excluded.last_full_sync_at, cpq.sync_state.last_full_sync_at),
           last_run_id = excluded.last_run_id,
           updated_at = now()`,
        [p.id.name, complete ? p.cursor : null, complete && p.report.mode === 'full', runId],
      );
    }
  }
}

/**
 * The stored records (`raw`, int64 exact) of the given users, by userKey; `integrationOnly`
 * leaves out users not stored as integration users.
 */
async function storedRecords(
  db: pg.Pool | pg.PoolClient,
  users: readonly { company: string; login: string }[],
  { integrationOnly }: { integrationOnly: boolean },
): Promise<Map<string, Raw>> {
  // raw as text: node-postgres would parse jsonb with JSON.parse and round the int64s.
  const { rows } = await db.query<{ company_login: string; login: string; raw: string }>(
    `SELECT company_login, login, raw::text AS raw FROM cpq.users
     WHERE (company_login, login) IN (SELECT * FROM unnest($1::text[], $2::text[]))${integrationOnly ? ' AND is_integration_user' : ''}`,
    [users.map((u) => u.company), users.map((u) => u.login)],
  );
  return new Map(rows.map((r) => [userKey(r.company_login, r.login), parseExactJson(r.raw) as Raw]));
}

/** Integration users read this run, handed to the company feed that returns the same user. */
class IntegrationUsers {
  private readonly byKey = new Map<string, { record: Raw; origin: string; index: number }>();
  /**
   * The integration feed was read in full and not short: a user it did not return is not an
   * integration user. Otherwise (an incremental read, a feed that is off or absent) the stored
   * integration users keep what the feed gave them.
   */
  complete = false;

  add(key: string, record: Raw, origin: string, index: number) {
    this.byKey.set(key, { record, origin, index });
  }

  get isEmpty(): boolean {
    return this.byKey.size === 0;
  }

  take(key: string): Raw | undefined {
    const entry = this.byKey.get(key);
    if (entry) this.byKey.delete(key);
    return entry?.record;
  }

  remaining() {
    return [...this.byKey.entries()].map(([key, e]) => {
      const [company, login] = key.split('\u0001') as [string, string];
      return { company, login, ...e };
    });
  }
}

function toDatabaseOrInternal(err: unknown): SyncError {
  const e = err as Error & { code?: string };
  // Errors from Postgres carry a SQLSTATE; connection failures carry a Node errno code, or
  // only a message when node-postgres lost the connection itself.
  if (e && typeof e.code === 'string') return new SyncError('database', `database error: ${e.message}`);
  if (e && /Connection terminated|not queryable|connection error/i.test(e.message ?? '')) {
    return new SyncError('database', `database error: ${e.message}`);
  }
  return new SyncError('internal', e?.message ?? String(err));
}

export function runSync(deps: SyncDeps, options: RunOptions = {}): Promise<RunResult> {
  return new SyncRun(deps, options).execute();
}
