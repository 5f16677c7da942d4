import type pg from 'pg';
import type { Queryable } from '../db/compiled-query.js';
import type { CpqConfig } from '../config.js';
import { pathSegmentProblem, type CpqHttpClient } from '../cpq/http-client.js';
import type { Page } from '../cpq/paging.js';
import { INTEGRATION_STREAM, companyStream, integrationUserDetail, integrationUserPages, type CompanyList, type StreamId } from '../cpq/streams.js';
import { canonicalize } from '../cpq/user-fields.js';
import { readStoredRecords, type KnownHolder } from '../db/sql/read-stored-records.js';
import type { FeedFields, FeedFieldsOf } from '../db/sql/save-feed-fields.js';
import { instantMicros } from '../date-time.js';
import { SyncError } from '../errors.js';
import { describeValue, isJsonObject, sentString } from '../exact-json.js';
import type { Logger } from '../logger.js';
import {
  fieldsIn,
  givenByCompanyFeed,
  keepCompanyFeedFields,
  keepIntegrationFeedFields,
  layOver,
  withoutIntegrationOnlyFields,
} from '../normalize/feed-fields.js';
import { withStoredSpellings } from '../normalize/stored-spellings.js';
import { USER_VALUE_COLUMNS } from '../normalize/user-fields.js';
import { RecordError, carriesItems, normalizeUser, recordPlace, type ColumnValue, type UserRow } from '../normalize/user-record.js';
import { allUntilFirstFailure } from './all-until-first-failure.js';
import type { Stager } from './stager.js';
import type { StreamProgress } from './stream-progress.js';

type Raw = Record<string, unknown>;
/** A user's key in the maps below: company and login, told apart by the company's length (either may hold any character). */
export const userKey = (company: string, login: string) => `${company.length}:${company}${login}`;

/** Integration users read this run, handed to the company feed that returns the same user. */
export class IntegrationUsers {
  private readonly byKey = new Map<string, { company: string; login: string; record: Raw; origin: string; index: number; taken: boolean }>();
  /**
   * The integration feed was read in full and not short: a user it did not return is not an
   * integration user. Otherwise (an incremental read, a feed that is off or absent) the stored
   * integration users keep what the feed gave them.
   */
  complete = false;

  /** The companies that have any: the records of the others are not looked up. */
  private readonly companies = new Set<string>();

  /**
   * Per integration user this run stores, of whichever feed, the fields each feed's record had
   * (fieldsIn; of a feed that did not return the user, those recorded before), per copy of the
   * user read (by the row's content hash, the last noted of each): saved after the merge
   * (saveFeedFields), those of the copy whose row the database then holds. Not simply the copy
   * noted last: a first load keeps a staged copy over one loaded directly, whichever was read
   * later (direct-load.ts), and the lists must be of the record kept.
   */
  private readonly feedFieldsByKey = new Map<string, Map<string, FeedFieldsOf>>();

  noteFeedFields(
    row: Pick<UserRow, 'companyLogin' | 'login' | 'contentHash'>,
    fields: { company: Iterable<string> | undefined; integration: Iterable<string> | undefined },
  ): void {
    const list = (names: Iterable<string> | undefined) => (names === undefined ? undefined : [...names].sort());
    const key = userKey(row.companyLogin, row.login);
    const copies = this.feedFieldsByKey.get(key) ?? new Map<string, FeedFieldsOf>();
    this.feedFieldsByKey.set(key, copies);
    // Deleted first, so that the order of the values is the order last noted.
    copies.delete(row.contentHash);
    copies.set(row.contentHash, {
      company_login: row.companyLogin,
      login: row.login,
      content_hash: row.contentHash,
      company: list(fields.company),
      integration: list(fields.integration),
    });
  }

  /** Every copy's lists, each user's in the order last noted. */
  feedFields(): FeedFieldsOf[] {
    return [...this.feedFieldsByKey.values()].flatMap((copies) => [...copies.values()]);
  }

  add(company: string, login: string, record: Raw, origin: string, index: number) {
    this.byKey.set(userKey(company, login), { company, login, record, origin, index, taken: false });
    this.companies.add(company);
  }

  /** Whether this user was read. */
  has(company: string, login: string): boolean {
    return this.byKey.has(userKey(company, login));
  }

  /** Whether any integration user read belongs to `company`. */
  inCompany(company: string): boolean {
    return this.companies.has(company);
  }

  /** How many different users were read (a user the feed sent twice is one). */
  get size(): number {
    return this.byKey.size;
  }

  /**
   * The integration record of a user a company feed returned. Each time it is asked: a company
   * feed may send a user twice in one read, and the copy read last wins, so a second copy of an
   * integration user must be merged as the first was, not become a plain company user.
   */
  take(key: string): Raw | undefined {
    const entry = this.byKey.get(key);
    if (entry) entry.taken = true;
    return entry?.record;
  }

  /** The users no company feed returned. */
  remaining() {
    // Company and login as read, not cut back out of the key: a login may hold the key's separator.
    return [...this.byKey.values()].filter((e) => !e.taken).map(({ company, login, record, origin, index }) => ({ company, login, record, origin, index }));
  }
}

export function integrationEnabled(cpq: CpqConfig): boolean {
  return cpq.integrationUsers === 'on' || (cpq.integrationUsers === 'auto' && cpq.pathPrefix === '/cpq');
}

/**
 * The company an integration user belongs to: its company.loginName, with the host's own login
 * name mapped to `_host`, as the company feed names the host. The feed names the host by its own
 * login (Oracle's samples: `cpq-mdb`); filed under that name, the user would be a second row
 * beside its `_host` one, in a company no run reads in full, so never deleted. The host's own
 * names: CPQ_HOST_COMPANY and the company list's isHost entries, in any case. A name the list
 * does not have is kept as it is, and the run warns of it (`unlisted`): taken for the host's, it
 * would merge the users of one login in two companies into one.
 */
export class IntegrationCompanies {
  /** Names of companies the company list does not have. */
  readonly unlisted = new Set<string>();
  private byLowerCase: Map<string, string[]> | undefined;

  constructor(
    private readonly hostCompany: string | undefined,
    private readonly list: CompanyList | undefined,
  ) {}

  /**
   * `where`: the record's place, for the error when its company is there but unusable (not an
   * object, no loginName, a loginName that is not text): filed under _host, as a record without
   * one is, its user would be merged into the host user of the same login, someone else.
   */
  of(record: Raw, where: () => string): string {
    const { name, unlisted } = this.read(record, where);
    if (unlisted) this.unlisted.add(name);
    return name;
  }

  /**
   * Whether the detail endpoint's record of a user (`detail`) names the company the list's record
   * (`listed`) was filed under (`company`). Oracle's samples name the host `_host` in the list and
   * by its own login in the detail (`cpq-mdb`): a name the company list does not have, beside a
   * list record saying `_host` in so many words, is taken for that; beside one naming no company
   * (filed under `_host` for want of one), it names another company.
   */
  detailAgrees(detail: Raw, listed: Raw, company: string, where: () => string): { agrees: boolean; named: string } {
    const { name, unlisted } = this.read(detail, where);
    const listCompany = canonicalize(listed).get('company');
    const listSaysHost = isJsonObject(listCompany) && sentString(canonicalize(listCompany).get('loginName')) === '_host';
    return { agrees: name === company || (listSaysHost && unlisted), named: name };
  }

  /** The company `record` names (see `of`), and whether the company list, which the run has, lacks it. */
  private read(record: Raw, where: () => string): { name: string; unlisted: boolean } {
    const company = canonicalize(record).get('company');
    if (company === undefined || company === null) return { name: '_host', unlisted: false };
    if (!isJsonObject(company)) throw new RecordError(`${where()}: field "company" must be an object with a loginName, got ${describeValue(company)}`);
    const value = canonicalize(company).get('loginName');
    const sent = sentString(value);
    if (sent === undefined || sent.trim() === '') {
      const got =
        value === undefined ? 'is missing' : `must be a company's login name, got ${sent === undefined ? describeValue(value) : JSON.stringify(sent)}`;
      throw new RecordError(`${where()}: field "company.loginName" ${got}, so the user's company is not known`);
    }
    const loginName = this.spelledAsKnown(sent);
    if (loginName === this.hostCompany) return { name: '_host', unlisted: false };
    if (this.list === undefined || loginName === '_host') return { name: loginName, unlisted: false };
    if (this.list.hostLogins.has(loginName)) return { name: '_host', unlisted: false };
    if (!this.list.listed.has(loginName)) return { name: loginName, unlisted: true };
    if (!this.list.marksHost) {
      // The list names the company, but marks no entry as the host: it may be the host's own login,
      // whose users the _host feed returns too. Filed under that name, each would be two rows.
      throw new SyncError(
        'config',
        `integration users name the company ${JSON.stringify(loginName)}, and the company list marks no company as the host (isHost): set CPQ_HOST_COMPANY to the host's own login name`,
      );
    }
    return { name: loginName, unlisted: false };
  }

  /**
   * A company's login name as CPQ_HOST_COMPANY or the company list spells it, when the feed
   * spells it in another case (`acme` for the list's `Acme`) and exactly one known name matches
   * so: filed under the feed's spelling, each such user would be a second row beside the one its
   * company feed returns. A name known as sent, or matching none or several companies, stays as sent.
   */
  private spelledAsKnown(sent: string): string {
    if (sent === this.hostCompany || this.list?.listed.has(sent) === true) return sent;
    const matches = this.knownByLowerCase().get(sent.toLowerCase()) ?? [];
    // Several names of the host's own (CPQ_HOST_COMPANY cpqmdb, the list's CpqMdb) are one company.
    const isHost = (name: string) => name === this.hostCompany || this.list?.hostLogins.has(name) === true;
    return matches.length === 1 || (matches.length > 1 && matches.every(isHost)) ? matches[0]! : sent;
  }

  /** The known company names (CPQ_HOST_COMPANY's, the list's) by their lower case: made once, asked for every integration user. */
  private knownByLowerCase(): Map<string, string[]> {
    if (this.byLowerCase === undefined) {
      this.byLowerCase = new Map();
      for (const name of new Set([...(this.hostCompany === undefined ? [] : [this.hostCompany]), ...(this.list?.listed ?? [])])) {
        const lower = name.toLowerCase();
        this.byLowerCase.set(lower, [...(this.byLowerCase.get(lower) ?? []), name]);
      }
    }
    return this.byLowerCase;
  }

  /**
   * The host's own login names other than `_host`. Releases before this mapping filed
   * integration users under them, beside their `_host` rows; those rows are ended as deleted by a
   * run that reads the host in full (run.ts), since no run reads such a company.
   */
  hostAliases(): string[] {
    const names = new Set(this.list?.hostLogins ?? []);
    if (this.hostCompany !== undefined) names.add(this.hostCompany);
    names.delete('_host');
    return [...names];
  }
}

/**
 * Where this run reads the integration feed from. A user of both feeds that a company read
 * returns and the integration read does not is merged with its stored integration fields
 * (keepIntegrationFeedFields); of a row stored without the feeds' lists (before migration 0035),
 * those of Oracle's samples of that feed: a field only the integration feed sends beyond them
 * would be dropped, logged as removed, and added back by the next read that returns it. So the
 * integration read's window covers every company read's: full when any company read is (a first
 * load; the zip export, always), else from the earliest cursor.
 */
export function integrationSince(sinceFor: (id: StreamId) => Date | undefined, cpq: CpqConfig, companies: readonly string[]): Date | undefined {
  let since = sinceFor(INTEGRATION_STREAM);
  if (since === undefined || cpq.exportFormat === 'zip') return undefined;
  for (const company of companies) {
    const companySince = sinceFor(companyStream(company));
    if (companySince === undefined) return undefined;
    if (companySince < since) since = companySince;
  }
  return since;
}

/**
 * Integration users keyed by company and login, complete with groups, read before company users.
 * `progress` is the stream's; on a site without the endpoint (404, CPQ_INTEGRATION_USERS=auto)
 * `onAbsent` is told why and none are returned; `onIncomplete` is told why a full read does not
 * count as complete (no totalResults).
 */
export async function readIntegrationUsers(
  http: CpqHttpClient,
  cpq: CpqConfig,
  companies: IntegrationCompanies,
  progress: StreamProgress,
  log: Logger,
  onAbsent: (warning: string) => void,
  onIncomplete: (warning: string) => void,
): Promise<IntegrationUsers> {
  const found = new IntegrationUsers();
  // Every record read is held until the run's end (the company feeds merge over them), so they are
  // bounded together like one page: a list page of 1,000 users whose details were each 8 MiB
  // (each within the page bound) took 4 GB of heap before the first was normalized (review DD).
  let heldChars = 0;
  const hold = (chars: number, url: string) => {
    heldChars += chars;
    if (heldChars > cpq.maxPageBytes)
      throw new SyncError(
        'data',
        `GET ${url}: the integration users read add up to more than CPQ_MAX_PAGE_BYTES (${cpq.maxPageBytes}) characters, and a run holds them all; refused`,
      );
  };
  // The record to normalize and its company, found once from the list's record (the detail's must
  // agree); `counted`: the characters of it counted as they arrived (a detail's).
  const readRecord = async (item: unknown, i: number, url: string): Promise<{ record: Raw; company: string; counted: number } | undefined> => {
    if (!isJsonObject(item)) throw new RecordError(`record ${i} of ${url}: expected a user object, got ${describeValue(item)}`);
    const fields = canonicalize(item);
    const where = `record ${i} of ${url}`;
    const company = companies.of(item, () => where);
    const place = () => recordPlace(company, fields.get('login'), where);
    if (carriesItems(fields.get('groups'))) return { record: item, company, counted: 0 };
    // The list did not expand groups (no groups, or a collection without items): the detail endpoint has them.
    const partyNumber = sentString(fields.get('partyNumber'));
    if (partyNumber === undefined) throw new RecordError(`${place()}: integration user without partyNumber (as text), cannot read its groups`);
    // Refused here rather than by the URL builder, so that the error names the record and its field.
    const problem = pathSegmentProblem(partyNumber);
    if (problem !== undefined) throw new RecordError(`${place()}: field "partyNumber" ${JSON.stringify(partyNumber)} ${problem}, so its groups cannot be read`);
    const read = await integrationUserDetail(http, partyNumber);
    if (read === undefined) return undefined;
    // Counted before the page's other details arrive, so that they are not all held first.
    hold(read.chars, url);
    const detail = read.body;
    if (!isJsonObject(detail)) return undefined;
    // The detail is of the user the list named, or the list's user would get another's groups and flags.
    // A null is a claim too: laid over the list's, it would clear what the list said (a company
    // null files the user under _host, merged with the host user of its login).
    const told = canonicalize(detail);
    for (const key of ['login', 'partyNumber'] as const) {
      const said = told.get(key);
      if (said !== undefined && said !== fields.get(key)) {
        throw new RecordError(
          `${place()}: the detail of partyNumber ${JSON.stringify(partyNumber)} names another ${key} (${describeValue(said)}); refused rather than merge two users`,
        );
      }
    }
    if (told.has('company')) {
      const { agrees, named } = companies.detailAgrees(detail, item, company, () => `the detail of ${where}`);
      if (!agrees) {
        throw new RecordError(
          `${place()}: the detail of partyNumber ${JSON.stringify(partyNumber)} names another company (${JSON.stringify(named)}); refused rather than merge two users`,
        );
      }
    }
    // Laid over the list's record: what the detail leaves out (its company, say) is the list's, not nothing.
    return { record: layOver(detail, item), company, counted: read.chars };
  };
  try {
    for await (const page of integrationUserPages(http, cpq, progress.since)) {
      progress.page(page);
      const records = await allUntilFirstFailure(page.items.values(), cpq.concurrency, (item, i) => readRecord(item, i, page.url));
      records.forEach((read, i) => {
        if (!read) return;
        const { record, company, counted } = read;
        const row = normalizeUser(record, { companyLogin: company, isIntegrationUser: true, origin: page.url }, i);
        // The rest of what is held: a list record, or what the list's record adds to a detail's (review DJ).
        hold(Math.max(0, row.raw.length - counted), page.url);
        progress.saw([row]);
        found.add(row.companyLogin, row.login, record, page.url, i);
      });
      log.info({ stream: INTEGRATION_STREAM.name, page: page.index, items: page.items.length }, 'page read');
    }
    // Counted by user: a repeat cannot hide a user left out, who would then stop being an integration user.
    progress.countedUsers(found.size);
    // And only totalResults shows that the keyset pages returned every user (as for a company read:
    // where CPQ's sort and its $gt disagree, later pages skip users unseen); without it, a user a
    // page skipped would stop being an integration user, or be marked deleted, and come back next run.
    found.complete = progress.report.mode === 'full' && !progress.short && progress.report.totalResults !== null;
    if (progress.report.mode === 'full' && progress.report.totalResults === null) {
      onIncomplete(
        `${INTEGRATION_STREAM.name}: CPQ sent no totalResults, so the read cannot show that its pages returned every integration user; none stops being one or is marked deleted this run`,
      );
    }
  } catch (err) {
    // Only the first page's 404 says the site has no such endpoint: a later one fails the read,
    // as any error in the middle of a list does (taken for the end of it, the users on the
    // pages after it would stop being integration users).
    if (err instanceof SyncError && err.status === 404 && cpq.integrationUsers === 'auto' && progress.report.pages === 0) {
      onAbsent(
        `integration users: ${err.message.replace(/ with .*$/, '')}; this site has no integration-user endpoint (set CPQ_INTEGRATION_USERS=off to skip it)`,
      );
      return new IntegrationUsers();
    }
    throw err;
  }
  return found;
}

/**
 * Integration users the company feeds did not return this run (their company is not synced, or
 * an incremental window missed it there): merged over the row we already hold, so fields only
 * the company feed carries (access permissions) are kept (see feed-fields.ts).
 */
export async function stageIntegrationOnly(site: string, users: IntegrationUsers, stager: Stager, client: pg.PoolClient): Promise<void> {
  const left = users.remaining();
  if (left.length === 0) return;
  const existing = await storedRecords(client, site, left, { integrationOnly: false, groups: true });
  const staged = left.map((u) => {
    // What the company feed gave is kept; not the integration feed's fields the company feed need
    // not send (INTEGRATION_ONLY_FIELDS), nor any other field only the integration feed gave: this
    // record, of the feed that provides them, says them afresh, and one it leaves out is gone.
    const found = existing.get(userKey(u.company, u.login));
    const source = { companyLogin: u.company, isIntegrationUser: true, origin: u.origin };
    const read = normalizeUser(u.record, source, u.index);
    // Another user given the login (review GI): nothing of the former holder is kept.
    const stored = found && !heldByAnother(read, found.holder) ? found : undefined;
    const row = stored
      ? normalizeUser(
          keepCompanyFeedFields(u.record, withoutIntegrationOnlyFields(givenByCompanyFeed(stored.record, stored.feedFields.company))),
          source,
          u.index,
        )
      : read;
    // The company feed's fields as they were, since it did not read the user: all of a record stored
    // without the list, as read above; none of a user new to the database.
    const companyFields = stored === undefined ? [] : (stored.feedFields.company ?? fieldsIn(stored.record));
    users.noteFeedFields(row, { company: companyFields, integration: fieldsIn(u.record) });
    return row;
  });
  stager.take(INTEGRATION_STREAM.name, staged);
  await stager.endPage();
}

/**
 * The stored records of `users` (readStoredRecords), keyed by userKey, each number spelled as its
 * text column, permission or group row holds it: jsonb gave back its value only (stored-spellings.ts);
 * with the fields each feed gave, where recorded, and who was last known to hold the login.
 */
async function storedRecords(
  on: Queryable,
  site: string,
  users: readonly { company: string; login: string }[],
  options: { integrationOnly: boolean; groups: boolean },
): Promise<Map<string, { record: Raw; feedFields: FeedFields; holder: KnownHolder }>> {
  const stored = await readStoredRecords(on, site, users, { ...options, key: userKey });
  return new Map(
    [...stored].map(([key, { record, spellings, feedFields, holder }]) => [key, { record: withStoredSpellings(record, spellings), feedFields, holder }]),
  );
}

const DATE_ADDED = USER_VALUE_COLUMNS.indexOf('date_added');
const CPQ_ID = USER_VALUE_COLUMNS.indexOf('cpq_id');

/**
 * Whether `read` (a record normalized alone) is of another user than the one last known to hold
 * its login: its dateAdded at another instant, or its CPQ id another number. The merge's rule
 * (db/sql/last-known-identity.ts), on the columns the merge compares, as the normalizer reads them
 * (`2222.0` is the id 2222; review GL): a record without either says nothing.
 */
function heldByAnother(read: UserRow, known: KnownHolder): boolean {
  const text = (value: ColumnValue | undefined) => (typeof value === 'string' ? value : undefined);
  const instant = (value: string | null | undefined) => (value == null ? undefined : instantMicros(value));
  const integer = (value: string | null | undefined) => (value == null ? undefined : BigInt(value));
  const differ = <T>(a: T | undefined, b: T | undefined) => a !== undefined && b !== undefined && a !== b;
  return differ(instant(text(read.values[DATE_ADDED])), instant(known.dateAdded)) || differ(integer(text(read.values[CPQ_ID])), integer(known.cpqId));
}

/**
 * Company-feed rows (none an integration user's) of users stored as integration users that this
 * run's integration read did not return (an incremental window that missed them, a feed that is
 * off or absent): they stay integration users, with the integration feed's fields as stored (see
 * feed-fields.ts), so the re-read logs no change for them. `rows[j]` is the row of the page's
 * record `indexes[j]`; rewrites those entries of `rows` in place, and notes each one's feeds'
 * fields in `integrationUsers`.
 */
export async function keepStoredIntegrationFields(
  pool: Queryable,
  site: string,
  company: string,
  page: Page,
  rows: UserRow[],
  indexes: readonly number[],
  integrationUsers: IntegrationUsers,
): Promise<void> {
  const candidates = rows.map((row) => ({ company, login: row.login }));
  if (candidates.length === 0) return;
  // Committed state, on another connection of the pool: the run's own connection is busy with
  // COPY, and nothing this run writes before its final merge touches a stored user.
  // Not their groups: a company record's are its own (keepIntegrationFeedFields keeps none of the stored).
  const stored = await storedRecords(pool, site, candidates, { integrationOnly: true, groups: false });
  if (stored.size === 0) return;
  rows.forEach((row, j) => {
    const before = stored.get(userKey(company, row.login));
    if (!before) return;
    const i = indexes[j]!;
    const read = page.items.value(i) as Raw;
    // Someone else now holds the login (the integration user was deleted, its login given to a
    // new user, and no full read saw the deletion yet): what the former holder had is not kept.
    if (heldByAnother(row, before.holder)) return;
    const record = keepIntegrationFeedFields(read, before.record, before.feedFields.integration);
    rows[j] = normalizeUser(record, { companyLogin: company, isIntegrationUser: true, origin: page.url, position: page.positions?.[i] }, i);
    integrationUsers.noteFeedFields(rows[j], { company: fieldsIn(read), integration: before.feedFields.integration });
  });
}
