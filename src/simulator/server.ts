import { setTimeout as sleep } from 'node:timers/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { AuthGate, type PresentedAuthorization } from './auth.js';
import { SiteDataFactory, type AccessPermission, type Group } from './data.js';
import { CpqEndpoints } from './endpoints.js';
import { FaultQueue, type Fault } from './faults.js';
import { bodyBytes, errorResponse, jsonResponse, type HttpResponse } from './http-response.js';
import { deepCopy } from './json.js';
import { resolveLatency, resolveOptions, type ResolvedOptions, type SimulatorOptions } from './options.js';
import { QueryError } from './query.js';
import { SeededRandom } from './random.js';
import { resolveRoute, TOKEN_PATH } from './routes.js';
import { faultResponse, overlayFault, readBody, send, sendTruncated } from './send.js';
import { compareCodeUnits, UserStore, type MutationOptions, type StoredUser } from './store.js';
import type { ZipExportOptions } from './zip-export.js';

export type { SimulatorOptions } from './options.js';

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization?: PresentedAuthorization;
  /** 0 while the response is not decided yet, and for stalled requests. */
  status: number;
  /** Set once the response is closed: answered, or given up by the client. */
  closed?: true;
}

/** What a response depends on: Host (links), Accept, the path and the query in any order. */
function renderedPageKey(req: IncomingMessage, url: URL): string {
  const query = [...url.searchParams].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([req.headers.host, req.headers.accept ?? '', url.pathname, query]);
}

/**
 * A real HTTP server behaving like Oracle CPQ's user REST API (see /work/shared/cpq-api):
 * company users, users by partyNumber, integration users, companies, OAuth token endpoint,
 * plus fault injection and data mutation for tests.
 */
export class CpqSimulator {
  readonly requests: RequestRecord[] = [];
  /** Awaited before each response is computed; tests mutate data here between pages. */
  onRequest?: (req: RequestRecord & { index: number }) => void | Promise<void>;
  /** Reorders the items of every user-collection page from now on (tests: a site that keeps no stable order within a page); undefined: sorted. */
  reorderPage?: <T>(items: T[]) => T[];
  /** Successful OAuth token grants. */
  tokenRequests = 0;
  /** With cachePages: responses rendered because none was kept for the request. */
  pagesRendered = 0;
  /** API requests being served now (token requests are not counted: a separate service on a real site). */
  inFlight = 0;
  /** The most API requests it ever served at once, those it refused included. */
  maxInFlightSeen = 0;
  /** Requests answered 429 because `maxInFlight` were being served. */
  throttled = 0;

  private readonly options: ResolvedOptions;
  private readonly store: UserStore;
  private readonly endpoints: CpqEndpoints;
  private readonly authGate: AuthGate;
  private readonly faults: FaultQueue;
  private readonly renderedPages = new Map<string, HttpResponse>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  /** Aborted by stop(): ends the latency waits of requests in progress (a new one per start). */
  private stopping = new AbortController();
  private url: string | undefined;
  private zipExport: ZipExportOptions | undefined;

  constructor(options: SimulatorOptions = {}) {
    this.options = resolveOptions(options);
    this.zipExport = options.zipExport && { ...options.zipExport };
    const o = this.options;
    const factory = new SiteDataFactory({
      seed: o.seed,
      partnerCompanies: o.partnerCompanies,
      usersPerCompany: o.usersPerCompany,
      integrationUsers: o.integrationUsers,
      groups: o.groups,
      fusionPartyNumbers: o.fusion,
      hostLoginName: o.hostLoginName,
      unknownFields: o.drift,
    });
    this.store = new UserStore(factory, o.drift ? o.seed : undefined, o.usersPerCompany);
    this.endpoints = new CpqEndpoints(this.store, {
      pathPrefix: o.pathPrefix,
      integrationListIncludesGroups: o.integrationListIncludesGroups,
      drift: o.drift,
      zipExport: () => this.zipExport,
      reorderPage: () => this.reorderPage,
    });
    this.authGate = new AuthGate(options.auth, o.now);
    // A generator of its own: the draws for a fault's share depend on the seed alone, not on how much data was built.
    const draws = SeededRandom.forParts('faults', o.seed);
    this.faults = new FaultQueue(() => draws.next());
  }

  // ------------------------------------------------------------ lifecycle

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    if (this.server) throw new Error('simulator already started');
    this.stopping = new AbortController();
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const { port: boundPort } = server.address() as AddressInfo;
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
    return this.url;
  }

  get baseUrl(): string {
    if (this.url === undefined) throw new Error('simulator not started');
    return this.url;
  }

  /** Closes the server and every socket, stalled ones included. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.url = undefined;
    this.stopping.abort();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  addFault(fault: Fault): void {
    this.faults.add(fault);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  revokeTokens(): void {
    this.authGate.revokeTokens();
  }

  /** Changes how long requests take from now on (see SimulatorOptions.latency); undefined: no latency. */
  setLatency(latency: SimulatorOptions['latency']): void {
    this.options.latency = resolveLatency(latency);
  }

  /** Offers the zip export, built this way (entry formats, compression, a broken variant...); undefined withdraws it. */
  setZipExport(options: ZipExportOptions | undefined): void {
    this.zipExport = options && { ...options };
  }

  // ------------------------------------------------------------ data access (deep copies, canonical names)

  companyLogins(): string[] {
    return this.store.companyList().map((company) => company.loginName);
  }

  /** Sorted by login (code-unit order). Throws for an unknown company. */
  users(company: string): Record<string, unknown>[] {
    if (!this.store.hasCompany(company)) throw new Error(`unknown company: ${company}`);
    return this.copySortedByLogin(this.store.insertionOrder({ kind: 'company', company }));
  }

  /** Sorted by login. */
  integrationUsers(): Record<string, unknown>[] {
    return this.copySortedByLogin(this.store.insertionOrder({ kind: 'integration' }));
  }

  user(company: string, login: string): Record<string, unknown> | undefined {
    const user = this.store.find(company, login);
    return user ? deepCopy(user.record) : undefined;
  }

  /**
   * Wire name of each drifting field of a user (canonical -> sent), e.g. {lastName: 'lastname'}.
   * Empty when the user does not drift or drift is off.
   */
  fieldRenames(company: string, login: string): Record<string, string> {
    const user = this.store.find(company, login);
    if (!user) throw new Error(`unknown user ${login} in company ${company}`);
    return Object.fromEntries(user.spelling ?? user.renames ?? []);
  }

  // ------------------------------------------------------------ mutations (dateModified = now() unless touch: false)

  addUser(company: string, fields: Record<string, unknown> = {}, opts: MutationOptions = {}): string {
    this.renderedPages.clear();
    return this.store.addUser(company, fields, this.nowIso(), opts);
  }

  updateUser(company: string, login: string, patch: Record<string, unknown>, opts: MutationOptions = {}): void {
    this.renderedPages.clear();
    this.store.updateUser(company, login, patch, this.nowIso(), opts);
  }

  deleteUser(company: string, login: string): void {
    this.renderedPages.clear();
    this.store.deleteUser(company, login);
  }

  addGroup(company: string, login: string, group: Group, opts: MutationOptions = {}): void {
    this.renderedPages.clear();
    this.store.addGroup(company, login, group, this.nowIso(), opts);
  }

  removeGroup(company: string, login: string, variableName: string, opts: MutationOptions = {}): void {
    this.renderedPages.clear();
    this.store.removeGroup(company, login, variableName, this.nowIso(), opts);
  }

  /** Every member's item of the group, and the site's definition of it, take this label and type (dateModified = now unless touch: false). */
  relabelGroup(variableName: string, label: string, type: string, opts: MutationOptions = {}): void {
    this.renderedPages.clear();
    this.store.relabelGroup(variableName, label, type, this.nowIso(), opts);
  }

  setAccessPermission(company: string, login: string, perm: AccessPermission, opts: MutationOptions = {}): void {
    this.renderedPages.clear();
    this.store.setAccessPermission(company, login, perm, this.nowIso(), opts);
  }

  // ------------------------------------------------------------ HTTP

  private nowIso(): string {
    return this.options.now().toISOString();
  }

  private copySortedByLogin(users: readonly StoredUser[]): Record<string, unknown>[] {
    return users
      .slice()
      .sort((a, b) => compareCodeUnits(a.record.login as string, b.record.login as string))
      .map((user) => deepCopy(user.record));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator.invalid');
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: this.authGate.presented(req.headers.authorization),
      status: 0,
    };
    const arrivedAt = performance.now();
    const index = this.requests.push(record) - 1;
    // A real site dates its answers by the clock that dates its edits (a fault may send its own).
    res.setHeader('date', this.options.now().toUTCString());
    res.once('close', () => (record.closed = true));
    if (url.pathname !== TOKEN_PATH) {
      this.inFlight++;
      this.maxInFlightSeen = Math.max(this.maxInFlightSeen, this.inFlight);
      res.once('close', () => this.inFlight--);
      const limit = this.options.maxInFlight;
      if (limit !== undefined && this.inFlight > limit) {
        this.throttled++;
        send(res, record, errorResponse(429, 'Too many requests.', { 'retry-after': String(this.options.retryAfterSeconds) }));
        return;
      }
    }
    try {
      const body = await readBody(req);
      if (this.onRequest) await this.onRequest({ ...record, index });
      const fault = this.faults.take(record);
      if (fault?.action === 'stall') return; // stop() destroys the socket
      if (fault && fault.action !== 'reset') {
        send(res, record, faultResponse(fault));
        return;
      }
      const response = await this.respondOrReuse(req, url, body);
      const { fixedMs, perUserMs } = this.options.latency;
      // The latency includes the time the response took to compute here, as a remote site's does.
      const delay = url.pathname === TOKEN_PATH ? 0 : fixedMs + perUserMs * (response.users ?? 0) - (performance.now() - arrivedAt);
      // Ended by stop(): a long latency (`simulate --latency 1h`) held the process after Ctrl-C (review JJ).
      if (delay > 0 && !(await sleep(delay, true, { signal: this.stopping.signal }).catch(() => false))) return;
      if (fault?.action === 'reset') sendTruncated(res, record, overlayFault(response, fault));
      else send(res, record, response);
    } catch (error) {
      send(res, record, errorResponse(500, error instanceof Error ? error.message : 'internal error'));
    }
  }

  /** respond, or with cachePages the response kept from the same request (see SimulatorOptions). */
  private async respondOrReuse(req: IncomingMessage, url: URL, body: string): Promise<HttpResponse> {
    const cacheable = this.options.cachePages && req.method === 'GET' && this.authGate.allows(req.headers.authorization);
    const key = cacheable ? renderedPageKey(req, url) : undefined;
    const kept = key === undefined ? undefined : this.renderedPages.get(key);
    if (kept) return kept;
    const response = this.respond(req, url, body);
    if (key === undefined || response.status !== 200) return response;
    this.pagesRendered++;
    const bytes = response.stream ? Buffer.concat(await response.stream.toArray()) : bodyBytes(response);
    const { stream: _sent, ...rest } = response;
    const rendered = { ...rest, body: bytes };
    this.renderedPages.set(key, rendered);
    return rendered;
  }

  private respond(req: IncomingMessage, url: URL, body: string): HttpResponse {
    const o = this.options;
    const method = req.method ?? 'GET';
    const route = resolveRoute(method, url.pathname, { pathPrefix: o.pathPrefix, fusion: o.fusion, oauth: this.authGate.oauthEnabled });
    if (!route) return errorResponse(404, 'Resource not found.');
    if (route.kind === 'token') {
      const grant = this.authGate.grantToken(req.headers.authorization, body);
      if (grant.status === 200) this.tokenRequests++;
      return jsonResponse(grant.status, grant.body, { 'cache-control': 'no-store' });
    }
    if (!this.authGate.allows(req.headers.authorization)) {
      return errorResponse(401, 'Missing or invalid credentials.', { 'www-authenticate': this.authGate.challenge });
    }
    if (method !== 'GET') this.renderedPages.clear(); // a write may change any page
    try {
      return this.endpoints.handle(route, {
        origin: `http://${req.headers.host ?? new URL(this.baseUrl).host}`,
        query: url.searchParams,
        accept: req.headers.accept ?? '',
        body,
        nowIso: () => this.nowIso(),
      });
    } catch (error) {
      if (error instanceof QueryError) return errorResponse(400, error.message);
      throw error;
    }
  }
}
