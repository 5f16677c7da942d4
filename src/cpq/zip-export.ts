import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { CpqConfig } from '../config.js';
import { SyncError, oneLine, throwIfInterrupted } from '../errors.js';
import { ExportColumnsError, exportColumns, type ExportColumns } from './export-columns.js';
import { CsvRowsParser } from './csv-rows.js';
import { PageRecords, type PageRecord } from './page-records.js';
import type { CpqHttpClient, DownloadResult } from './http-client.js';
import { MAX_BODY_VALUES, countValue, describeValue, isLosslessNumber, parseExactRecord } from '../exact-json.js';
import { JsonItemsParser, PagingFields } from './json-items.js';
import { JsonLinesParser } from './json-lines.js';
import type { Page } from './paging.js';
import { companyUsersPath } from './streams.js';
import { ArchiveError, ZipArchive, type UserEntry } from './zip-archive.js';
import { makeZipTempDir, removeZipTempDir } from './zip-temp-dir.js';
import { EntryContentError, notValidJson, recordLimit, type RecordLimit, type RecordSink } from './zip-entry-kind.js';

/*
 * CPQ's zip export of one company's users (`Accept: application/zip`), for sites too large for
 * paging. The zip directory sits at the end of the archive, so the body is streamed to a
 * temporary file first; then the entries are read one at a time, each streamed through the
 * parser for its format, and the records come out as pages shaped like the JSON path's, which
 * share normalization and loading. Nothing holds more than a page of records and one chunk.
 */

/** The URL of the export: the company-users collection, no query (the export takes no filter). */
export function zipExportUrl(client: CpqHttpClient, config: CpqConfig, company: string): string {
  return client.url(companyUsersPath(config, company));
}

/** A body that is not a zip (CPQ sent JSON or an error page with 200) is named as what it is. */
async function checkIsZip(client: CpqHttpClient, path: string, download: DownloadResult) {
  if (download.bytes === 0) throw new SyncError('data', `GET ${download.url}: expected a zip archive, got an empty body`);
  const handle = await open(path, 'r');
  const head = Buffer.alloc(256);
  try {
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  // Local file header, or the end record of an archive without entries.
  if (head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))) return;
  const text = head.subarray(0, Math.min(download.bytes, head.length)).toString('utf8');
  const type = download.contentType ?? 'no content type';
  throw new SyncError('data', `GET ${download.url}: expected a zip archive, got ${type} with ${client.excerpt(text, download.contentType)}`);
}

/** Text parser for one entry's format, handing each record (a plain object) to `sink`. */
interface EntryParser {
  write(text: string): void;
  end(): void;
}

/**
 * A record of the export as read: a CSV row already made a record, or the text of a JSON item or
 * JSON line, parsed when its page is used (PageRecords).
 */
type PendingRecord = { record: Record<string, unknown> } | { text: string; entry: string; where: string };

/** A zip export's record: parsed (a text now), checked to be an object. Errors as the entry parser's, naming entry and place. */
function readPending(pending: PendingRecord, fail: (message: string) => SyncError): PageRecord {
  if ('record' in pending) return { value: pending.record, storedAsSent: undefined };
  let record: PageRecord;
  try {
    record = parseExactRecord(pending.text);
  } catch (err) {
    throw fail(`entry ${pending.entry}: ${notValidJson(pending.where, err).message}`);
  }
  checkObject(record.value, pending.where, (message) => fail(`entry ${pending.entry}: ${message}`));
  return record;
}

function checkObject(record: unknown, where: string, error: (message: string) => Error): asserts record is Record<string, unknown> {
  if (typeof record !== 'object' || record === null || Array.isArray(record) || isLosslessNumber(record)) {
    throw error(`${where}: expected a user object, got ${describeValue(record)}`);
  }
}

/**
 * What a `.json` entry's collection body says of the list: a body can be one page of a longer
 * list. Taken for the whole export, the users it left out would be marked deleted. So pages
 * must fit together (listingProblem), and the largest totalResults a body gives is the read's,
 * which the run holds the users it read against, as on the JSON path: fewer different users
 * than that is a short read (no deletion, a warning), a repeat hiding none.
 */
interface Body {
  entry: string;
  items: number;
  /** hasMore as sent: undefined when the body has none. */
  hasMore: unknown;
  offset: unknown;
  totalResults: number | undefined;
}

/**
 * Why the `.json` bodies of an archive do not fit together as its list; undefined when they do.
 * Bodies are pages when any says hasMore: true or gives an offset past 0, or more than one gives
 * an offset: then each gives its offset, and they cover 0 to their end without a gap or an
 * overlap, the last saying no more.
 */
function listingProblem(bodies: readonly Body[]): string | undefined {
  const refused = 'refused rather than taken for every user of the company';
  const oddMore = bodies.find((b) => b.hasMore !== undefined && typeof b.hasMore !== 'boolean');
  if (oddMore) return `entry ${oddMore.entry}: hasMore must be true or false; ${refused}`;
  const odd = bodies.find((b) => b.offset !== undefined && countValue(b.offset) === undefined);
  if (odd) return `entry ${odd.entry}: offset must be a whole number of 0 or more, not ${describeValue(odd.offset)}; ${refused}`;
  const placed = bodies.filter((b) => b.offset !== undefined);
  if (!bodies.some((b) => b.hasMore === true) && !placed.some((b) => countValue(b.offset) !== 0) && placed.length < 2) return undefined;
  const unplaced = bodies.find((b) => b.offset === undefined);
  if (unplaced) return `entry ${unplaced.entry} gives no offset, though the export comes in pages; ${refused}`;
  const pages = bodies.map((b) => ({ ...b, offset: countValue(b.offset)! })).sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const page of pages) {
    if (page.offset !== end) return `the pages do not follow each other: entry ${page.entry} starts at offset ${page.offset}, not ${end}; ${refused}`;
    end += page.items;
  }
  const last = pages.at(-1)!;
  return last.hasMore === true ? `the last page, entry ${last.entry}, says hasMore: true; ${refused}` : undefined;
}

/** `where`: the record's place in the entry (`line 3`, `items[2]`). JSON items and lines come as texts. */
function entryParser(entry: UserEntry, limit: RecordLimit, bodies: Body[], sink: (pending: PendingRecord, where: string) => void): EntryParser {
  const itemText = (text: string, where: string) => sink({ text, entry: entry.name, where }, where);
  const objects: RecordSink = (record, where) => {
    checkObject(record, where, (message) => new EntryContentError(message));
    sink({ record }, where);
  };
  switch (entry.format) {
    case 'json': {
      const body: Body = { entry: entry.name, items: 0, hasMore: undefined, offset: undefined, totalResults: undefined };
      const paging = new PagingFields();
      bodies.push(body);
      return new JsonItemsParser(objects, limit, {
        itemText: (text, where) => {
          body.items++;
          itemText(text, where);
        },
        // In any case, one said twice differently refused, as on a JSON page (PagingFields).
        envelope: (key, value) => {
          paging.take(key, value);
          body.hasMore = paging.get('hasMore');
          const offset = paging.get('offset');
          if (offset !== null) body.offset = offset;
          body.totalResults = countValue(paging.get('totalResults'));
        },
      });
    }
    case 'jsonl':
      return new JsonLinesParser(objects, limit, { itemText });
    case 'csv': {
      let columns: ExportColumns | undefined;
      return new CsvRowsParser((cells, line) => {
        if (!columns) {
          try {
            columns = exportColumns(cells);
          } catch (err) {
            throw err instanceof ExportColumnsError ? new EntryContentError(`header (line ${line}): ${err.message}`) : err;
          }
          return;
        }
        if (cells.length !== columns.count) {
          throw new EntryContentError(`line ${line} has ${cells.length} fields, the header has ${columns.count}`);
        }
        let record: Record<string, unknown>;
        try {
          record = columns.record(cells);
        } catch (err) {
          throw err instanceof ExportColumnsError ? new EntryContentError(`line ${line}: ${err.message}`) : err;
        }
        objects(record, `line ${line}`);
      }, limit);
    }
  }
}

/**
 * The users of one company from CPQ's zip export (`Accept: application/zip`), as pages of raw
 * records shaped like the JSON path's, so both paths share normalization and loading.
 * Pages hold at most `config.pageSize` records, are cut early once the text read since the last
 * page reaches CPQ_MAX_PAGE_BYTES (so a page of huge records cannot fill memory), and may span
 * entries. A broken or hostile archive
 * fails with a SyncError ('data') naming the entry and the problem; the structure of every entry
 * is checked before the first page, the content as it is read and used (a JSON item or line is
 * parsed when its page is: see PageRecords; the run then rolls back).
 * The temporary file is removed however the read ends.
 */
export async function* zipUserPages(client: CpqHttpClient, config: CpqConfig, company: string, signal?: AbortSignal): AsyncGenerator<Page> {
  const url = zipExportUrl(client, config, company);
  const fail = (message: string) => new SyncError('data', `GET ${url}: zip export: ${oneLine(message)}`);
  const interrupted = () => {
    throwIfInterrupted(signal, `GET ${url}: interrupted`);
  };
  const dir = await makeZipTempDir(config.zip.tmpDir);
  let archive: ZipArchive | undefined;
  try {
    const path = join(dir, 'export.zip');
    const download = await client.downloadToFile(url, {
      accept: 'application/zip',
      path,
      maxBytes: config.zip.maxBytes,
      timeoutMs: config.zip.downloadTimeoutMs,
    });
    await checkIsZip(client, path, download);
    interrupted();
    archive = await ZipArchive.open(path, config.zip);
    const entries = await archive.userEntries();

    let pending: PendingRecord[] = [];
    // Each record's entry and place in it, for the errors normalization may raise later.
    let positions: string[] = [];
    let index = 0;
    // Characters of entry text read since `pending` was last empty: at least what it holds, so a page is cut before
    // `pending` can outgrow CPQ_MAX_PAGE_BYTES; once over, everything pending is cut into pages.
    let textSinceCut = 0;
    // And the fields of the CSV rows pending, already objects: a page of 1,000 rows of 2,000 short
    // cells (3.8 MB of text) held 94 MB of heap as objects, past the image's 192 MB with the next
    // (review DD). Cut, too, once they reach a body's bound of values.
    let rowFieldsSinceCut = 0;
    const limit = recordLimit(config.maxPageBytes);
    const pageRecords = (records: PendingRecord[]) => PageRecords.of(records.length, (i) => readPending(records[i]!, fail));
    const pageFrom = (at: number): Page => ({
      url,
      index: index++,
      items: pageRecords(pending.slice(at, at + config.pageSize)),
      positions: positions.slice(at, at + config.pageSize),
      totalResults: undefined,
    });
    const bodies: Body[] = [];
    for (const entry of entries) {
      const parser = entryParser(entry, limit, bodies, (record, where) => {
        if ('record' in record) rowFieldsSinceCut += Object.keys(record.record).length;
        pending.push(record);
        positions.push(`entry ${entry.name} ${where}`);
      });
      const decoder = new StringDecoder('utf8');
      try {
        for await (const chunk of archive.bytes(entry)) {
          interrupted();
          const text = decoder.write(chunk);
          textSinceCut += text.length;
          parser.write(text);
          while (pending.length >= config.pageSize || (pending.length > 0 && (textSinceCut >= config.maxPageBytes || rowFieldsSinceCut >= MAX_BODY_VALUES))) {
            const page = pageFrom(0);
            pending = pending.slice(page.items.length);
            positions = positions.slice(page.items.length);
            if (pending.length === 0) textSinceCut = rowFieldsSinceCut = 0;
            yield page;
          }
        }
        parser.write(decoder.end());
        parser.end();
      } catch (err) {
        if (err instanceof EntryContentError) throw fail(`entry ${entry.name}: ${err.message}`);
        throw err;
      }
    }
    const problem = listingProblem(bodies);
    if (problem !== undefined) throw fail(problem);
    // The list's size the bodies gave, on the last page: the run counts its users against it.
    const totalResults = bodies.reduce<number | undefined>(
      (max, b) => (b.totalResults === undefined || (max !== undefined && max >= b.totalResults) ? max : b.totalResults),
      undefined,
    );
    for (let at = 0; at < pending.length; at += config.pageSize) {
      interrupted();
      const page = pageFrom(at);
      yield at + config.pageSize >= pending.length && totalResults !== undefined ? { ...page, totalResults } : page;
    }
    if (pending.length === 0 && totalResults !== undefined) yield { ...pageFrom(0), totalResults };
  } catch (err) {
    if (err instanceof ArchiveError) throw fail(err.message);
    throw err;
  } finally {
    archive?.close();
    await removeZipTempDir(dir);
  }
}
