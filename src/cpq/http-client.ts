import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { CpqConfig } from '../config.js';
import { SyncError, oneLine } from '../errors.js';
import type { Authenticator } from './auth.js';
import { parseExactJson } from './json.js';

const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export interface RetryPolicy {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** A response body that was read and parsed. */
export interface JsonResponse {
  status: number;
  url: string;
  body: unknown;
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function backoffMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  // "Equal jitter": never less than half the step, so retries still back off.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

function describeNetworkError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no response within the request timeout';
  const cause = e.cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` ${cause.message}` : ''}`;
  return e.message;
}

function describeBody(text: string, contentType: string | null): string {
  const head = oneLine(text.slice(0, 60));
  if (text.trim() === '') return 'an empty body';
  if (/html/i.test(contentType ?? '') || /^\s*</.test(text)) return `an HTML page ("${head}…")`;
  return `"${head}${text.length > 60 ? '…' : ''}"`;
}

/** Counts of what the client had to do, for the run record and metrics. */
export interface HttpStats {
  requests: number;
  retries: Record<string, number>;
}

/**
 * HTTP access to one CPQ site: authentication, per-request timeout, retries with exponential
 * backoff and jitter (network errors, 408, 429, 5xx) honouring Retry-After, and exact JSON.
 * Error messages name the method and URL (which never holds credentials) and what went wrong.
 */
export class CpqHttpClient {
  readonly stats: HttpStats = { requests: 0, retries: {} };
  private readonly policy: RetryPolicy;

  constructor(
    private readonly config: Pick<CpqConfig, 'baseUrl' | 'requestTimeoutMs' | 'maxRetries' | 'retryBaseDelayMs' | 'retryMaxDelayMs'>,
    private readonly auth: Authenticator,
    private readonly log: Logger,
    private readonly signal?: AbortSignal,
  ) {
    this.policy = { maxRetries: config.maxRetries, baseDelayMs: config.retryBaseDelayMs, maxDelayMs: config.retryMaxDelayMs };
  }

  url(path: string, query: Record<string, string> = {}): string {
    const url = new URL(this.config.baseUrl + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return url.toString();
  }

  /** GET a JSON document. Resolves 404 as `{status: 404}` when `allow404`, else throws. */
  async getJson(url: string, options: { allow404?: boolean } = {}): Promise<JsonResponse> {
    let renewedAuth = false;
    for (let attempt = 0; ; attempt++) {
      this.signal?.throwIfAborted();
      let retryReason: string;
      let waitMs: number | undefined;
      try {
        const authorization = await this.auth.authorization();
        this.stats.requests++;
        const timeout = AbortSignal.timeout(this.config.requestTimeoutMs);
        const response = await fetch(url, {
          headers: { accept: 'application/json', ...(authorization ? { authorization } : {}) },
          signal: this.signal ? AbortSignal.any([timeout, this.signal]) : timeout,
        });
        if (response.status === 401 && !renewedAuth && (await this.auth.renew())) {
          await response.body?.cancel();
          renewedAuth = true;
          attempt--;
          continue;
        }
        if (response.status === 401 || response.status === 403) {
          await response.body?.cancel();
          throw new SyncError('auth', `GET ${url}: CPQ refused the credentials (${response.status}); check the CPQ_* auth settings`);
        }
        if (response.status === 404 && options.allow404) {
          await response.body?.cancel();
          return { status: 404, url, body: undefined };
        }
        if (RETRY_STATUSES.has(response.status)) {
          await response.body?.cancel();
          retryReason = String(response.status);
          waitMs = retryAfterMs(response.headers.get('retry-after'));
        } else {
          const text = await response.text();
          if (!response.ok) {
            throw new SyncError('source', `GET ${url}: CPQ answered ${response.status} with ${describeBody(text, response.headers.get('content-type'))}`);
          }
          try {
            return { status: response.status, url, body: parseExactJson(text) };
          } catch (err) {
            const what = /^\s*</.test(text) || /html/i.test(response.headers.get('content-type') ?? '')
              ? `expected JSON, got ${describeBody(text, response.headers.get('content-type'))}`
              : text.trim() === ''
                ? 'expected JSON, got an empty body'
                : `response is not valid JSON (${oneLine((err as Error).message)}; ${text.length} bytes)`;
            throw new SyncError('data', `GET ${url}: ${what}`);
          }
        }
      } catch (err) {
        if (err instanceof SyncError) throw err;
        if (this.signal?.aborted) throw new SyncError('interrupted', `GET ${url}: interrupted`);
        retryReason = 'network';
        waitMs = undefined;
        if (attempt >= this.policy.maxRetries) {
          throw new SyncError('source', `GET ${url}: CPQ unreachable after ${attempt + 1} attempts (${describeNetworkError(err)})`);
        }
        this.log.warn({ url, attempt: attempt + 1, error: describeNetworkError(err) }, 'request failed; retrying');
      }
      if (attempt >= this.policy.maxRetries) {
        throw new SyncError('source', `GET ${url}: CPQ still answered ${retryReason} after ${attempt + 1} attempts`);
      }
      this.stats.retries[retryReason] = (this.stats.retries[retryReason] ?? 0) + 1;
      const delay = waitMs ?? backoffMs(attempt, this.policy);
      if (retryReason !== 'network') this.log.warn({ url, status: retryReason, attempt: attempt + 1, delayMs: delay }, 'CPQ asked us to retry');
      await sleep(delay, undefined, this.signal ? { signal: this.signal } : undefined).catch(() => {
        throw new SyncError('interrupted', `GET ${url}: interrupted`);
      });
    }
  }
}
