import type { Queryable } from '../db/compiled-query.js';
import type { CpqConfig } from '../config.js';
import type { CpqHttpClient } from '../cpq/http-client.js';
import type { Page } from '../cpq/paging.js';
import { companyStream, companyUserPages, type StreamId } from '../cpq/streams.js';
import { loginField } from '../cpq/user-fields.js';
import { zipUserPages } from '../cpq/zip-export.js';
import { readIntegrationUserLogins } from '../db/sql/read-integration-user-logins.js';
import { SyncError, throwIfInterrupted } from '../errors.js';
import { isJsonObject, sentString } from '../exact-json.js';
import type { Logger } from '../logger.js';
import { fieldsIn, mergeBothFeeds } from '../normalize/feed-fields.js';
import { normalizeUser, type UserRow } from '../normalize/user-record.js';
import type { DirectLoad } from './direct-load.js';
import { keepStoredIntegrationFields, userKey, type IntegrationUsers } from './integration-users.js';
import type { Stager } from './stager.js';
import type { StreamProgress } from './stream-progress.js';

/**
 * Rows normalized before they are turned into COPY rows (written directly on a first load, staged
 * otherwise): a slice, not a page. A page's rows all lived until the page was written, so V8
 * copied them (~4 MB per page) out of its young generation, and garbage collection cost more CPU
 * than any step of the sync.
 */
const SLICE = 50;

/** What reading one company's users needs from the run. */
export interface CompanyRead {
  /** The site being read (the `site` of every row it writes). */
  site: string;
  http: CpqHttpClient;
  cpq: CpqConfig;
  /** The pool, for statements outside the run's transaction; cancelled with the run (cancellableOn). */
  pool: Queryable;
  log: Logger;
  /** Aborted when the run is interrupted or another stream failed. */
  signal: AbortSignal;
  integrationUsers: IntegrationUsers;
  firstLoads: ReadonlySet<string>;
  direct: DirectLoad;
  stager: Stager;
  /** Where an incremental read of the stream starts; undefined when it is read in full. */
  sinceFor: (id: StreamId) => Date | undefined;
  /** Starts the stream's progress; `since` undefined for a full read. */
  track: (id: StreamId, since: Date | undefined) => StreamProgress;
  /** Called after rows of a full read were staged: merges new users when a batch is due. */
  staged: () => Promise<void>;
}

/**
 * Whether this run's complete integration read left out a user stored as an integration user of
 * `company`: one no longer, whose company record need not have moved (an OAuth client unbound),
 * so an incremental read of the company would leave it an integration user until its next full
 * read. The company is then read in full, which gives each user's record as it is now.
 */
async function integrationUsersGone(run: CompanyRead, company: string): Promise<boolean> {
  if (!run.integrationUsers.complete || run.firstLoads.has(company)) return false;
  const stored = await readIntegrationUserLogins(run.pool, run.site, company);
  const gone = [...stored].filter((login) => !run.integrationUsers.has(company, login)).length;
  if (gone > 0)
    run.log.info({ stream: companyStream(company).name, gone }, 'read in full: stored integration users the complete integration read no longer returned');
  return gone > 0;
}

/**
 * Reads one company's users, page by page (JSON pages, from several key ranges at once when the
 * company is large, or the zip export), normalizes them (an
 * integration user read from its own feed becomes one row with its company-feed record), and
 * writes each page: directly on a first load, staged otherwise.
 */
export async function readCompany(run: CompanyRead, company: string): Promise<void> {
  const id = companyStream(company);
  // The zip export has no filter: every zip read is a full read.
  const zip = run.cpq.exportFormat === 'zip';
  const incrementalSince = zip ? undefined : run.sinceFor(id);
  const progress = run.track(id, incrementalSince !== undefined && (await integrationUsersGone(run, company)) ? undefined : incrementalSince);
  const since = progress.since;
  const pages = zip ? zipUserPages(run.http, run.cpq, company, run.signal) : companyUserPages(run.http, run.cpq, company, since);
  try {
    // Whom keepStoredIntegrationFields may concern: none after a complete integration read, and
    // none in a company the database holds no user of.
    const storedIntegration =
      run.integrationUsers.complete || run.firstLoads.has(company) ? undefined : await readIntegrationUserLogins(run.pool, run.site, company);
    for await (const page of pages) {
      // Another stream failed (or the run was interrupted) while this page was on its way: the
      // run is over, so nothing more is written.
      throwIfInterrupted(run.signal, `${id.name}: stopped, the run is ending`);
      progress.page(page);
      const { integrationUsers } = run;
      // Most companies have no integration users: skip re-keying their records.
      const matchIntegration = integrationUsers.inCompany(company);
      const rowAt = (i: number): UserRow => {
        // Each record once: a page's records are parsed one at a time (PageRecords).
        const { value: item, storedAsSent } = page.items.record(i);
        const login = matchIntegration && isJsonObject(item) ? sentString(loginField(item)) : undefined;
        const integration = login === undefined ? undefined : integrationUsers.take(userKey(company, login));
        const position = page.positions?.[i];
        const row = integration
          ? normalizeUser(
              // By canonical name: a flag the two feeds spell differently is one field, once; the
              // integration feed's unless CPQ changed the user between the two reads (mergeBothFeeds).
              mergeBothFeeds(integration, item as Record<string, unknown>),
              { companyLogin: company, isIntegrationUser: true, origin: page.url, position },
              i,
            )
          : normalizeUser(item, { companyLogin: company, isIntegrationUser: false, origin: page.url, position }, i, storedAsSent);
        if (integration) integrationUsers.noteFeedFields(row, { company: fieldsIn(item as Record<string, unknown>), integration: fieldsIn(integration) });
        progress.read(row.login, page.range);
        return row;
      };
      const count = page.items.length;
      const sliceAt = (start: number) => Array.from({ length: Math.min(SLICE, count - start) }, (_, k) => rowAt(start + k));
      const write: PageWrite = { run, company, stream: id.name, page, sliceAt, progress };
      const staged = run.firstLoads.has(company) ? await loadPageDirectly(write) : await stagePage(write, storedIntegration);
      if (staged > 0) {
        await run.stager.endPage();
        // An incremental read is users the database mostly holds already: a batch would probe
        // them all for new ones, and the final merge probes them again (at 1M users, 0.3 s of
        // a 6 s run for none found).
        if (since === undefined) await run.staged();
      }
      run.log.info(
        {
          stream: id.name,
          page: page.index,
          ...(page.range ? { keyRange: page.range.index } : {}),
          items: page.items.length,
          received: progress.report.received,
          totalResults: progress.report.totalResults,
          usersPerSecond: Math.round(progress.report.received / Math.max(0.001, (Date.now() - progress.startedAt) / 1000)),
        },
        'page read',
      );
    }
    progress.ended();
  } catch (err) {
    throw err instanceof SyncError && err.stream === undefined ? err.with({ stream: id.name }) : err;
  }
}

/** A page being written, for loadPageDirectly or stagePage. */
interface PageWrite {
  run: CompanyRead;
  company: string;
  /** The stream's name (what it stages under). */
  stream: string;
  page: Page;
  /**
   * The page's rows from item `start` on, at most SLICE, normalized when asked for: one per item,
   * in order (stagePage takes row k for item start + k, the index keepStoredIntegrationFields
   * looks the record up by), so a row to leave out is left out by the caller, not here.
   */
  sliceAt: (start: number) => UserRow[];
  progress: StreamProgress;
}

/**
 * A first load's page, written a slice at a time (see SLICE); only rows the direct load cannot
 * take are staged, once the rows taken are queued: a merge batch must find those in cpq.users.
 * How many rows were staged.
 */
async function loadPageDirectly({ run, company, stream, page, sliceAt, progress }: PageWrite): Promise<number> {
  const rest: UserRow[] = [];
  for (let start = 0; start < page.items.length; start += SLICE) {
    const slice = sliceAt(start);
    progress.saw(slice);
    for (const row of await run.direct.take(company, slice, page.range)) rest.push(row);
  }
  await run.direct.endPage();
  run.stager.take(stream, rest);
  return rest.length;
}

/**
 * A page of a company the database holds users of, staged a slice at a time as a first load is
 * written. Without a complete integration read, a user stored as an integration user keeps the
 * integration feed's stored fields (`storedIntegration` names them): those rows wait for the
 * page's end, to be looked up at once. How many rows were staged: all of the page's.
 */
async function stagePage({ run, company, stream, page, sliceAt, progress }: PageWrite, storedIntegration: ReadonlySet<string> | undefined): Promise<number> {
  const held: UserRow[] = [];
  const heldAt: number[] = [];
  for (let start = 0; start < page.items.length; start += SLICE) {
    const ready: UserRow[] = [];
    sliceAt(start).forEach((row, k) => {
      if (storedIntegration?.has(row.login) && !row.isIntegrationUser) {
        held.push(row);
        heldAt.push(start + k);
      } else ready.push(row);
    });
    progress.saw(ready);
    run.stager.take(stream, ready);
  }
  if (held.length > 0) {
    await keepStoredIntegrationFields(run.pool, run.site, company, page, held, heldAt, run.integrationUsers);
    progress.saw(held);
    run.stager.take(stream, held);
  }
  return page.items.length;
}
