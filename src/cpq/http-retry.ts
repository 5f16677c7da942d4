/*
 * When a CPQ request is tried again, and how long to wait: the statuses worth a retry, backoff
 * with jitter, Retry-After, and the failures before a request that retry like it (the token).
 */

export const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export interface RetryPolicy {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** RFC 9110's HTTP date, as servers send it: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** The two obsolete forms a recipient must read too: `Sunday, 06-Nov-94 08:49:37 GMT` and `Sun Nov  6 08:49:37 1994` (GMT). */
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/**
 * A Date or Retry-After header's time (ms), when it is an HTTP date in one of RFC 9110's three
 * forms, of a year from 1970, naming a day and time that exist; else undefined. Read by its parts,
 * not by Date.parse, which reads "0" as the year 2000, "0099" as 1999, the asctime form in local
 * time, and rolls 31 Feb over to March. A two-digit year more than 50 years ahead of `now` is the
 * last such year past (RFC 9110, 5.6.7).
 */
export function httpDate(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  let parts: [year: number, month: string, day: string, time: string[]];
  let m: RegExpExecArray | null;
  if ((m = IMF_FIXDATE.exec(header))) parts = [Number(m[3]), m[2]!, m[1]!, m.slice(4, 7)];
  else if ((m = RFC850_DATE.exec(header))) {
    const thisYear = new Date(now).getUTCFullYear();
    const year = thisYear - (thisYear % 100) + Number(m[3]);
    parts = [year > thisYear + 50 ? year - 100 : year, m[2]!, m[1]!, m.slice(4, 7)];
  } else if ((m = ASCTIME_DATE.exec(header))) parts = [Number(m[6]), m[1]!, m[2]!.trim(), m.slice(3, 6)];
  else return undefined;
  const [year, monthName, dayText, [hours, minutes, seconds]] = parts;
  const month = MONTHS.indexOf(monthName);
  const day = Number(dayText);
  const daysInMonth = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  // A leap second (60) is the next minute's first.
  if (year < 1970 || day < 1 || day > daysInMonth || Number(hours) > 23 || Number(minutes) > 59 || Number(seconds) > 60) return undefined;
  return Date.UTC(year, month, day, Number(hours), Number(minutes), Number(seconds));
}

/** Whole seconds, or several (two Retry-After headers, a proxy's and CPQ's, reach fetch joined by ", "). */
const DELTA_SECONDS = /^\d+(?:[ \t]*,[ \t]*\d+)*$/;

/**
 * Retry-After in seconds or as an HTTP date, in milliseconds; undefined when absent or unreadable,
 * and the caller's backoff applies. Only RFC 9110's forms are read (seconds, or a date in one of
 * its three forms, httpDate): Date.parse, tried on
 * anything else, read "-5", "1.5", "+5" and "5, 10" as dates long past (no wait at all: every
 * retry at once) and "-2030" as one far ahead (the run failed, "asked to wait more than a year")
 * (review IA). Several seconds values are each a server's ask: the longest is waited.
 * A date is by the server's clock, so it counts from the response's own Date (`dateHeader`, as
 * RFC 9110 says) when that is an HTTP date, else from `now`: by ours, a worker's clock behind
 * CPQ's by an hour waited an hour (past CPQ_RETRY_MAX_DELAY: the run failed), and one ahead did
 * not wait at all.
 */
export function retryAfterMs(header: string | null, dateHeader: string | null = null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (DELTA_SECONDS.test(trimmed)) return trimmed.split(',').reduce((longest, seconds) => Math.max(longest, Number(seconds.trim()) * 1000), 0);
  const at = httpDate(trimmed, now);
  return at === undefined ? undefined : Math.max(0, at - (httpDate(dateHeader, now) ?? now));
}

export function backoffMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  // "Equal jitter": never less than half the step, so retries still back off.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * A failure before the request could be sent that is worth retrying like the request itself:
 * the OAuth token service unreachable or answering 408, 429 or 5xx. Its message names the token
 * request; `retryAfterMs` is the Retry-After it sent, if any.
 */
export class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

const YEAR_MS = 365 * 86_400_000;

/**
 * A duration in a message: milliseconds below a second, seconds below two minutes, else minutes or
 * hours. Past a year it says so: a Retry-After of hundreds of digits is Infinity as a number.
 */
export function describeDelay(ms: number): string {
  if (!(ms <= YEAR_MS)) return 'more than a year';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10}s`;
  return ms < 2 * 3_600_000 ? `${Math.round(ms / 60_000)}min` : `${Math.round(ms / 360_000) / 10}h`;
}
