import { errorMessage } from '../errors.js';
import { TooComplexError, headOf, tailOf } from '../exact-json.js';

/**
 * What an entry of CPQ's zip export holds, decided by its name only. Names are labels here,
 * never file paths: nothing is ever written under an entry's name.
 */
export type UserEntryFormat = 'json' | 'jsonl' | 'csv';

export type EntryKind =
  | { kind: 'users'; format: UserEntryFormat }
  /** Folders, and the metadata macOS adds when it zips a folder: nothing to read. */
  | { kind: 'skip'; why: 'directory' | 'macOS metadata' }
  | { kind: 'unknown' };

const FORMAT_BY_EXTENSION: Record<string, UserEntryFormat> = {
  json: 'json',
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  csv: 'csv',
};

export const USER_ENTRY_EXTENSIONS = Object.keys(FORMAT_BY_EXTENSION).map((e) => `.${e}`);

export function entryKind(name: string): EntryKind {
  if (name.endsWith('/')) return { kind: 'skip', why: 'directory' };
  const base = name.slice(name.lastIndexOf('/') + 1);
  if (name.startsWith('__MACOSX/') || base === '.DS_Store') return { kind: 'skip', why: 'macOS metadata' };
  const dot = base.lastIndexOf('.');
  const format = dot > 0 ? FORMAT_BY_EXTENSION[base.slice(dot + 1).toLowerCase()] : undefined;
  return format ? { kind: 'users', format } : { kind: 'unknown' };
}

/** An entry name fit for a one-line error message: quoted, control characters escaped, long names shortened to head and tail (never half a surrogate pair). */
export function quoteEntryName(name: string): string {
  return JSON.stringify(name.length > 120 ? `${headOf(name, 60)}…${tailOf(name, 40)}` : name);
}

/** The content of an entry does not follow its format; the message names the place (line or item). */
export class EntryContentError extends Error {
  override name = 'EntryContentError';
}

/** A record of an entry (`where`: "line 7", "items[3]") that JSON.parse refused. */
export function notValidJson(where: string, err: unknown): EntryContentError {
  if (err instanceof TooComplexError) return new EntryContentError(`${where} ${err.message}`);
  return new EntryContentError(`${where} is not valid JSON (${errorMessage(err).replace(/\s+/g, ' ')})`);
}

/**
 * The largest single record (JSON item, JSON line or CSV row) an entry may hold, in characters.
 * Real user records are a few KB; the bound keeps one hostile record from filling memory.
 */
export const MAX_RECORD_CHARS = 16 * 1024 * 1024;

/** The largest record an entry parser accepts, in characters, and how its errors name the bound. */
export interface RecordLimit {
  chars: number;
  name: string;
}

export const DEFAULT_RECORD_LIMIT: RecordLimit = { chars: MAX_RECORD_CHARS, name: `${MAX_RECORD_CHARS / 1024 / 1024} MiB` };

/** MAX_RECORD_CHARS, or CPQ_MAX_PAGE_BYTES when that is smaller: one record is never larger than a page may be. */
export function recordLimit(maxPageBytes: number): RecordLimit {
  return maxPageBytes < MAX_RECORD_CHARS ? { chars: maxPageBytes, name: `CPQ_MAX_PAGE_BYTES (${maxPageBytes})` } : DEFAULT_RECORD_LIMIT;
}

/**
 * Receives each record an entry parser finds, with where it was ("line 7", "items[3]"), and its
 * own text when it can be stored as sent (see parseExactRecord).
 */
export type RecordSink = (record: unknown, where: string, storedAsSent?: string) => void;

/** Receives each record an entry parser finds as its text, unparsed, with where it was: for records parsed when used (PageRecords). */
export type ItemTextSink = (text: string, where: string) => void;
