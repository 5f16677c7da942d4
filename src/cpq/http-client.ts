import { dirname } from 'node:path';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { CpqConfig } from '../config.js';
import { SyncError, errorCode, errorMessage, oneLine, throwIfInterrupted } from '../errors.js';
import type { Dispatcher } from 'undici';
import type { Authenticator } from './auth.js';
import { TooComplexError, describeValue, parseExactJson } from '../exact-json.js';
import { ItemsFormError, RepeatedPagingFieldError, TwoItemsError, cutCollectionBody } from './json-items.js';
import { PageRecords } from './page-records.js';
import { RequestBudget, type Slot } from './request-budget.js';
import {
  CREDENTIAL_ECHO_CHARS,
  contentEncoding,
  credentialSecrets,
  describeBodyEncoding,
  headerSecrets,
  describeBody,
  describeNetworkError,
  isBadPort,
  readBodyCapped,
  readHead,
  withoutBodyExcerpt,
  type BodyText,
} from './http-bodies.js';
import { quotesSecret, withoutSecrets } from '../secret-echo.js';
import { RETRY_STATUSES, RetryableError, backoffMs, describeDelay, httpDate, retryAfterMs, type RetryPolicy } from './http-retry.js';
import type { HttpStats } from './http-stats.js';
import { LinkedSignal } from '../linked-signal.js';
import { bodyChunks } from '../fetch-body.js';
import { dispatcherFor, withDispatcher } from '../fetch-dispatcher.js';

/** Answers that mean CPQ is overloaded: the site's request budget is cut (timeouts too). */
const SLOW_DOWN_STATUSES = new Set([429, 503]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Same-origin redirects followed per request (a loop between two paths ends here). */
export const MAX_REDIRECTS = 5;

/** A response body that was read and parsed. */
export interface JsonResponse {
  status: number;
  url: string;
  body: unknown;
  /** From sending the request that answered to its body read (the site's and the network's time, no wait for the budget). */
  ms: number;
  /** With `collection`, a page of users: its items, parsed as they are used (`body` is then the rest of the page). */
  records?: PageRecords;
  /** The body's length in characters (0 for a 404 read with allow404). */
  chars: number;
}

/**
 * A name CPQ sent (a company login, a partyNumber) as one segment of a URL path. encodeURIComponent
 * leaves `.` alone, so `.` and `..` would become path steps (`/companies/../users` is `/users`);
 * `/` and `\` are encoded, but a server that decodes them would see a path. Such names, and the
 * empty one, are refused before any URL is built: `what` names the value in the error.
 */
export function pathSegment(what: string, name: string): string {
  const problem = pathSegmentProblem(name);
  if (problem !== undefined) throw new SyncError('data', `${what} ${describeValue(name)} ${problem}`);
  // And ! ' ( ) * too (RFC 3986's strict form): a message that names the URL cuts it at a `'`
  // (secret-echo's URLS), so `o'x` left the rest of its URL out of asked() and a short password
  // (`1000`, `asc`) hid every error of the company (review JA).
  return encodeURIComponent(name).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Credentials sent (Authorization headers) that bodies and errors are searched for: the last ones,
 * twice as many as CPQ_MAX_IN_FLIGHT's largest value, so the one of every request in flight (what a
 * reflecting gateway echoes); an older OAuth token has expired or been refused.
 */
const SENT_AUTHORIZATIONS_KEPT = 128;

/** How much of a body an error excerpt looks at: far more than it shows (60 characters), so that a secret quoted across its end is seen. */
const EXCERPT_SCAN_CHARS = 4096;

/** Why pathSegment refuses `name`, or undefined when it takes it. */
export function pathSegmentProblem(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..' || /[/\\]/.test(name)) {
    return 'cannot be used in a URL path: empty names, ".", ".." and names holding / or \\ are refused';
  }
  // Not a name the run could store (Postgres text holds no NUL) or encode (an unpaired surrogate
  // is no Unicode): refused here, naming it, rather than failing the run as a database error.
  if (UNSTORABLE_NAME.test(name)) return 'holds a NUL character or an unpaired UTF-16 surrogate, which a URL and Postgres text cannot hold';
  return undefined;
}

// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE_NAME = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** `clause` after a colon, or nothing. */
const afterColon = (clause: string | undefined): string => (clause === undefined ? '' : `: ${clause}`);

/** The message of a body that is not valid JSON: the parser's words, then the bytes it decoded to (encoding) or its size. */
function notValidJson(parserSays: string, bytes: number, encoding: { clause: string; decoded: boolean } | undefined): string {
  return `response is not valid JSON (${parserSays}${encoding?.decoded ? '' : `; ${bytes} bytes`})${afterColon(encoding?.clause)}`;
}

/** What downloadToFile wrote. */
export interface DownloadResult {
  url: string;
  bytes: number;
  contentType: string | null;
}

/**
 * Aborts a request when no progress was seen for a while: armed while waiting for the headers
 * of a download and re-armed by every piece of its body.
 */
class StallTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** The stall limit in ms when it fired, else 0. */
  fired = 0;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  restart(ms: number) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = ms;
      this.controller.abort(new Error(`no data for ${ms / 1000}s`));
    }, ms);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** "1 attempt", "3 attempts": with CPQ_MAX_RETRIES=0 a failure said "after 1 attempts". */
const attemptsText = (n: number): string => `${n} attempt${n === 1 ? '' : 's'}`;

/**
 * Where a redirect from `from` (a request for `url`) may go: only to the same origin (scheme, host
 * and port) as the request, so a CPQ response cannot hand the run data from another host, or move
 * it from https to plain http. Anything else fails the run naming both origins (never a path or
 * credentials: URL.origin holds neither).
 */
function redirectTarget(url: string, from: string, location: string): string {
  const origin = new URL(url).origin;
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    throw new SyncError('source', `GET ${url}: CPQ redirected to a location that is not a URL; refused`);
  }
  if (to.origin !== origin) {
    throw new SyncError(
      'source',
      `GET ${url}: CPQ redirected from ${origin} to ${to.protocol === 'http:' || to.protocol === 'https:' ? to.origin : `a ${to.protocol} URL`}; redirects are followed only within ${origin}`,
    );
  }
  to.username = '';
  to.password = '';
  return to.toString();
}

/** How far from our clock a Date header is before it is logged. */
const SITE_CLOCK_NOTED_MS = 24 * 3600_000;

/**
 * A JSON escape, each of which stands for one character of a credential: `\uXXXX` (any case), or
 * one of the short escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`). A bearer token may hold
 * `"` and `\` (a header carries them), which a JSON writer must escape; and a `\\` read as one
 * character keeps the `\u0041` after it from being taken for an `A`.
 */
const JSON_ESCAPE = /\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])/g;

/** The character each short JSON escape stands for, by the letter after its backslash. */
const SHORT_ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** The character a JSON_ESCAPE stands for. */
function escapedCharacter(escape: string): string {
  return escape[1] === 'u' ? String.fromCharCode(parseInt(escape.slice(2), 16)) : SHORT_ESCAPES[escape[1]!]!;
}

/** How many characters of a JSON text, from `at`, stand for one character when its escapes are read (JSON_ESCAPE's, as replace meets them). */
function escapedLength(text: string, at: number): number {
  if (text[at] !== '\\') return 1;
  const next = text[at + 1];
  if (next === 'u') return /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6)) ? 6 : 1;
  return next !== undefined && Object.hasOwn(SHORT_ESCAPES, next) ? 2 : 1;
}

/**
 * How many characters may stand between two runs of a credential's letters and digits for
 * CredentialEcho.spelledAt: a JSON escape of one character (`\u002B`), an HTML one (`&#x2B;`), a
 * URL-encoded one (`%2B`), or none (base64url leaves out `=`).
 */
const SPELLING_GAP = 6;

/**
 * How a credential may stand in a JSON text: each character as it is or escaped (JSON_ESCAPE), or
 * its letters and digits in order with the rest written another way (spelledAt); and its longest
 * run of letters and digits, which JSON writers never escape.
 * Found by reading the text's escapes and searching the credential as it is (indexOf), in time
 * linear in the text: a pattern of one alternative per character backtracked at every place the
 * text began like the credential (a token of 1,000 A's in a 1 MB page of 999 A's a line took
 * 4.5 s, of 4,000 A's 47 s), and one of 8,000 characters or more could not be compiled at all
 * ("Stack overflow"), an error taken for a network error (it quotes the pattern): the page was
 * asked for again at each retry, and the run failed as "CPQ unreachable".
 */
class CredentialEcho {
  readonly run: string;
  /** The credential's runs of letters and digits, in order; `run` is the one at `runAt`. */
  private readonly runs: string[];
  private readonly runAt: number;

  /** The search of `credential`; null for one shorter than CREDENTIAL_ECHO_CHARS, which is not searched for. */
  static of(credential: string): CredentialEcho | null {
    return credential.length < CREDENTIAL_ECHO_CHARS ? null : new CredentialEcho(credential);
  }

  private constructor(private readonly credential: string) {
    this.runs = credential.match(/[A-Za-z0-9]+/g) ?? [];
    this.runAt = this.runs.reduce((longest, run, i) => (run.length > this.runs[longest]!.length ? i : longest), 0);
    this.run = this.runs[this.runAt] ?? '';
  }

  /** Where in `text` the credential stands, as it is, escaped, or spelled otherwise between its letters and digits (spelledAt); -1 when nowhere. */
  indexIn(text: string): number {
    const found = this.escapedAt(text);
    return found >= 0 || this.run.length < CREDENTIAL_ECHO_CHARS ? found : this.spelledAt(text);
  }

  /** Where in `text` the credential stands, as it is or JSON-escaped; -1 when nowhere. */
  private escapedAt(text: string): number {
    if (!text.includes('\\')) return text.indexOf(this.credential);
    const read = text.replace(JSON_ESCAPE, escapedCharacter);
    const found = read.indexOf(this.credential);
    if (found < 0) return -1;
    // Back to a place in the text as sent: each character read stood for one or more of it.
    let at = 0;
    for (let i = 0; i < found; i++) at += escapedLength(text, at);
    return at;
  }

  /**
   * Where in `text` every run of the credential's letters and digits stands in order, at most
   * SPELLING_GAP characters apart: the credential with its other characters written another way.
   * A gateway's echo URL-encodes it (`Basic%20…%2BPj4%2F`), a JWT library writes base64url
   * (`-`, `_`, no `=`), and each was stored in raw (review HM). Searched from each place its
   * longest run (`run`, at least CREDENTIAL_ECHO_CHARS long) stands, outward; -1 when nowhere.
   */
  private spelledAt(text: string): number {
    for (let at = text.indexOf(this.run); at >= 0; at = text.indexOf(this.run, at + 1)) {
      let start = at;
      let end = at + this.run.length;
      let whole = true;
      // Each next run is looked for only within the gap's reach: over the rest of the page, a page
      // holding the longest run in every record cost the square of its size (review HP).
      for (let i = this.runAt - 1; whole && i >= 0; i--) {
        const run = this.runs[i]!;
        const from = Math.max(0, start - SPELLING_GAP - run.length);
        const found = text.slice(from, start).lastIndexOf(run);
        whole = found >= 0;
        start = from + found;
      }
      for (let i = this.runAt + 1; whole && i < this.runs.length; i++) {
        const run = this.runs[i]!;
        const found = text.slice(end, end + SPELLING_GAP + run.length).indexOf(run);
        whole = found >= 0;
        end += found + run.length;
      }
      if (whole) return start;
    }
    return -1;
  }
}

/**
 * After the base URL alone, in a message (asked): at most the path prefix, a slash and a
 * sentence's punctuation. A longer URL counts only as url() built it (builtUrls): with a base URL
 * at a host's root, any URL on that host, or any under /rest/, would count as ours, and a short
 * password in a URL CPQ sent there (a field's value) go unsearched (reviews IT, IZ).
 */
const BASE_ALONE = /^(?:\/cpq)?\/?[.,;:)\]]*$/;
/** After the token URL: a slash it was written with, its query, or a sentence's punctuation (asked). */
const AT_TOKEN_URL = /^\/?(?:\?|[.,;:)\]]*$)/;
/** After an origin alone: at most a slash, then a sentence's punctuation (asked). */
const ORIGIN_ALONE = /^\/?[.,;:)\]]*$/;
/** The sentence's punctuation a message may write right after a URL it names (asked). */
const AFTER_URL = /[.,;:)\]]+$/;
/**
 * The URLs url() built last that asked() knows by their text: at the default page size, more than
 * a run of a million users asks for. One built before them is searched, as CPQ's words are.
 */
const BUILT_URLS_KEPT = 4096;

/**
 * HTTP access to one CPQ site: authentication, per-request timeout, retries with exponential
 * backoff and jitter (network errors and RETRY_STATUSES: 408, 429, 500, 502, 503, 504; not
 * another 5xx such as 501, which no retry mends) honouring Retry-After up to
 * CPQ_RETRY_MAX_DELAY, the site's request budget (CPQ_MAX_IN_FLIGHT), and exact JSON.
 * Error messages name the method and URL (which never holds credentials) and what went wrong.
 */
export class CpqHttpClient {
  readonly stats: HttpStats = { requests: 0, retries: {} };
  /**
   * The earliest time CPQ's own clock gave this client (the Date header of its answers, to the
   * second), so about when the run began by the clock that dates CPQ's edits: a cursor must not
   * pass it (saveCursor), or a site whose clock is behind ours would have edits made during a long
   * read skipped by the next incremental run. Undefined when no answer carried a valid Date.
   */
  earliestSiteDate: Date | undefined;
  private oddSiteDateLogged = false;
  /** Requests at once to the site, shared by everything this client reads. */
  readonly budget: RequestBudget;
  /**
   * Keyset pages asked for and not yet used (in flight, read and waiting for their turn, or being
   * loaded), across every read of the site: CPQ_MAX_IN_FLIGHT, as many as companies were read at
   * once before pages were read ahead (a sync's heap is sized for a few pages: the image caps it
   * at 192 MB, which CPQ_MAX_IN_FLIGHT + 1 exceeded with four companies of 25,000 users).
   */
  readonly readAhead: RequestBudget;
  private readonly policy: RetryPolicy;
  private readonly dispatcher: Dispatcher | undefined;
  /**
   * The Authorization headers sent last (at most SENT_AUTHORIZATIONS_KEPT, oldest first): kept out
   * of error messages, and looked for in the bodies read (credentialAt).
   */
  private readonly sentAuthorizations = new Set<string>();
  /** credentialAt's search of each Authorization header kept (sentAuthorizations), made once; null for a credential too short to search for. */
  private readonly credentialEchoes = new Map<string, CredentialEcho | null>();
  /**
   * The base URL and the token URL, as written and as URL writes them, with what may follow each
   * in a message naming them; and their origins, which a message names alone (asked).
   */
  private readonly askedPrefixes: { prefix: string; rest: RegExp }[] = [];
  /** The URLs url() built, the last BUILT_URLS_KEPT, oldest first: the requests this client made (asked). */
  private readonly builtUrls = new Set<string>();

  constructor(
    private readonly config: Pick<
      CpqConfig,
      'baseUrl' | 'requestTimeoutMs' | 'maxRetries' | 'retryBaseDelayMs' | 'retryMaxDelayMs' | 'ca' | 'maxPageBytes' | 'maxInFlight'
    > &
      Partial<Pick<CpqConfig, 'auth'>>,
    private readonly auth: Authenticator,
    private readonly log: Logger,
    private readonly signal?: AbortSignal,
  ) {
    this.policy = { maxRetries: config.maxRetries, baseDelayMs: config.retryBaseDelayMs, maxDelayMs: config.retryMaxDelayMs };
    this.dispatcher = dispatcherFor(config.ca, config.requestTimeoutMs);
    this.budget = new RequestBudget(config.maxInFlight);
    this.readAhead = new RequestBudget(config.maxInFlight);
    const roots = [{ root: config.baseUrl, rest: BASE_ALONE }, ...(config.auth?.kind === 'oauth' ? [{ root: config.auth.tokenUrl, rest: AT_TOKEN_URL }] : [])];
    for (const { root, rest } of roots) {
      this.askedPrefixes.push({ prefix: root.replace(/\/+$/, ''), rest });
      if (!URL.canParse(root)) continue;
      const { origin, pathname } = new URL(root);
      this.askedPrefixes.push({ prefix: `${origin}${pathname}`.replace(/\/+$/, ''), rest }, { prefix: origin, rest: ORIGIN_ALONE });
    }
  }

  /**
   * Whether `url`, a URL a message names (to the next space or quote), is one this client asked
   * for: one url() built (every request is), or the site's base URL, the OAuth token URL (as
   * written or as URL writes them) or their bare origin alone (check's and a refused redirect's
   * messages name them). withoutSecrets leaves a short secret unsearched in these alone: a URL CPQ
   * sent, on another host or on the site's, is CPQ's words (review IM). After a base URL or
   * origin comes only the punctuation that ends a sentence; never more of a host
   * (`https://cpq.example.evil`, `https://cpq.example@gw.example`).
   */
  private asked(url: string): boolean {
    if (this.builtUrls.has(url) || this.builtUrls.has(url.replace(AFTER_URL, ''))) return true;
    return this.askedPrefixes.some(({ prefix, rest }) => url.startsWith(prefix) && rest.test(url.slice(prefix.length)));
  }

  /**
   * Takes a Date header into earliestSiteDate when it is an HTTP date (RFC 9110's, of a year from
   * 1970: httpDate). However far behind ours: a cursor held back re-reads more, one let past
   * CPQ's clock skips edits. One ahead of ours changes nothing (saveCursor takes the earliest of
   * it and the database's clock). A date more than a day off ours is logged once.
   */
  private noteSiteDate(header: string | null) {
    if (header === null) return;
    const at = httpDate(header);
    const valid = at !== undefined;
    if (!this.oddSiteDateLogged && !(valid && Math.abs(at - Date.now()) <= SITE_CLOCK_NOTED_MS)) {
      this.oddSiteDateLogged = true;
      this.log.warn(
        // CPQ's words: a gateway reflecting the request may have put the credentials there (review HM).
        { date: this.withoutCredentials(header.slice(0, 64), 'a Date header') },
        valid
          ? "CPQ's clock (its Date header) is more than a day off ours"
          : "CPQ's Date header is not an HTTP date of a year from 1970: not taken as CPQ's clock",
      );
    }
    if (valid && !(at >= (this.earliestSiteDate?.getTime() ?? Infinity))) this.earliestSiteDate = new Date(at);
  }

  /** A place in the site's request budget; an interruption while waiting for one ends the request. */
  private slot(url: string): Promise<Slot> {
    return this.place(this.budget, url);
  }

  /** A place in the read-ahead for the page at `url` (see readAhead); the caller releases it once the page is used. */
  readAheadSlot(url: string): Promise<Slot> {
    return this.place(this.readAhead, url);
  }

  private async place(budget: RequestBudget, url: string): Promise<Slot> {
    try {
      return await budget.acquire(this.signal);
    } catch {
      throw new SyncError('interrupted', `GET ${url}: interrupted`);
    }
  }

  /**
   * The error for a body JSON.parse refused; an empty one, or one not valid JSON, with what its
   * bytes show of its Content-Encoding (describeBodyEncoding), and its size in bytes (as fetch gave
   * them: decoded, when the clause says so).
   */
  private notJson(url: string, body: BodyText, response: Response, err: unknown): SyncError {
    const { text } = body;
    const contentType = response.headers.get('content-type');
    const encoding = () => describeBodyEncoding(response, body);
    const what =
      /^\s*</.test(text) || /html/i.test(contentType ?? '')
        ? `expected JSON, got ${this.excerpt(text, contentType)}`
        : text.trim() === ''
          ? `expected JSON, got an empty body${afterColon(encoding()?.clause)}`
          : err instanceof TooComplexError
            ? `the response ${err.message}`
            : notValidJson(withoutBodyExcerpt(oneLine(errorMessage(err))), body.bytes, encoding());
    return new SyncError('data', `GET ${url}: ${what}`);
  }

  /** The error of an answer that is not 2xx (nor a retried status): its status and the head of its body (excerpt). */
  private async refusedAnswer(url: string, response: Response, signal: AbortSignal): Promise<SyncError> {
    const text = await readHead(response, EXCERPT_SCAN_CHARS, signal);
    return new SyncError('source', `GET ${url}: CPQ answered ${response.status} with ${this.excerpt(text, response.headers.get('content-type'))}`, {
      status: response.status,
    });
  }

  /**
   * A body excerpt for an error message, without the credentials we sent: none of a body that
   * quotes them in any form (a gateway echoing the request).
   */
  excerpt(text: string, contentType: string | null): string {
    // Only the head is shown (describeBody): only the head is scanned, whatever the body's size (a 200 page of HTML can be CPQ_MAX_PAGE_BYTES).
    const head = text.slice(0, EXCERPT_SCAN_CHARS);
    // One that quotes none holds no copy to cut out: a short password inside a word is not a quote of it (withoutSecrets).
    if (this.quotesCredentials(head)) return 'a body that quotes the credentials sent (not shown)';
    return describeBody(head, contentType);
  }

  /**
   * A message (a network error's, a failed run's) without the credentials sent (withoutSecrets):
   * none that quotes them in any form (the password too: a record's error quotes its field's
   * value, which a reflecting gateway may have made the password).
   */
  withoutCredentials(message: string, what = 'a network error'): string {
    return withoutSecrets(
      message,
      credentialSecrets(this.sentAuthorizations),
      CREDENTIAL_ECHO_CHARS,
      `${what} that quotes the credentials sent (not shown)`,
      (url) => this.asked(url),
    );
  }

  /**
   * Where a body holds a credential this client sent (the Authorization header's, as sent), -1
   * when nowhere: as sent, or written by a JSON writer that escapes some of its characters (`\/`,
   * `\u002B`), which JSON.parse puts back together. A gateway that reflects the request into a 200
   * answer put the Basic header into a user's field: into cpq.users.raw, or quoted by the field's
   * error into the run record and the logs (review DD). The bare password is not searched for: a
   * common word (`Purchasing`) would refuse every page naming it (review DJ); errors are cleared of
   * it instead (withoutCredentials). A page may be CPQ_MAX_PAGE_BYTES: the search runs only where
   * the credential's longest run of letters and digits (never escaped) stands: 16 ms for a 2.8 MB
   * page holding that run in every record (a page without it costs one search).
   */
  private credentialAt(text: string): number {
    for (const header of this.sentAuthorizations) {
      let echo = this.credentialEchoes.get(header);
      if (echo === undefined) {
        echo = CredentialEcho.of(headerSecrets(header).credential);
        this.credentialEchoes.set(header, echo);
      }
      if (echo === null || (echo.run.length >= CREDENTIAL_ECHO_CHARS && !text.includes(echo.run))) continue;
      const found = echo.indexIn(text);
      if (found >= 0) return found;
    }
    return -1;
  }

  /**
   * Keeps `authorization` among the headers sent last, dropping the oldest (and its search) past
   * SENT_AUTHORIZATIONS_KEPT. Every one ever sent was kept: a site refusing each OAuth token once
   * (a 401, so a renewal per request) had the client hold ~25 KB and search one more token in every
   * page per request (1,100 requests of 3,000-character tokens filled a 64 MB heap; review DL).
   */
  private noteSent(authorization: string) {
    // Deleted and added again: a Set keeps insertion order, so the one sent last goes last.
    this.sentAuthorizations.delete(authorization);
    this.sentAuthorizations.add(authorization);
    if (this.sentAuthorizations.size <= SENT_AUTHORIZATIONS_KEPT) return;
    const oldest = this.sentAuthorizations.values().next().value!;
    this.sentAuthorizations.delete(oldest);
    this.credentialEchoes.delete(oldest);
  }

  /** Whether `text` quotes, in any form quotesSecret reads, a credential this client sent. */
  private quotesCredentials(text: string): boolean {
    return quotesSecret(text, credentialSecrets(this.sentAuthorizations), CREDENTIAL_ECHO_CHARS);
  }

  url(path: string, query: Record<string, string> = {}): string {
    const url = new URL(this.config.baseUrl + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const built = url.toString();
    this.builtUrls.delete(built);
    this.builtUrls.add(built);
    if (this.builtUrls.size > BUILT_URLS_KEPT) this.builtUrls.delete(this.builtUrls.values().next().value!);
    return built;
  }

  /**
   * GET a JSON document. Resolves 404 as `{status: 404}` when `allow404`, else throws. A body
   * larger than CPQ_MAX_PAGE_BYTES fails as 'data' while it is read, without retrying. With
   * `collection`, a collection page (users, companies, integration users) is cut into its items
   * (cutCollectionBody), each parsed when used.
   */
  async getJson(url: string, options: { allow404?: boolean; collection?: boolean } = {}): Promise<JsonResponse> {
    return this.withRetries(url, { accept: 'application/json', deadlineMs: this.config.requestTimeoutMs }, async (response, { sentAt, signal }) => {
      if (response.status === 404 && options.allow404) {
        await response.body?.cancel();
        return { status: 404, url, body: undefined, ms: performance.now() - sentAt, chars: 0 };
      }
      if (!response.ok) throw await this.refusedAnswer(url, response, signal);
      const body = await readBodyCapped(response, url, this.config.maxPageBytes, signal);
      const { text } = body;
      const echoed = this.credentialAt(text);
      if (echoed >= 0) {
        throw new SyncError(
          'data',
          `GET ${url}: the response holds a credential this run sent (at character ${echoed}); refused, so that it reaches neither the database nor the logs`,
        );
      }
      let cut: ReturnType<typeof cutCollectionBody>;
      try {
        cut = options.collection ? cutCollectionBody(text) : undefined;
      } catch (err) {
        if (err instanceof TwoItemsError) throw new SyncError('data', `GET ${url}: ${err.message}; refused rather than read one of them`);
        if (err instanceof RepeatedPagingFieldError) throw new SyncError('data', `GET ${url}: ${err.message}; refused rather than take one`);
        if (err instanceof ItemsFormError) throw new SyncError('data', `GET ${url}: ${err.message}; refused`);
        throw err;
      }
      if (cut) {
        // An item that is not valid JSON fails the run as the whole page would have.
        const invalid = (index: number, itemError: unknown): never => {
          if (itemError instanceof TooComplexError) throw new SyncError('data', `GET ${url}: items[${index}] ${itemError.message}`);
          try {
            parseExactJson(text);
          } catch (err) {
            throw this.notJson(url, body, response, err);
          }
          throw this.notJson(url, body, response, itemError);
        };
        return {
          status: response.status,
          url,
          body: cut.envelope,
          records: PageRecords.unparsed(cut.itemTexts, invalid),
          ms: performance.now() - sentAt,
          chars: text.length,
        };
      }
      try {
        return { status: response.status, url, body: parseExactJson(text), ms: performance.now() - sentAt, chars: text.length };
      } catch (err) {
        throw this.notJson(url, body, response, err);
      }
    });
  }

  /**
   * GET a body straight into a file (created or truncated), never holding it in memory; for the
   * zip export. Same auth and retry rules as getJson; a retry starts the file over. Unlike
   * getJson, the request timeout is not a deadline for the whole body (a large export may take
   * many minutes): it bounds the wait for the response headers and every pause between two
   * pieces of the body, so a stalled download fails while a slow, steady one completes.
   * A body larger than `maxBytes` (announced or actually sent) fails as 'data' without retrying;
   * the message names CPQ_ZIP_MAX_BYTES, the setting it comes from. A body still arriving
   * `timeoutMs` after the download began (retries included) fails without retrying (CPQ_ZIP_DOWNLOAD_TIMEOUT): a
   * site trickling a byte now and then would otherwise hold the run, its transaction and its
   * site's sync lock for as long as it liked. The body is asked for as sent (Accept-Encoding:
   * identity: a zip is compressed already) and refused with any other Content-Encoding, which
   * fetch would decode unseen: 4 MB of gzip on the wire wrote 4 GiB (CPQ_ZIP_MAX_BYTES) to TMPDIR,
   * past the ratio bound (CPQ_ZIP_MAX_RATIO) that holds the archive's own entries.
   */
  async downloadToFile(url: string, options: { accept: string; path: string; maxBytes: number; timeoutMs: number }): Promise<DownloadResult> {
    const stallMs = this.config.requestTimeoutMs;
    // One deadline for the download, retries included: per attempt, a site could trickle until
    // just before it, drop the connection, and be asked again.
    const startedAt = performance.now();
    return this.withRetries(url, { accept: options.accept, acceptEncoding: 'identity', stallMs }, async (response, { stall, signal }) => {
      stall.restart(stallMs);
      if (!response.ok) throw await this.refusedAnswer(url, response, signal);
      const encoding = contentEncoding(response);
      if (encoding !== undefined) {
        await response.body?.cancel().catch(() => undefined);
        throw new SyncError(
          'data',
          `GET ${url}: the export came with Content-Encoding ${encoding}, though asked for as sent (Accept-Encoding: identity); refused, as an encoded body may expand far beyond what was sent`,
        );
      }
      const announced = Number(response.headers.get('content-length') ?? NaN);
      if (announced > options.maxBytes) {
        await response.body?.cancel();
        throw new SyncError('data', `GET ${url}: the export is ${announced} bytes, more than CPQ_ZIP_MAX_BYTES (${options.maxBytes})`);
      }
      const file = await open(options.path, 'w').catch((err: unknown) => {
        throw new SyncError('internal', `cannot create the temporary file for ${url} (${errorCode(err) ?? errorMessage(err)})`);
      });
      let bytes = 0;
      try {
        for await (const chunk of bodyChunks(response, signal)) {
          stall.restart(stallMs);
          if (performance.now() - startedAt > options.timeoutMs) {
            throw new SyncError(
              'source',
              `GET ${url}: the export was still arriving after ${describeDelay(options.timeoutMs)} (CPQ_ZIP_DOWNLOAD_TIMEOUT); ${bytes} bytes read`,
            );
          }
          bytes += chunk.byteLength;
          if (bytes > options.maxBytes) {
            throw new SyncError('data', `GET ${url}: the export is larger than CPQ_ZIP_MAX_BYTES (${options.maxBytes} bytes)`);
          }
          await file.write(chunk).catch((err: unknown) => {
            // Named with its folder and what to do: "a temporary file (ENOSPC)" left the operator to guess where (review HT).
            const full = errorCode(err) === 'ENOSPC' || errorCode(err) === 'EDQUOT';
            throw new SyncError(
              'internal',
              `cannot write the download of ${url} to a temporary file in ${dirname(options.path)} (${errorCode(err) ?? errorMessage(err)})${
                full
                  ? `: the export is downloaded whole before it is read; give TMPDIR a folder with room for CPQ_ZIP_MAX_BYTES (${options.maxBytes} bytes), or lower that bound`
                  : ''
              }`,
            );
          });
        }
      } finally {
        stall.stop();
        await file.close().catch(() => undefined);
      }
      return { url, bytes, contentType: response.headers.get('content-type') };
    });
  }

  /**
   * The request loop shared by every GET: auth (renewed once after a 401), 401/403 as 'auth',
   * retries with backoff for network errors and RETRY_STATUSES, interruption by the run's signal,
   * redirects followed only within the request's origin (redirectTarget), at most MAX_REDIRECTS.
   * `handle` reads the body of any other response, through the attempt's signal (bodyChunks); a
   * SyncError from it ends the loop, any other error (the connection dropped mid-body, a stall)
   * counts as a network error and is retried.
   * `deadlineMs` bounds the whole request, body included; `stallMs` instead bounds the wait for
   * the headers, and `handle` re-arms the stall timer as body data arrives (see downloadToFile).
   * Each attempt holds a place in the request budget until its body is read or it failed, never
   * while it waits to be retried; 429, 503 and timeouts cut the budget, a good answer grows it.
   */
  private async withRetries<T>(
    url: string,
    request: { accept: string; acceptEncoding?: string; deadlineMs?: number; stallMs?: number },
    handle: (response: Response, attempt: { stall: StallTimer; sentAt: number; signal: AbortSignal }) => Promise<T>,
  ): Promise<T> {
    const { accept, acceptEncoding, deadlineMs, stallMs } = request;
    let renewedAuth = false;
    for (let attempt = 0; ; attempt++) {
      this.signal?.throwIfAborted();
      let retryReason: string;
      let waitMs: number | undefined;
      const stall = new StallTimer();
      const slot = await this.slot(url);
      let request: LinkedSignal | undefined;
      try {
        const authorization = await this.auth.authorization();
        if (authorization) this.noteSent(authorization);
        // The run's signal and the deadline, both let go of when the attempt ends (see LinkedSignal);
        // a timer cleared then, unlike AbortSignal.timeout, also frees the request's abort listeners
        // (and what they hold) at once, not when it would have fired. Started once the token is
        // there: a token request has its own timeout, and counted here a slow token service left
        // CPQ the rest of the deadline, so a site answering in time was taken for one timing out.
        request = new LinkedSignal(this.signal, deadlineMs);
        this.stats.requests++;
        if (stallMs !== undefined) stall.restart(stallMs);
        const signal = AbortSignal.any([stall.signal, request.signal]);
        const init = withDispatcher(
          {
            headers: { accept, ...(acceptEncoding ? { 'accept-encoding': acceptEncoding } : {}), ...(authorization ? { authorization } : {}) },
            signal,
            redirect: 'manual',
          },
          this.dispatcher,
        );
        const sentAt = performance.now();
        let response = await fetch(url, init);
        for (let hops = 0; REDIRECT_STATUSES.has(response.status) && response.headers.has('location'); hops++) {
          await response.body?.cancel();
          if (hops === MAX_REDIRECTS) throw new SyncError('source', `GET ${url}: CPQ redirected more than ${MAX_REDIRECTS} times; refused`);
          response = await fetch(redirectTarget(url, response.url || url, response.headers.get('location')!), init);
        }
        stall.stop();
        this.noteSiteDate(response.headers.get('date'));
        if (response.status === 401 && !renewedAuth && (await this.auth.renew(authorization))) {
          await response.body?.cancel();
          renewedAuth = true;
          attempt--;
          continue;
        }
        if (response.status === 401 || response.status === 403) {
          await response.body?.cancel();
          throw new SyncError(
            'auth',
            `GET ${url}: CPQ refused the credentials (${response.status}); check the auth settings (the CPQ_* variables, or the site's keys in CPQ_SITES_FILE)`,
            {
              status: response.status,
            },
          );
        }
        if (RETRY_STATUSES.has(response.status)) {
          await response.body?.cancel();
          retryReason = String(response.status);
          waitMs = retryAfterMs(response.headers.get('retry-after'), response.headers.get('date'));
          if (SLOW_DOWN_STATUSES.has(response.status)) this.budget.slowDown(slot);
        } else {
          const result = await handle(response, { stall, sentAt, signal });
          this.budget.succeeded();
          return result;
        }
      } catch (err) {
        if (err instanceof SyncError) throw err;
        throwIfInterrupted(this.signal, `GET ${url}: interrupted`);
        if (err instanceof RetryableError) {
          retryReason = 'token';
          waitMs = err.retryAfterMs;
          if (attempt >= this.policy.maxRetries) throw new SyncError('source', `${err.message}, after ${attemptsText(attempt + 1)}`);
          this.log.warn({ attempt: attempt + 1, error: err.message }, 'token request failed; retrying');
        } else {
          if (isBadPort(err)) {
            const { port } = new URL(url);
            throw new SyncError(
              'config',
              `GET ${url}: Node's fetch refuses port ${port} (one of the ports browsers block, WHATWG "bad ports"): serve the site, or a proxy in front of it, on another port`,
            );
          }
          const timedOut = stall.fired > 0 || (err instanceof Error && err.name === 'TimeoutError');
          if (timedOut) this.budget.slowDown(slot);
          // A network error may quote the request's headers: credentials are cut out of it.
          const reason = stall.fired ? `no data for ${stall.fired / 1000}s` : this.withoutCredentials(describeNetworkError(err));
          retryReason = 'network';
          waitMs = undefined;
          if (attempt >= this.policy.maxRetries) {
            throw new SyncError('source', `GET ${url}: CPQ unreachable after ${attemptsText(attempt + 1)} (${reason})`);
          }
          this.log.warn({ url, attempt: attempt + 1, error: reason }, 'request failed; retrying');
        }
      } finally {
        stall.stop();
        request?.done();
        slot.release();
      }
      if (waitMs !== undefined && waitMs > this.policy.maxDelayMs) {
        throw new SyncError(
          'source',
          `GET ${url}: ${retryReason === 'token' ? 'the OAuth token service' : `CPQ answered ${retryReason} and`} asked to wait ${describeDelay(waitMs)} (Retry-After), longer than CPQ_RETRY_MAX_DELAY (${describeDelay(this.policy.maxDelayMs)}); the run stops rather than wait`,
          retryReason === 'token' ? {} : { status: Number(retryReason) },
        );
      }
      if (attempt >= this.policy.maxRetries) {
        throw new SyncError('source', `GET ${url}: CPQ still answered ${retryReason} after ${attemptsText(attempt + 1)}`, { status: Number(retryReason) });
      }
      this.stats.retries[retryReason] = (this.stats.retries[retryReason] ?? 0) + 1;
      const delay = waitMs ?? backoffMs(attempt, this.policy);
      // CPQ's Retry-After is about the site, not this request: every request waits it out.
      if (waitMs !== undefined && retryReason !== 'token') this.budget.pause(waitMs);
      if (retryReason !== 'network' && retryReason !== 'token')
        this.log.warn({ url, status: retryReason, attempt: attempt + 1, delayMs: delay }, 'CPQ asked us to retry');
      await sleep(delay, undefined, this.signal ? { signal: this.signal } : undefined).catch(() => {
        throw new SyncError('interrupted', `GET ${url}: interrupted`);
      });
    }
  }
}
