import { collectionEnvelope, parsePageRequest } from './collection.js';
import { errorResponse, jsonText, type HttpResponse } from './http-response.js';
import { stringifyWire } from './json.js';
import { matchesFilter, parseFilter, type Condition } from './filter.js';
import { parseOrderBy, sortByKeys, type SortKey } from './orderby.js';
import { parseFieldList } from './query.js';
import { parseIntegrationUserWrite, WriteRequestError } from './integration-user-writes.js';
import { INTEGRATION_USERS_PATH, type Route } from './routes.js';
import { toWireUser, type UserWireShape } from './serialize.js';
import { compareCodeUnits, isIntegrationUser, type StoredUser, type UserScope, type UserStore } from './store.js';
import { zipExportResponse, type ZipExportOptions } from './zip-export.js';

export interface EndpointSettings {
  pathPrefix: '' | '/cpq';
  integrationListIncludesGroups: boolean;
  drift: boolean;
  /** How the zip export is built, or undefined when the site has none (read per request, so tests can change it). */
  zipExport: () => ZipExportOptions | undefined;
  /** A test's reordering of each user-collection page's items (CPQ need not keep a stable order within a page); undefined: as sorted. */
  reorderPage?: () => (<T>(items: T[]) => T[]) | undefined;
}

/** What the endpoint needs to know about the HTTP request. */
export interface EndpointRequest {
  /** scheme://host[:port] as the client addressed the server, for links. */
  origin: string;
  query: URLSearchParams;
  accept: string;
  /** The request body as text ('' for a GET). */
  body: string;
  /** The clock, for dateAdded/dateModified of writes. */
  nowIso: () => string;
}

interface ExpandRequest {
  groups: boolean;
  accessPermissions: boolean;
}

function parseExpand(query: URLSearchParams): ExpandRequest {
  const names = new Set(parseFieldList(query.get('expand')) ?? []);
  const all = names.has('all');
  return { groups: all || names.has('groups'), accessPermissions: all || names.has('accessPermissions') };
}

const encode = encodeURIComponent;

export class CpqEndpoints {
  constructor(
    private readonly store: UserStore,
    private readonly settings: EndpointSettings,
  ) {}

  /** Throws QueryError for malformed q/orderby/limit/offset (the caller answers 400). */
  handle(route: Exclude<Route, { kind: 'token' }>, request: EndpointRequest): HttpResponse {
    switch (route.kind) {
      case 'companies':
        return this.companies(route.version, request);
      case 'companyUsers':
        return this.companyUsers(route.version, route.company, request);
      case 'companyUser':
        return this.companyUser(route.version, route.company, route.login, request);
      case 'allUsers':
        return this.allUsers(request);
      case 'user':
        return this.userByPartyNumber(route.partyNumber, request);
      case 'integrationUsers':
        return this.integrationUsers(request);
      case 'integrationUser':
        return this.integrationUser(route.partyNumber, request);
      case 'createIntegrationUser':
      case 'updateIntegrationUser':
        return this.writeIntegrationUser(route, request);
    }
  }

  private restBase(origin: string, version: number): string {
    return `${origin}${this.settings.pathPrefix}/rest/v${version}`;
  }

  private companies(version: number, request: EndpointRequest): HttpResponse {
    const { query } = request;
    const collectionHref = `${this.restBase(request.origin, version)}/companies`;
    const items = this.store.companyList().map((company) => ({
      id: company.id,
      loginName: company.listedLoginName,
      name: company.name,
      isHost: company.isHost,
    }));
    const condition = parseFilter(query.get('q') ?? '');
    const filtered = condition ? items.filter((item) => matchesFilter(condition, item)) : items;
    const sorted = sortByKeys(filtered, parseOrderBy(query.get('orderby') ?? ''), (item) => item);
    const excludeLinks = parseFieldList(query.get('excludeLinks'));
    const fields = parseFieldList(query.get('fields'));
    const envelope = collectionEnvelope(sorted, parsePageRequest(query), collectionHref, query, excludeLinks, (item) => {
      const href = `${collectionHref}/${encode(item.loginName)}`;
      const out: Record<string, unknown> = Object.fromEntries(Object.entries(item).filter(([key]) => !fields || fields.has(key)));
      out.links = [
        { rel: 'self', href },
        { rel: 'child', href: `${href}/users` },
      ].filter((link) => !excludeLinks?.has(link.rel));
      return out;
    });
    return jsonText(200, stringifyWire(envelope));
  }

  private companyUsers(version: number, company: string, request: EndpointRequest): HttpResponse {
    if (!this.store.hasCompany(company)) return errorResponse(404, `Company ${company} not found.`);
    const usersHref = `${this.restBase(request.origin, version)}/companies/${encode(company)}/users`;
    if (request.accept.toLowerCase().includes('application/zip')) return this.companyUsersZip(version, company, usersHref);
    const shape = this.shape(request.query, version >= 19, false, parseExpand(request.query));
    return this.userCollection({ kind: 'company', company }, usersHref, request.query, (user) => ({
      ...shape,
      selfHref: `${usersHref}/${encode(user.record.login as string)}`,
    }));
  }

  /**
   * Zip export: the company's users as the JSON collection gives them with groups and access
   * permissions expanded (the export takes no expand/q/orderby), in login order.
   */
  private companyUsersZip(version: number, company: string, usersHref: string): HttpResponse {
    const options = this.settings.zipExport();
    if (!options) return errorResponse(406, `The zip export of ${company} users is not available on this site.`);
    const shape = this.shape(new URLSearchParams(), version >= 19, false, { groups: true, accessPermissions: true });
    const users = this.store
      .insertionOrder({ kind: 'company', company })
      .slice()
      .sort((a, b) => compareCodeUnits(a.record.login as string, b.record.login as string));
    return zipExportResponse(options, {
      users,
      shapeFor: (user) => ({ ...shape, selfHref: `${usersHref}/${encode(user.record.login as string)}` }),
      drift: this.settings.drift,
    });
  }

  private companyUser(version: number, company: string, login: string, request: EndpointRequest): HttpResponse {
    const user = this.store.find(company, login);
    if (!user) return errorResponse(404, `User ${login} not found in company ${company}.`);
    const selfHref = `${this.restBase(request.origin, version)}/companies/${encode(company)}/users/${encode(login)}`;
    const shape = { ...this.shape(request.query, version >= 19, false, parseExpand(request.query)), selfHref };
    return jsonText(200, stringifyWire(toWireUser(user, shape)));
  }

  private allUsers(request: EndpointRequest): HttpResponse {
    const usersHref = `${this.restBase(request.origin, 19)}/users`;
    const shape = this.shape(request.query, true, true, parseExpand(request.query));
    return this.userCollection({ kind: 'all' }, usersHref, request.query, (user) => ({
      ...shape,
      selfHref: `${usersHref}/${encode(String(user.record.partyNumber))}`,
    }));
  }

  private userByPartyNumber(partyNumber: string, request: EndpointRequest): HttpResponse {
    const user = this.store.findByPartyNumber(partyNumber);
    if (!user) return errorResponse(404, `User ${partyNumber} not found.`);
    const selfHref = `${this.restBase(request.origin, 19)}/users/${encode(partyNumber)}`;
    const shape = { ...this.shape(request.query, true, true, parseExpand(request.query)), selfHref };
    return jsonText(200, stringifyWire(toWireUser(user, shape)));
  }

  /** Integration users link to /cpq/rest/v19/users/..., as in Oracle's samples. */
  private integrationUsers(request: EndpointRequest): HttpResponse {
    const expand = parseExpand(request.query);
    const groups = this.settings.integrationListIncludesGroups && expand.groups;
    const shape = this.shape(request.query, true, true, { groups, accessPermissions: false });
    const usersHref = `${request.origin}/cpq/rest/v19/users`;
    return this.userCollection({ kind: 'integration' }, `${request.origin}${INTEGRATION_USERS_PATH}`, request.query, (user) => ({
      ...shape,
      selfHref: `${usersHref}/${encode(String(user.record.partyNumber))}`,
    }));
  }

  private integrationUser(partyNumber: string, request: EndpointRequest): HttpResponse {
    const user = this.store.findByPartyNumber(partyNumber);
    if (!user || !isIntegrationUser(user)) return errorResponse(404, `Integration user ${partyNumber} not found.`);
    const expand = parseExpand(request.query);
    const selfHref = `${request.origin}/cpq/rest/v19/users/${encode(partyNumber)}`;
    const shape = { ...this.shape(request.query, true, true, { groups: expand.groups, accessPermissions: false }), selfHref };
    return jsonText(200, stringifyWire(toWireUser(user, shape)));
  }

  /**
   * POST creates (201), PATCH updates (200); both answer with the integration user as its GET
   * does without expand, as Oracle's samples show. See integration-user-writes.ts for the rules.
   */
  private writeIntegrationUser(route: Extract<Route, { kind: 'createIntegrationUser' | 'updateIntegrationUser' }>, request: EndpointRequest): HttpResponse {
    try {
      const user =
        route.kind === 'createIntegrationUser'
          ? this.store.createIntegrationUser(parseIntegrationUserWrite(request.body, 'create'), request.nowIso())
          : this.store.updateIntegrationUser(route.partyNumber, parseIntegrationUserWrite(request.body, 'update'), request.nowIso());
      const partyNumber = String(user.record.partyNumber);
      const selfHref = `${request.origin}/cpq/rest/v19/users/${encode(partyNumber)}`;
      const shape = { ...this.shape(new URLSearchParams(), true, true, { groups: false, accessPermissions: false }), selfHref };
      return jsonText(route.kind === 'createIntegrationUser' ? 201 : 200, stringifyWire(toWireUser(user, shape)));
    } catch (error) {
      if (error instanceof WriteRequestError) return errorResponse(error.status, error.message);
      throw error;
    }
  }

  private shape(query: URLSearchParams, includePartyKeys: boolean, includeCompany: boolean, expand: ExpandRequest): UserWireShape {
    return {
      selfHref: '',
      includePartyKeys,
      includeCompany,
      expandGroups: expand.groups,
      expandAccessPermissions: expand.accessPermissions,
      fields: parseFieldList(query.get('fields')),
      excludeLinks: parseFieldList(query.get('excludeLinks')),
      drift: this.settings.drift,
    };
  }

  private userCollection(scope: UserScope, collectionHref: string, query: URLSearchParams, shapeFor: (user: StoredUser) => UserWireShape): HttpResponse {
    const page = parsePageRequest(query);
    const users = this.selectUsers(scope, query);
    const envelope = collectionEnvelope(users, page, collectionHref, query, parseFieldList(query.get('excludeLinks')), (user) =>
      toWireUser(user, shapeFor(user)),
    );
    const reorder = this.settings.reorderPage?.();
    if (reorder && Array.isArray(envelope.items)) envelope.items = reorder(envelope.items as unknown[]);
    return { ...jsonText(200, stringifyWire(envelope)), users: envelope.count as number };
  }

  /** Filtering and sorting always use canonical field names, whatever drift the output shows. */
  private selectUsers(scope: UserScope, query: URLSearchParams): StoredUser[] {
    const sortKeys = parseOrderBy(query.get('orderby') ?? '');
    const q = query.get('q') ?? '';
    const condition = parseFilter(q);
    const order = {
      key: JSON.stringify(sortKeys),
      byLoginsOnly: sortKeys.every((key) => key.path.join('.') === 'login'),
      sort: (users: StoredUser[]) => sortByKeys(users, sortKeys, (user) => user.record),
    };
    // Kept views are keyed by the parsed filter, so a read's first page (the window alone, with
    // totalResults) and its keyset pages (the window and login $gt) share one filtered view.
    const filterBy = (c: Condition | undefined) => (c ? { key: JSON.stringify(c), test: (user: StoredUser) => matchesFilter(c, user.record) } : undefined);
    const page = parsePageRequest(query);
    const keyset = scope.kind === 'company' && !page.totalResults ? loginKeyset(sortKeys, condition) : undefined;
    if (keyset) {
      // The rest of the filter (an incremental window) is the same on every page of a read: its
      // login-sorted result is kept, and each page is a binary search in it.
      const view = this.store.select(scope, order, filterBy(keyset.rest));
      return keysetPage(view, keyset, page.offset + page.limit + 1);
    }
    return this.store.select(scope, order, filterBy(condition));
  }
}

/** A login bound of a keyset request: `$gt`/`$lt` exclude the login, `$gte`/`$lte` include it. */
interface LoginBound {
  login: string;
  inclusive: boolean;
}

interface LoginKeyset {
  lower: LoginBound | undefined;
  upper: LoginBound | undefined;
  /** The rest of the filter, if the login bounds were conjuncts of a larger one. */
  rest: Condition | undefined;
}

/** The conjuncts of a condition, nested $and flattened. */
function conjuncts(condition: Condition): Condition[] {
  return condition.kind === 'and' ? condition.conditions.flatMap(conjuncts) : [condition];
}

/**
 * The keyset of a request ordered by login ascending whose filter bounds the login by text
 * (`$gt`, `$gte` from below, `$lt`, `$lte` from above: a keyset page, a key range, both).
 */
function loginKeyset(sortKeys: SortKey[], condition: Condition | undefined): LoginKeyset | undefined {
  const first = sortKeys[0];
  if (!first || first.descending || first.path.join('.') !== 'login' || !condition) return undefined;
  const all = conjuncts(condition);
  let lower: LoginBound | undefined;
  let upper: LoginBound | undefined;
  const others: Condition[] = [];
  for (const c of all) {
    if (c.kind !== 'compare' || c.path.join('.') !== 'login' || typeof c.operand !== 'string' || c.operator === '$eq' || c.operator === '$ne') {
      others.push(c);
      continue;
    }
    const bound = { login: c.operand, inclusive: c.operator === '$gte' || c.operator === '$lte' };
    // Of two bounds on one side, the narrower holds (at the same login, the exclusive one).
    if (c.operator === '$gt' || c.operator === '$gte') {
      const order = lower === undefined ? 1 : compareCodeUnits(bound.login, lower.login);
      if (order > 0 || (order === 0 && !bound.inclusive)) lower = bound;
    } else {
      const order = upper === undefined ? -1 : compareCodeUnits(bound.login, upper.login);
      if (order < 0 || (order === 0 && !bound.inclusive)) upper = bound;
    }
  }
  if (lower === undefined && upper === undefined) return undefined;
  const rest: Condition | undefined = others.length === 0 ? undefined : others.length === 1 ? others[0] : { kind: 'and', conditions: others };
  return { lower, upper, rest };
}

/** The first index of the login-sorted users whose login is past the bound (after it, or from it when inclusive). */
function firstPast(sorted: StoredUser[], bound: LoginBound, includeEqual: boolean): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const order = compareCodeUnits(sorted[middle]!.record.login as string, bound.login);
    if (order < 0 || (order === 0 && !includeEqual)) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * A keyset page without filtering the whole company: binary searches in the login-sorted view,
 * then just enough users for the page and hasMore. Each page filtered in full made a 1M-user
 * read quadratic: the simulator was the bottleneck.
 */
function keysetPage(sorted: StoredUser[], keyset: LoginKeyset, wanted: number): StoredUser[] {
  const low = keyset.lower ? firstPast(sorted, keyset.lower, keyset.lower.inclusive) : 0;
  const high = keyset.upper ? firstPast(sorted, keyset.upper, !keyset.upper.inclusive) : sorted.length;
  return sorted.slice(low, Math.max(low, Math.min(high, low + wanted)));
}
