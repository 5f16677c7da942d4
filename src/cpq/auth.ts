import type { CpqAuthConfig } from '../config.js';
import type { Dispatcher } from 'undici';
import { SyncError, errorMessage, hasControlCharacter, isHeaderText, urlForMessages } from '../errors.js';
import { LinkedSignal } from '../linked-signal.js';
import { readHead } from './http-bodies.js';
import { RETRY_STATUSES, retryAfterMs, RetryableError } from './http-retry.js';
import { dispatcherFor, withDispatcher } from '../fetch-dispatcher.js';

/** Supplies the Authorization header and, for renewable credentials, a fresh one after a 401. */
export interface Authenticator {
  authorization(): Promise<string | undefined>;
  /** Drops cached credentials, when they are those `refused` (the header a 401 answered) or it is not given; true when retrying with a new header can help. */
  renew(refused?: string): Promise<boolean>;
}

const TOKEN_RESPONSE_MAX_BYTES = 64 * 1024;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

class StaticAuthenticator implements Authenticator {
  constructor(private readonly header: string | undefined) {}
  async authorization() {
    return this.header;
  }
  async renew() {
    return false;
  }
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/**
 * OAuth 2 client-credentials grant; the token is cached and renewed shortly before it expires or
 * after a 401. The token service unreachable, or answering 408, 429 or 5xx, is a RetryableError:
 * the request that needed the token is retried by the HTTP client as if CPQ had failed it.
 */
export class OAuthClientCredentials implements Authenticator {
  private token: CachedToken | undefined;
  private pending: Promise<CachedToken> | undefined;

  constructor(
    private readonly config: Extract<CpqAuthConfig, { kind: 'oauth' }>,
    private readonly timeoutMs: number,
    // A token's lifetime is a span: the monotonic clock measures it. By Date, a worker's clock
    // stepped ahead (NTP, a VM resumed) dropped a good token, and stepped back kept one past its
    // expiry, until CPQ refused it.
    private readonly now: () => number = () => performance.now(),
    private readonly dispatcher?: Dispatcher,
    /** The run's: a signal ends a token request waited for (a SIGTERM waited CPQ_REQUEST_TIMEOUT, past SHUTDOWN_TIMEOUT). */
    private readonly signal?: AbortSignal,
  ) {}

  async authorization(): Promise<string> {
    if (this.token && this.token.expiresAt > this.now()) return this.token.header;
    return (await this.fetchToken()).header;
  }

  async renew(refused?: string): Promise<boolean> {
    // Only the token refused: a token expiring mid-run is refused to every request in flight with
    // it, and each dropping the token cached took a grant per request, even when a request before
    // it had just fetched a new one (which a token service keeping one token per client then
    // revoked under the requests already renewed once: they failed the run as refused).
    if (refused === undefined || this.token?.header === refused) this.token = undefined;
    return true;
  }

  private fetchToken(): Promise<CachedToken> {
    // Concurrent requests share one grant instead of stampeding the identity service.
    this.pending ??= this.grant().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async grant(): Promise<CachedToken> {
    // The request timeout bounds the answer, body included (see LinkedSignal for why not AbortSignal.timeout).
    const request = new LinkedSignal(this.signal, this.timeoutMs);
    try {
      return await this.requestToken(request.signal);
    } finally {
      request.done();
    }
  }

  private async requestToken(signal: AbortSignal): Promise<CachedToken> {
    const target = this.config.tokenUrl;
    // Messages name the token URL without its query's values: some services take a key there.
    const url = urlForMessages(target);
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (this.config.scope) form.set('scope', this.config.scope);
    let response: Response;
    try {
      response = await fetch(
        target,
        withDispatcher(
          {
            method: 'POST',
            headers: {
              authorization: basic(this.config.clientId, this.config.clientSecret),
              'content-type': 'application/x-www-form-urlencoded',
              accept: 'application/json',
            },
            body: form.toString(),
            signal,
            // The token endpoint is named by the operator: a redirect is an answer we do not follow.
            redirect: 'manual',
          },
          this.dispatcher,
        ),
      );
    } catch (err) {
      const reason =
        err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
          ? 'no response within the request timeout'
          : errorMessage(err instanceof Error && err.cause ? err.cause : err);
      throw new RetryableError(`POST ${url}: OAuth token service unreachable (${reason})`);
    }
    // A token response is a few hundred bytes: anything past 64 KiB is cut, and then not JSON.
    const text = await readHead(response, TOKEN_RESPONSE_MAX_BYTES, signal);
    if (response.status >= 300 && response.status < 400) {
      throw new SyncError(
        'auth',
        `POST ${url}: OAuth token service answered ${response.status} (a redirect); redirects are not followed for the token request: set CPQ_OAUTH_TOKEN_URL to the final address`,
      );
    }
    if (response.status === 400 || response.status === 401 || response.status === 403) {
      throw new SyncError(
        'auth',
        `POST ${url}: OAuth token request refused (${response.status}): check the client id, the client secret and the scope (CPQ_OAUTH_*, or the site's oauth keys in CPQ_SITES_FILE)`,
      );
    }
    if (RETRY_STATUSES.has(response.status) || response.status >= 500) {
      throw new RetryableError(
        `POST ${url}: OAuth token service answered ${response.status}`,
        retryAfterMs(response.headers.get('retry-after'), response.headers.get('date')),
      );
    }
    if (!response.ok) throw new SyncError('source', `POST ${url}: OAuth token service answered ${response.status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new SyncError('auth', `POST ${url}: OAuth token response is not JSON`);
    }
    // Any JSON: `null` (read as an object, it threw a TypeError, retried as CPQ unreachable) has no token either.
    const body: { access_token?: unknown; expires_in?: unknown } = typeof parsed === 'object' && parsed !== null ? parsed : {};
    if (typeof body.access_token !== 'string' || body.access_token === '') {
      throw new SyncError('auth', `POST ${url}: OAuth token response has no access_token`);
    }
    // It goes into the Authorization header: a control character there would make fetch fail with
    // an error quoting the header, token included. Refused without repeating it.
    if (hasControlCharacter(body.access_token)) {
      throw new SyncError('auth', `POST ${url}: OAuth token response's access_token holds a line break or another control character; refused`);
    }
    // Nor can it carry a character past Latin-1: fetch threw before sending, and every request of
    // the run was retried as unreachable (7 attempts, 24 s, each error naming the character).
    if (!isHeaderText(body.access_token)) {
      throw new SyncError('auth', `POST ${url}: OAuth token response's access_token holds a character an HTTP header cannot carry; refused`);
    }
    const lifetimeMs = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600) * 1000;
    // Renew when 90% of the lifetime has passed, but at most a minute early for long-lived tokens.
    const margin = Math.min(60_000, lifetimeMs * 0.1);
    this.token = { header: `Bearer ${body.access_token}`, expiresAt: this.now() + lifetimeMs - margin };
    return this.token;
  }
}

export function createAuthenticator(config: CpqAuthConfig, timeoutMs: number, ca?: string, signal?: AbortSignal): Authenticator {
  switch (config.kind) {
    case 'none':
      return new StaticAuthenticator(undefined);
    case 'basic':
      return new StaticAuthenticator(basic(config.username, config.password));
    case 'bearer':
      return new StaticAuthenticator(`Bearer ${config.token}`);
    case 'oauth':
      return new OAuthClientCredentials(config, timeoutMs, undefined, dispatcherFor(ca, timeoutMs), signal);
  }
}
