import { SyncError } from '../errors.js';
import { canonicalize } from './user-fields.js';
import type { CpqHttpClient } from './http-client.js';
import { isJsonObject } from '../exact-json.js';

export interface Page {
  url: string;
  /** 0-based page number within the stream. */
  index: number;
  items: unknown[];
  /** `totalResults` of the first page (the size of the whole filtered collection), when CPQ sent it. */
  totalResults: number | undefined;
  /** Where each item sits in its source, when its index in the page would not say: a zip export's entry and line. */
  positions?: string[];
}

export interface CollectionRequest {
  path: string;
  /** Extra query parameters such as expand. */
  query: Record<string, string>;
  /** A q filter that every page keeps (the incremental window), or undefined. */
  filter: Record<string, unknown> | undefined;
  pageSize: number;
}

function loginOf(item: unknown): string | undefined {
  if (!isJsonObject(item)) return undefined;
  const login = canonicalize(item).get('login');
  return typeof login === 'string' ? login : undefined;
}

/** Checks the collection envelope; a wrong shape fails the run naming the URL. */
export function readCollection(url: string, body: unknown): { items: unknown[]; hasMore: boolean; totalResults: number | undefined } {
  if (!isJsonObject(body))
    throw new SyncError(
      'data',
      `GET ${url}: expected a JSON object with items[], got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`,
    );
  const items = body.items;
  if (!Array.isArray(items))
    throw new SyncError('data', `GET ${url}: expected items[] in the response, got ${items === undefined ? 'no items' : typeof items}`);
  if (body.hasMore !== undefined && typeof body.hasMore !== 'boolean') {
    throw new SyncError('data', `GET ${url}: hasMore must be true or false`);
  }
  const total = body.totalResults;
  return { items, hasMore: body.hasMore === true, totalResults: typeof total === 'number' ? total : undefined };
}

/**
 * Reads a user collection by keyset: ordered by login, each page asks for logins after the last
 * one seen (`q` login $gt), always at offset 0. Unlike offset paging, a user that exists for the
 * whole read cannot be skipped when others are added, edited or deleted between requests:
 * its position relative to the cursor never changes. Edited users may be read twice; the
 * loader keeps the last copy.
 */
export async function* keysetPages(client: CpqHttpClient, request: CollectionRequest): AsyncGenerator<Page> {
  let after: string | undefined;
  let totalResults: number | undefined;
  for (let index = 0; ; index++) {
    const conditions: Record<string, unknown>[] = [];
    if (request.filter) conditions.push(request.filter);
    if (after !== undefined) conditions.push({ login: { $gt: after } });
    const q = conditions.length === 0 ? undefined : conditions.length === 1 ? conditions[0] : { $and: conditions };
    const url = client.url(request.path, {
      ...request.query,
      ...(q ? { q: JSON.stringify(q) } : {}),
      orderby: 'login:asc',
      limit: String(request.pageSize),
      offset: '0',
      ...(index === 0 ? { totalResults: 'true' } : {}),
    });
    const response = await client.getJson(url);
    const page = readCollection(url, response.body);
    if (index === 0) totalResults = page.totalResults;
    yield { url, index, items: page.items, totalResults };
    if (!page.hasMore || page.items.length === 0) return;
    const last = loginOf(page.items[page.items.length - 1]);
    if (last === undefined) throw new SyncError('data', `GET ${url}: the last record of the page has no login, so paging cannot continue`);
    if (last === after) {
      throw new SyncError('data', `GET ${url}: CPQ did not honour the login filter (the page ended at "${last}" again), so paging would not progress`);
    }
    after = last;
  }
}

/** Plain offset paging, for small collections such as the company list. */
export async function* offsetPages(client: CpqHttpClient, path: string, query: Record<string, string>, pageSize: number): AsyncGenerator<Page> {
  for (let index = 0, offset = 0; ; index++) {
    const url = client.url(path, { ...query, limit: String(pageSize), offset: String(offset) });
    const response = await client.getJson(url);
    const page = readCollection(url, response.body);
    yield { url, index, items: page.items, totalResults: page.totalResults };
    if (!page.hasMore || page.items.length === 0) return;
    offset += page.items.length;
  }
}
