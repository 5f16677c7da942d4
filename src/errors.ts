import { isAbsolute } from 'node:path';
import type { HttpStats } from './cpq/http-stats.js';

/**
 * Failure classes a run can end with. Each maps to a documented exit code of `cpq-sync run`,
 * and each message is one line that names what was wrong and where, never a credential.
 */
export type FailureKind = 'config' | 'source' | 'auth' | 'data' | 'database' | 'lock' | 'interrupted' | 'internal';

export const EXIT_CODES: Record<FailureKind, number> = {
  internal: 1,
  config: 2,
  source: 3,
  auth: 4,
  data: 5,
  database: 6,
  lock: 7,
  interrupted: 130,
};

/** What is known about where a failure happened, besides its message. */
export interface SyncErrorDetails {
  /** The HTTP status CPQ answered with, when the failure is that answer. */
  status?: number;
  /** The site whose run failed (CPQ_SITES_FILE's name; `default` for the environment's site). */
  site?: string;
  /** The stream being read (`companies/_host`, `integrationUsers`). */
  stream?: string;
  /** The run it ended (its cpq.sync_runs row); unset when it ended before a run row existed. */
  runId?: string;
  /** The ended run's HTTP statistics, as its run row records them. */
  http?: HttpStats;
  /** The ended run's duration in seconds, from its row's insertion to its failure. */
  seconds?: number;
}

export class SyncError extends Error {
  readonly status: number | undefined;
  readonly site: string | undefined;
  readonly stream: string | undefined;
  readonly runId: string | undefined;
  readonly http: HttpStats | undefined;
  readonly seconds: number | undefined;

  constructor(
    readonly kind: FailureKind,
    message: string,
    details: SyncErrorDetails = {},
  ) {
    super(message);
    this.name = 'SyncError';
    this.status = details.status;
    this.site = details.site;
    this.stream = details.stream;
    this.runId = details.runId;
    this.http = details.http;
    this.seconds = details.seconds;
  }

  /** The same failure with more of its details known (the stream, then the run). */
  with(details: SyncErrorDetails): SyncError {
    const merged = new SyncError(this.kind, this.message, { ...this.details(), ...details });
    merged.stack = this.stack;
    return merged;
  }

  details(): SyncErrorDetails {
    const { status, site, stream, runId, http, seconds } = this;
    return { status, site, stream, runId, http, seconds };
  }
}

/**
 * Throws an 'interrupted' SyncError (exit code 130) when `signal` has aborted: what a command checks
 * before a step it would not take once asked to stop, `message` saying what was left undone.
 */
export function throwIfInterrupted(signal: AbortSignal | undefined, message: string, details?: SyncErrorDetails): void {
  if (signal?.aborted) throw new SyncError('interrupted', message, details);
}

/** The message of anything thrown: an Error's message, or the value as text. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Rethrows a failure as a command's: a SyncError as it is, anything else classified by
 * toDatabaseOrInternal, so that a database failure is exit code 6 ("database error: …"), not the
 * exit code 1 that verify and status give their findings.
 */
export function rethrowAsSyncError(err: unknown): never {
  throw asSyncError(err);
}

/** `err` as a SyncError: itself, or classified by toDatabaseOrInternal. */
export function asSyncError(err: unknown): SyncError {
  return err instanceof SyncError ? err : toDatabaseOrInternal(err);
}

/** The Node errno code of a system error (ENOENT, EADDRINUSE), if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * `, relative to the working directory /x` when a relative `path` was not found or may not be
 * opened (ENOENT, EACCES): it is read from the working directory, and a command run from another
 * folder (cron, a service, another shell) looked there without saying so. The folder tells nothing
 * of the path, which callers that keep it unprinted (it may be a secret) still keep so.
 */
export function relativeToWorkingDirectory(path: string, err: unknown): string {
  const code = errorCode(err);
  if ((code !== 'ENOENT' && code !== 'EACCES') || isAbsolute(path)) return '';
  try {
    return `, relative to the working directory ${process.cwd()}`;
  } catch {
    return ''; // the working directory was removed: nothing to name
  }
}

/** Postgres said a table (or view) does not exist: 42P01, as in a database no run has migrated yet. */
export function isUndefinedTable(err: unknown): boolean {
  return errorCode(err) === '42P01';
}

/** One line, whatever the error was, and printable in a terminal. */
export function oneLine(message: string): string {
  return printable(
    message
      .replace(/\s*[\r\n]+\s*/g, ' ')
      .replace(/\t/g, ' ')
      .trim(),
  );
}

/** C0 and C1 control characters and DEL: a terminal acts on them (escape sequences), an HTTP header cannot carry them. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * The characters that reorder or break the text around them on a terminal: the bidirectional
 * marks, embeddings, overrides and isolates, and the line and paragraph separators (the class's
 * source, for every pattern that escapes them). A company
 * named `partner\u202Egpj.exe\u202C\u2028FORGED: ✓ all good` printed as it was shown another name
 * than its own, and a line `check` never wrote (review HA).
 */
export const REORDERING_CHARACTER_CLASS = '\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const REORDERING_CHARACTERS = new RegExp(`[${REORDERING_CHARACTER_CLASS}]`, 'g');

/**
 * `text` safe to show in a terminal: each control character written as \xNN, each reordering one
 * as \uXXXX. CPQ's values (company names, logins, error bodies) reach messages, run records and
 * tables; passed through raw, an escape sequence among them would act on the operator's terminal
 * (retitle it, recolour or erase lines), a bidirectional override would show other text.
 */
export function printable(text: string): string {
  return text.replace(CONTROL_CHARACTERS, hexEscape).replace(REORDERING_CHARACTERS, unicodeEscape);
}

/** Unpaired UTF-16 surrogates: no Unicode, so UTF-8 cannot carry them and jsonb refuses their escapes. */
const LONE_SURROGATES = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * printable `text` with each unpaired surrogate written as \uXXXX too: what a run record stores
 * (its error, its warnings) as it reads. A NUL that CPQ sent, quoted in a warning, made the record
 * fail to save (Postgres text holds no NUL), and the failed run stayed "running".
 */
export function storable(text: string): string {
  return printable(text).replace(LONE_SURROGATES, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** DEL, the C1 controls and the reordering characters: JSON.stringify leaves them as they are (U+009B is CSI to some terminals). */
const LEFT_BY_JSON = new RegExp(`[\\u007f-\\u009f${REORDERING_CHARACTER_CLASS}]`, 'g');

/** printable for what JSON leaves as it is (LEFT_BY_JSON) only: for text printed as JSON, which escapes the C0 controls itself. */
export function printableInJson(text: string): string {
  return text.replace(LEFT_BY_JSON, (c) => (c.charCodeAt(0) <= 0x9f ? hexEscape(c) : unicodeEscape(c)));
}

/**
 * JSON text with DEL, the C1 controls and the reordering characters inside its strings written as
 * \u escapes: the same JSON value, which no terminal takes for a control sequence or reorders
 * (JSON.stringify escapes only C0).
 */
export function jsonForTerminal(json: string): string {
  return json.replace(LEFT_BY_JSON, unicodeEscape);
}

const hexEscape = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

export function hasControlCharacter(text: string): boolean {
  return text.search(CONTROL_CHARACTERS) !== -1;
}

/** Whether fetch can send `text` as a header's value: no character past Latin-1 (U+00FF), which it refuses before sending. */
export function isHeaderText(text: string): boolean {
  return !/[\u0100-\uffff]/.test(text);
}

/**
 * The PL/pgSQL functions outside schema cpq a Postgres error was raised in, innermost first, from
 * its CONTEXT (`PL/pgSQL function audit.record() line 1 at SQL statement`): a DBA's audit trigger
 * on a cpq table, written for the default search path, failed every run with Postgres's message
 * alone (`relation "log" does not exist`), which names no cpq object. Only the function's name:
 * the context's other lines quote statements and COPY rows, values included. A SQL-language
 * function's line names no schema, so it cannot be told from cpq's own.
 */
function foreignFunctions(err: unknown): string[] {
  const where = (err as { where?: unknown } | null | undefined)?.where;
  if (typeof where !== 'string') return [];
  const names = where.split('\n').flatMap((line) => /^PL\/pgSQL function (\S+?\(.*?\)) line \d+/.exec(line)?.[1] ?? []);
  return [...new Set(names.filter((name) => !name.startsWith('cpq.')))];
}

/**
 * The codes of a connection to Postgres that broke under an open session: Node's (a network
 * failure, the server gone: `read ECONNRESET` alone did not say the database went away, review DU)
 * and Postgres's own as it ends the session (admin_shutdown: a fast stop or pg_terminate_backend;
 * crash_shutdown), which of the two a stopping server gives depends on what the session was doing.
 */
const LOST_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02']);

/**
 * node-postgres gave up making a connection after DATABASE_CONNECT_TIMEOUT (its
 * connectionTimeoutMillis): it says only "timeout expired", with no code.
 */
export function isConnectTimeout(err: unknown): boolean {
  return errorCode(err) === undefined && errorMessage(err) === 'timeout expired';
}

/** query_canceled: a cancel asked for (cancelOnAbort's), or a statement_timeout. */
export const QUERY_CANCELED = '57014';

/** Postgres cancelled a statement that ran past statement_timeout (QUERY_CANCELED is also a cancel asked for: told apart by its message). */
export function isStatementTimeout(err: unknown): boolean {
  return errorCode(err) === QUERY_CANCELED && /statement timeout/.test(errorMessage(err));
}

/**
 * `err` is what `signal`, aborted, did: its reason (a statement refused once it aborted: cancelOnAbort)
 * or a statement it cancelled (QUERY_CANCELED, not a statement_timeout). Such an error is passed on
 * as it is, not wrapped, so that a run stopped before its record can tell it from a failure of its own.
 */
export function isSignalsDoing(err: unknown, signal: AbortSignal | undefined): boolean {
  if (!signal?.aborted) return false;
  return errorMessage(err) === errorMessage(signal.reason) || (errorCode(err) === QUERY_CANCELED && !isStatementTimeout(err));
}

/** lock_timeout ran out (SQLSTATE lock_not_available). */
export const LOCK_NOT_AVAILABLE = '55P03';

/**
 * A failure that is not a SyncError, classified: 'database' for what Postgres or the connection
 * to it reported, 'internal' for anything else. `lockHolders`: for a lock timeout, the sessions
 * that could have stopped the statement (describeWriteBlockersOf), read while they still held.
 */
export function toDatabaseOrInternal(err: unknown, lockHolders?: string): SyncError {
  // A connection refused for its configuration (DatabaseClient: a certificate file others may write).
  if (err instanceof SyncError && err.kind === 'config') return err;
  const message = errorMessage(err);
  // Errors from Postgres carry a SQLSTATE; connection failures carry a Node errno code, or
  // only a message when node-postgres lost the connection itself.
  if (errorCode(err) === LOCK_NOT_AVAILABLE) {
    const who = lockHolders === undefined ? 'pg_locks, pg_blocking_pids' : `as it gave up: ${lockHolders}`;
    return new SyncError(
      'database',
      `database error: ${message}: a statement waited longer than SYNC_LOCK_TIMEOUT for a lock on the cpq tables, held or queued for by another session (${who}); nothing was changed`,
    );
  }
  if (isConnectTimeout(err)) {
    return new SyncError('database', 'database error: a new connection to Postgres got no answer within DATABASE_CONNECT_TIMEOUT');
  }
  if (LOST_CONNECTION_CODES.has(errorCode(err) ?? '') || /^Connection terminated unexpectedly$/.test(message)) {
    return new SyncError(
      'database',
      `database error: lost the connection to Postgres (${message}): the server stopped, restarted or ended this session, and rolled back what was not committed`,
    );
  }
  if (errorCode(err) !== undefined || /Connection terminated|not queryable|connection error/i.test(message)) {
    const foreign = foreignFunctions(err);
    const where = foreign.length === 0 ? '' : ` (in function ${foreign.join(', ')}, which is not cpq-sync's: a trigger or rule added to a cpq table?)`;
    return new SyncError('database', `database error: ${message}${where}`);
  }
  return new SyncError('internal', message);
}

/** A URL with each query value shown as … (`?api-version=…&code=…`): an operator reads where, not what key. */
export function urlForMessages(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.search === '' && parsed.hash === '') return url;
  const names = [...parsed.searchParams.keys()];
  return `${parsed.origin}${parsed.pathname}${names.length ? `?${names.map((n) => `${encodeURIComponent(n)}=…`).join('&')}` : ''}`;
}
