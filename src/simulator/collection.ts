import { QueryError } from './query.js';
import { keepLinks, type Link } from './serialize.js';

const MAX_LIMIT = 1000;

export interface PageRequest {
  limit: number;
  offset: number;
  totalResults: boolean;
}

function nonNegativeInteger(raw: string, name: string): number {
  if (!/^\d+$/.test(raw.trim())) throw new QueryError(`${name} must be a non-negative integer`);
  return Number(raw.trim());
}

/** limit: default and maximum 1000 (larger values are capped, as Oracle documents). */
export function parsePageRequest(query: URLSearchParams): PageRequest {
  const rawLimit = query.get('limit');
  const rawOffset = query.get('offset');
  let limit = rawLimit === null || rawLimit === '' ? MAX_LIMIT : nonNegativeInteger(rawLimit, 'limit');
  if (limit === 0) throw new QueryError('limit must be at least 1');
  limit = Math.min(limit, MAX_LIMIT);
  const offset = rawOffset === null || rawOffset === '' ? 0 : nonNegativeInteger(rawOffset, 'offset');
  return { limit, offset, totalResults: query.get('totalResults')?.toLowerCase() === 'true' };
}

function pageHref(collectionHref: string, query: URLSearchParams, offset: number, limit: number): string {
  const params = new URLSearchParams(query);
  params.set('offset', String(offset));
  params.set('limit', String(limit));
  return `${collectionHref}?${params.toString()}`;
}

/**
 * Oracle's collection envelope. totalResults appears only when asked for; count is the number
 * of items in this page.
 */
export function collectionEnvelope<T>(
  all: readonly T[],
  page: PageRequest,
  collectionHref: string,
  query: URLSearchParams,
  excludeLinks: ReadonlySet<string> | undefined,
  toItem: (item: T) => unknown,
): Record<string, unknown> {
  const slice = all.slice(page.offset, page.offset + page.limit);
  const hasMore = page.offset + slice.length < all.length;
  const links: Link[] = [
    { rel: 'self', href: pageHref(collectionHref, query, page.offset, page.limit) },
    { rel: 'canonical', href: collectionHref },
  ];
  if (page.offset > 0) links.push({ rel: 'prev', href: pageHref(collectionHref, query, Math.max(0, page.offset - page.limit), page.limit) });
  if (hasMore) links.push({ rel: 'next', href: pageHref(collectionHref, query, page.offset + page.limit, page.limit) });
  const envelope: Record<string, unknown> = {
    items: slice.map(toItem),
    offset: page.offset,
    limit: page.limit,
    count: slice.length,
    hasMore,
  };
  if (page.totalResults) envelope.totalResults = all.length;
  envelope.links = keepLinks(links, excludeLinks);
  return envelope;
}
