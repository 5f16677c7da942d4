import { SyncError } from '../errors.js';
import { canonicalize, loginField } from './user-fields.js';
import type { CpqHttpClient } from './http-client.js';
import type { Slot } from './request-budget.js';
import { LosslessNumber, countValue, isJsonObject, numberLiteralOf, sentString, shownName, stringifyExactJson } from '../exact-json.js';
import { PagingFields, RepeatedPagingFieldError } from './json-items.js';
import { PageRecords } from './page-records.js';

export interface Page {
  url: string;
  /** 0-based page number within the stream, in the order the pages are handed over. */
  index: number;
  items: PageRecords;
  /**
   * The size of the whole filtered collection, when CPQ sent it: `totalResults` of a JSON read's
   * first page; on a zip read's last page, the largest its `.json` bodies gave.
   */
  totalResults: number | undefined;
  /** Where each item sits in its source, when its index in the page would not say: a zip export's entry and line. */
  positions?: string[];
  /**
   * The key range the page was read from, when the read was split (see keysetPages); its items
   * are in it if CPQ honoured the filter. Pages of one range come in login order.
   */
  range?: KeyRange;
}

/**
 * A stretch of the login order: logins from `from` (included) to `to` (excluded); an unset end is
 * open. `index` numbers the ranges of one read from 0, in login order; `count` is how many there
 * are (1 when the probed boundaries were not trusted and the read went on as one range).
 */
export interface KeyRange {
  index: number;
  count: number;
  from?: string;
  to?: string;
}

export interface CollectionRequest {
  path: string;
  /** Extra query parameters such as expand. */
  query: Record<string, string>;
  /** A q filter that every page keeps (the incremental window), or undefined. */
  filter: Record<string, unknown> | undefined;
  pageSize: number;
  /**
   * A second key for collections where a login is not unique: with login, it orders the records
   * totally, and the keyset goes on after (login, this key). The integration users are "across all
   * companies": two companies' users may share a login, and `login $gt` after a page that ended at
   * one of them skipped the other. Only for reads that are not split into key ranges.
   */
  tieBreak?: string;
}

/**
 * Where a keyset page ends: its last record's login, and its tie-break key when the request has
 * one: the key's text, or its number as sent (a site may send partyNumber as a number), which the
 * next page's filter compares as a number, digit for digit.
 */
interface Cursor {
  login: string;
  tie?: string | LosslessNumber;
}

/** The tie-break key of a page's last record as a Cursor holds it, or undefined for none (absent, null, empty text, an object). */
function tieOf(key: unknown): string | LosslessNumber | undefined {
  const text = sentString(key);
  if (text !== undefined) return text || undefined;
  const literal = numberLiteralOf(key);
  return literal === undefined ? undefined : new LosslessNumber(literal);
}

/** A cursor as text, each number as its literal: two cursors are one place when their texts are equal. */
const cursorText = (cursor: Cursor) => stringifyExactJson([cursor.login, cursor.tie ?? null], { hasLosslessNumbers: true });

function loginOf(item: unknown): string | undefined {
  if (!isJsonObject(item)) return undefined;
  const login = loginField(item);
  return sentString(login);
}

/**
 * Checks the collection envelope; a wrong shape fails the run naming the URL. `records`: the
 * items of a page cut apart as it was read (JsonResponse.records), `body` then the rest of it.
 * `limit`: the page size asked for. A page holding more is refused: what a run holds per page
 * (a first load's refused rows, the rows held back for integration users) is bounded by it.
 * A page that does not say hasMore has more when it is full (`limit` records): taken for the last,
 * a full page would end a read early, and the users after it would never be loaded.
 */
export function readCollection(
  url: string,
  body: unknown,
  limit: number,
  records?: PageRecords,
): { items: PageRecords; hasMore: boolean; totalResults: number | undefined } {
  if (!isJsonObject(body))
    throw new SyncError(
      'data',
      `GET ${url}: expected a JSON object with items[], got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`,
    );
  const items = records ?? body.items;
  if (!(items instanceof PageRecords) && !Array.isArray(items))
    throw new SyncError('data', `GET ${url}: expected items[] in the response, got ${items === undefined ? 'no items' : typeof items}`);
  // In any case, as every field name is read (HasMore, TotalResults): read in one spelling only,
  // a page saying in another that more follow would end the read, and its users be left unread.
  let paging: PagingFields;
  try {
    paging = PagingFields.of(body);
  } catch (err) {
    if (err instanceof RepeatedPagingFieldError) throw new SyncError('data', `GET ${url}: ${err.message}; refused rather than take one`);
    throw err;
  }
  const hasMore = paging.get('hasMore');
  if (hasMore !== undefined && typeof hasMore !== 'boolean') {
    throw new SyncError('data', `GET ${url}: hasMore must be true or false`);
  }
  const count = items instanceof PageRecords ? items.length : (items as unknown[]).length;
  if (count > limit) throw new SyncError('data', `GET ${url}: the page holds ${count} items, more than the ${limit} asked for (limit); refused`);
  // One in no form of a count is as none (test/fixtures/bad/63): no short-read check, no deletions.
  const totalResults = countValue(paging.get('totalResults'));
  return {
    items: items instanceof PageRecords ? items : PageRecords.parsed(items as unknown[]),
    hasMore: hasMore ?? count >= limit,
    totalResults,
  };
}

/** A page as read, before it is numbered in the stream. */
interface ReadPage {
  url: string;
  items: PageRecords;
  hasMore: boolean;
  totalResults: number | undefined;
  range: KeyRange | undefined;
  /** Its place in the client's read-ahead, given back once the page was used. */
  slot: Slot;
  /** How long the site took to answer it. */
  ms: number;
}

/** When a read is split into key ranges (see keysetPages). */
export interface SplitPolicy {
  /** Most ranges; 1 never splits. */
  keyRanges: number;
  /** Only a read whose first page took at least this long (ms) is split. */
  slowerThanMs: number;
}

/** q of the request: the collection's own filter and the keyset conditions, each conjunct a single comparison (or $or of them) as in Oracle's examples. */
function filterOf(request: CollectionRequest, keyset: Record<string, unknown>[]): string | undefined {
  const conditions: Record<string, unknown>[] = [...(request.filter ? [request.filter] : []), ...keyset];
  // A tie-break key sent as a number goes into the filter as that number, digit for digit.
  return conditions.length === 0 ? undefined : stringifyExactJson(conditions.length === 1 ? conditions[0] : { $and: conditions }, { hasLosslessNumbers: true });
}

/** The order of every page: by login, then by the tie-break key when there is one. */
const orderOf = (request: CollectionRequest) => (request.tieBreak ? `login:asc,${request.tieBreak}:asc` : 'login:asc');

/** The records after `after`: a later login, or (with a tie-break key) the same login and a later key. */
function afterCursor(request: CollectionRequest, after: Cursor): Record<string, unknown> {
  if (request.tieBreak === undefined || after.tie === undefined) return { login: { $gt: after.login } };
  return { $or: [{ login: { $gt: after.login } }, { $and: [{ login: { $eq: after.login } }, { [request.tieBreak]: { $gt: after.tie } }] }] };
}

/**
 * One keyset page: ordered by login, logins after `after` within the range, always at offset 0.
 * The request is sent as soon as the client's read-ahead has room; the promise is marked handled,
 * so a page nobody waits for any more (the read failed elsewhere) cannot crash the process, while
 * whoever awaits it still sees a failure.
 */
function requestPage(
  client: CpqHttpClient,
  request: CollectionRequest,
  range: KeyRange | undefined,
  after: Cursor | undefined,
  first: boolean,
): Promise<ReadPage> {
  const keyset: Record<string, unknown>[] = [];
  if (after !== undefined) keyset.push(afterCursor(request, after));
  else if (range?.from !== undefined) keyset.push({ login: { $gte: range.from } });
  if (range?.to !== undefined) keyset.push({ login: { $lt: range.to } });
  const q = filterOf(request, keyset);
  const url = client.url(request.path, {
    ...request.query,
    ...(q ? { q } : {}),
    orderby: orderOf(request),
    limit: String(request.pageSize),
    offset: '0',
    ...(first ? { totalResults: 'true' } : {}),
  });
  const page = client.readAheadSlot(url).then(async (slot) => {
    try {
      const response = await client.getJson(url, { collection: true });
      return { url, range, slot, ms: response.ms, ...readCollection(url, response.body, request.pageSize, response.records) };
    } catch (err) {
      slot.release();
      throw err;
    }
  });
  page.catch(() => undefined);
  return page;
}

/** Where the next page of a keyset read starts, or undefined when the page was the last. */
function nextAfter(request: CollectionRequest, page: ReadPage, after: Cursor | undefined): Cursor | undefined {
  if (!page.hasMore || page.items.length === 0) return undefined;
  const item = page.items.value(page.items.length - 1);
  const last = loginOf(item);
  if (last === undefined) throw new SyncError('data', `GET ${page.url}: the last record of the page has no login (as text), so paging cannot continue`);
  // Under any spelling; a record without it as text or a number pages on the login alone, as every
  // read did before the tie-break: a tie at that page's end may then be skipped (the read is then
  // short by totalResults, and deletes nothing).
  const key = request.tieBreak !== undefined && isJsonObject(item) ? canonicalize(item).get(request.tieBreak) : undefined;
  const tie = tieOf(key);
  const next: Cursor = tie === undefined ? { login: last } : { login: last, tie };
  if (after !== undefined && cursorText(next) === cursorText(after)) {
    throw new SyncError(
      'data',
      `GET ${page.url}: CPQ did not honour the login filter (the page ended at "${shownName(last)}" again), so paging would not progress`,
    );
  }
  return next;
}

/**
 * Where a range's pages ended. A page that ends where an earlier one did went back: pages ending
 * at a, b, a, b, ... would be asked for forever. (Not checked by order: CPQ's sort of logins
 * need not be ours, and a read in another order is still read.) One entry per page.
 */
class PassedPageEnds {
  private readonly ends = new Set<string>();

  /** `first`: where the page before the range's first one ended, when it was read elsewhere. */
  constructor(first: Cursor | undefined) {
    if (first !== undefined) this.ends.add(cursorText(first));
  }

  /** Notes where a page ended; `url` names the page when it went back. */
  check(next: Cursor, url: string): void {
    const key = cursorText(next);
    if (this.ends.has(key)) {
      throw new SyncError(
        'data',
        `GET ${url}: CPQ did not honour the login filter (the page ended at "${shownName(next.login)}" again), so paging would not progress`,
      );
    }
    this.ends.add(key);
  }
}

/**
 * The pages of one key range from `pending` (its first page, already requested) on. Each next
 * page is requested as soon as the last login of the previous one is known, before the previous
 * page is handed over: CPQ builds it while this one is processed. A page's read-ahead place is
 * given back when the next one is asked for: it has been used. `pending` is the loop's own
 * variable: a second one would keep the range's first page alive for as long as the range is read.
 */
async function* rangePages(
  client: CpqHttpClient,
  request: CollectionRequest,
  range: KeyRange | undefined,
  pending: Promise<ReadPage>,
  after: Cursor | undefined,
): AsyncGenerator<ReadPage> {
  const passed = new PassedPageEnds(after);
  for (;;) {
    const page = await pending;
    const last = nextAfter(request, page, after);
    if (last !== undefined) {
      passed.check(last, page.url);
      pending = requestPage(client, request, range, last, false);
    }
    try {
      yield page;
    } finally {
      page.slot.release();
    }
    if (last === undefined) return;
    after = last;
  }
}

/**
 * The login at each offset, read with one cheap request per offset (`limit=1&fields=login`, the
 * read's own filter and order), in the order of the offsets. An offset past the end (users were
 * deleted meanwhile) gives none.
 */
async function probeLogins(client: CpqHttpClient, request: CollectionRequest, offsets: number[]): Promise<string[]> {
  const q = filterOf(request, []);
  const logins = await Promise.all(
    offsets.map(async (offset) => {
      const url = client.url(request.path, { ...(q ? { q } : {}), orderby: orderOf(request), limit: '1', offset: String(offset), fields: 'login' });
      const response = await client.getJson(url, { collection: true });
      const { items } = readCollection(url, response.body, 1, response.records);
      if (items.length === 0) return undefined;
      const login = loginOf(items.value(0));
      if (login === undefined) throw new SyncError('data', `GET ${url}: the record has no login, so the read cannot be split at it`);
      return login;
    }),
  );
  return logins.filter((login) => login !== undefined);
}

/** Strictly increasing, by UTF-16 code unit as CPQ sorts logins (case-sensitive). */
function increasing(logins: string[]): boolean {
  return logins.every((login, i) => i === 0 || logins[i - 1]! < login);
}

/**
 * The pages of several sources as each arrives, one pull per source at a time: a source is asked
 * for its next page only once its previous one was handed over, so each holds at most the page
 * it prefetched. Arrivals are queued rather than raced: Promise.race over sources that stay
 * pending for long would leave a reaction on each of them per page, each holding that page.
 */
async function* interleave<T>(sources: AsyncGenerator<T>[]): AsyncGenerator<T> {
  const arrived: Array<{ source: number; result: IteratorResult<T> } | { error: unknown }> = [];
  let wake: (() => void) | undefined;
  const pull = (source: number) => {
    const settled = (entry: (typeof arrived)[number]) => {
      arrived.push(entry);
      wake?.();
      wake = undefined;
    };
    sources[source]!.next().then(
      (result) => settled({ source, result }),
      (error: unknown) => settled({ error }),
    );
  };
  sources.forEach((_, source) => pull(source));
  for (let open = sources.length; open > 0;) {
    if (arrived.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    const entry = arrived.shift()!;
    if ('error' in entry) throw entry.error;
    if (entry.result.done) {
      open--;
      continue;
    }
    yield entry.result.value;
    pull(entry.source);
  }
}

/**
 * Reads a user collection by keyset: ordered by login, each page asks for logins after the last
 * one seen (`q` login $gt), always at offset 0. Unlike offset paging, a user that exists for the
 * whole read cannot be skipped when others are added, edited or deleted between requests:
 * its position relative to the cursor never changes. Edited users may be read twice; the
 * loader keeps the last copy.
 *
 * A large read from a slow site (its first page took at least `split.slowerThanMs`) is split into
 * up to `split.keyRanges` key ranges read in parallel: from a fast one, the loader is the slower
 * side, and more pages at once would only take memory. The first page is read
 * alone (it says how many users there are, totalResults); the logins at evenly spaced offsets of
 * the rest (a whole number of pages apart), read with cheap probes, are the boundaries b1 < ... < bn, all after the first page's
 * last login L: the ranges are (L, b1), [b1, b2) ... [bn, +inf), read with `$gt`/`$gte` and `$lt`.
 * Whatever changes during the read, every login after L falls in exactly one range, and each
 * range is a keyset read with the guarantee above; a boundary users moved away from only makes
 * its ranges uneven. Boundaries that do not increase from L on, in our order (CPQ sorting
 * differently, or the collection reshuffled between probes), are not trusted: the read goes on
 * as one range. The pages of all ranges are handed over as they arrive, each range's in login
 * order.
 */
export async function* keysetPages(
  client: CpqHttpClient,
  request: CollectionRequest,
  split: SplitPolicy = { keyRanges: 1, slowerThanMs: 0 },
): AsyncGenerator<Page> {
  // Dropped once handed over: a read holds no page longer than it is used.
  let first: ReadPage | undefined = await requestPage(client, request, undefined, undefined, true);
  const firstSize = first.items.length;
  const totalResults = first.totalResults;
  const last = nextAfter(request, first, undefined);
  const remaining = last === undefined || totalResults === undefined ? 0 : Math.max(0, totalResults - first.items.length);
  // Ranges of whole pages, the last one shorter: a range of 2.5 pages would cost a third request for half a page's users.
  const remainingPages = Math.ceil(remaining / request.pageSize);
  const keyRanges = first.ms >= split.slowerThanMs && request.tieBreak === undefined ? split.keyRanges : 1;
  const pagesPerRange = Math.ceil(remainingPages / Math.max(1, Math.min(keyRanges, remainingPages)));
  const parts = pagesPerRange === 0 ? 0 : Math.ceil(remainingPages / pagesPerRange);
  let index = 0;
  const numbered = (page: ReadPage): Page => ({
    url: page.url,
    index: index++,
    items: page.items,
    totalResults: index === 1 ? totalResults : undefined,
    ...(page.range ? { range: page.range } : {}),
  });
  const handOver = async function* (page: ReadPage): AsyncGenerator<Page> {
    try {
      yield numbered(page);
    } finally {
      page.slot.release();
    }
  };
  if (last === undefined) {
    yield* handOver(first);
    return;
  }
  if (parts < 2) {
    const rest = rangePages(client, request, undefined, requestPage(client, request, undefined, last, false), last);
    yield* handOver(first);
    // eslint-disable-next-line no-useless-assignment -- not for later statements: it lets the page go while the read goes on
    first = undefined;
    for await (const page of rest) yield numbered(page);
    return;
  }
  const offsets = Array.from({ length: parts - 1 }, (_, k) => firstSize + (k + 1) * pagesPerRange * request.pageSize);
  const probed = probeLogins(client, request, offsets);
  probed.catch(() => undefined);
  yield* handOver(first);
  // eslint-disable-next-line no-useless-assignment -- not for later statements: it lets the page go while the read goes on
  first = undefined;
  const probes = await probed;
  const bounds = increasing([last.login, ...probes]) ? probes : [];
  const ranges: KeyRange[] = [undefined, ...bounds].map((from, i) => ({
    index: i,
    count: bounds.length + 1,
    ...(from === undefined ? {} : { from }),
    ...(i < bounds.length ? { to: bounds[i] } : {}),
  }));
  const sources = ranges.map((range, i) => {
    const after = i === 0 ? last : undefined;
    return rangePages(client, request, range, requestPage(client, request, range, after, false), after);
  });
  for await (const page of interleave(sources)) yield numbered(page);
}

/** Plain offset paging, for small collections such as the company list. */
export async function* offsetPages(client: CpqHttpClient, path: string, query: Record<string, string>, pageSize: number): AsyncGenerator<Page> {
  for (let index = 0, offset = 0; ; index++) {
    const url = client.url(path, { ...query, limit: String(pageSize), offset: String(offset) });
    // As a collection: a page with two "items" keys is refused here too (a company of the first would be left out unseen).
    const response = await client.getJson(url, { collection: true });
    // No limit check: an offset read is the company list's, which is held whole and bounded by
    // what holding it costs (listCompanies, HELD_PER_COMPANY), and whose endpoint's paging is not documented.
    // Nor is a page that does not say hasMore followed: an endpoint that ignores limit and offset
    // answers the whole list every time, and a second request would only repeat it.
    const page = readCollection(url, response.body, Number.POSITIVE_INFINITY, response.records);
    yield { url, index, items: page.items, totalResults: page.totalResults };
    if (!page.hasMore || page.items.length === 0) return;
    offset += page.items.length;
  }
}
