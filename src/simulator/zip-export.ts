import { createReadStream } from 'node:fs';
import { isLosslessNumber } from 'lossless-json';
import type { HttpResponse } from './http-response.js';
import { RawJson, stringifyWire } from './json.js';
import { toWireUser, type UserWireShape } from './serialize.js';
import type { StoredUser } from './store.js';
import { zipStream, type ZipEntryDamage, type ZipWriterEntry } from './zip-writer.js';

/*
 * The zip export of a company's users (`Accept: application/zip`). Oracle does not publish its
 * content; this serves what the product supports (see /work/shared/cpq-api/README.md): `.json`
 * (collection body or array), `.jsonl` and `.csv` entries holding the same users, fields and
 * drift as the JSON collection (groups and access permissions always expanded), in login order.
 * The archive is built while it is sent: nothing but the current piece is held.
 */

export type ZipEntryFormat = 'json' | 'json-array' | 'jsonl' | 'csv';

/** Broken exports, for tests; each damages the first user entry (or the whole archive). */
export type ZipExportFault =
  | 'truncated'
  | 'bad-crc'
  | 'corrupt-data'
  | 'understated-size'
  | 'bomb'
  | 'encrypted'
  | 'unsupported-method'
  | 'too-many-entries'
  | 'not-a-zip'
  /** One byte of the entry's name in the central directory damaged into "/": named like a folder, holding data. */
  | 'folder-name';

export interface ZipExportOptions {
  /** User entries; the users are dealt to them as consecutive slices in login order. Default one `users.json` (collection body). */
  entries?: ReadonlyArray<{ format: ZipEntryFormat; name?: string }>;
  /** Default deflate. */
  compression?: 'deflate' | 'store';
  /** zip64 records whatever the sizes. */
  zip64?: boolean;
  /** Put the user entries in this folder (written as a folder entry too). */
  folder?: string;
  /** More entries with fixed content (an unknown type, a README...). */
  extraEntries?: ReadonlyArray<{ name: string; content?: string }>;
  fault?: ZipExportFault;
  /** Serve this file's bytes instead (archives made by other tools, for tests). */
  archiveFile?: string;
}

const ZIP_CONTENT_TYPE = 'application/zip';
/** Zip-bomb padding: compresses about 1000 to 1. */
const BOMB_PADDING_BYTES = 4 * 1024 * 1024;
const BATCH_CHARS = 64 * 1024;
/** One past the client's default CPQ_ZIP_MAX_ENTRIES. */
const TOO_MANY_ENTRIES = 1001;

const EXTENSION: Record<ZipEntryFormat, string> = { json: 'json', 'json-array': 'json', jsonl: 'jsonl', csv: 'csv' };

/** Joins small pieces into chunks of about BATCH_CHARS. */
function* batched(pieces: Iterable<string>): Generator<string> {
  let batch = '';
  for (const piece of pieces) {
    batch += piece;
    if (batch.length >= BATCH_CHARS) {
      yield batch;
      batch = '';
    }
  }
  if (batch !== '') yield batch;
}

function* jsonContent(users: readonly StoredUser[], wire: (user: StoredUser) => string, envelope: boolean): Generator<string> {
  yield envelope ? '{"items":[' : '[';
  let first = true;
  for (const user of users) {
    yield (first ? '' : ',') + wire(user);
    first = false;
  }
  yield envelope ? `],"count":${users.length},"hasMore":false}` : ']';
}

function* jsonLinesContent(users: readonly StoredUser[], wire: (user: StoredUser) => string): Generator<string> {
  for (const user of users) yield `${wire(user)}\n`;
}

// ------------------------------------------------------------------ CSV

// An exact number literal (RawJson, LosslessNumber) is one cell, not an object of dotted columns.
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !isLosslessNumber(v) && !(v instanceof RawJson);

/** Header spellings the CSV uses when drift is on, to exercise case-insensitive names and aliases. */
const CSV_HEADER_DRIFT: Record<string, string> = {
  lastName: 'lastname',
  isUserAdminPermEnabled: 'isSuperUserPermEnabled',
  email: 'EMAIL',
  'timeZone.value': 'TimeZone.Value',
  'timeZone.displayValue': 'timezone.displayvalue',
};

interface CsvColumn {
  header: string;
  value: (record: Record<string, unknown>) => unknown;
}

function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = isLosslessNumber(value)
    ? value.value
    : value instanceof RawJson
      ? value.text
      : typeof value === 'object'
        ? JSON.stringify(value)
        : typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint'
          ? String(value)
          : typeof value; // a function or a symbol: nothing a record holds
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Columns: every field any user has (first-seen order), objects as dotted columns, groups as a ;-list. */
function csvColumns(users: readonly StoredUser[], keep: (key: string) => boolean, drift: boolean): CsvColumn[] {
  const columns = new Map<string, CsvColumn>();
  const add = (path: string, value: (record: Record<string, unknown>) => unknown) => {
    if (!columns.has(path)) columns.set(path, { header: drift ? (CSV_HEADER_DRIFT[path] ?? path) : path, value });
  };
  for (const { record } of users) {
    for (const [key, value] of Object.entries(record)) {
      if (!keep(key) || key === 'accessPermissions') continue;
      if (key === 'groups') {
        add(key, (r) => ((r.groups as { items?: { variableName: string }[] } | undefined)?.items ?? []).map((g) => g.variableName).join(';'));
      } else if (isPlainObject(value)) {
        for (const sub of Object.keys(value)) add(`${key}.${sub}`, (r) => (isPlainObject(r[key]) ? r[key][sub] : undefined));
      } else {
        add(key, (r) => r[key]);
      }
    }
  }
  return [...columns.values()];
}

function* csvContent(users: readonly StoredUser[], columns: readonly CsvColumn[]): Generator<string> {
  yield `${columns.map((c) => csvCell(c.header)).join(',')}\r\n`;
  for (const { record } of users) yield `${columns.map((c) => csvCell(c.value(record))).join(',')}\r\n`;
}

// ------------------------------------------------------------------ the archive

export interface ZipExportSource {
  /** The company's users in login order. */
  users: readonly StoredUser[];
  /** The shape the JSON collection gives each user. */
  shapeFor: (user: StoredUser) => UserWireShape;
  drift: boolean;
}

function damageFor(fault: ZipExportFault | undefined): ZipEntryDamage | undefined {
  switch (fault) {
    case 'bad-crc':
      return { crcXor: 0x1 };
    case 'corrupt-data':
      return { corruptDeflate: true };
    case 'understated-size':
      return { declaredSize: (actual) => Math.floor(actual / 2) };
    case 'encrypted':
      return { encryptedFlag: true };
    case 'unsupported-method':
      return { methodCode: 12 }; // bzip2
    case 'folder-name':
      return { directoryName: (name) => `${name.slice(0, -1)}/` };
    default:
      return undefined;
  }
}

function* bombPadding(): Generator<string> {
  const block = '\n'.repeat(BATCH_CHARS);
  for (let sent = 0; sent < BOMB_PADDING_BYTES; sent += block.length) yield block;
}

export function zipExportResponse(options: ZipExportOptions, source: ZipExportSource): HttpResponse {
  const headers = { 'content-type': ZIP_CONTENT_TYPE, 'content-disposition': 'attachment; filename="users.zip"' };
  if (options.archiveFile) return { status: 200, headers, body: '', stream: createReadStream(options.archiveFile) };
  if (options.fault === 'not-a-zip') {
    return { status: 200, headers, body: '<html><body><h1>Export</h1><p>Your export is being prepared.</p></body></html>' };
  }
  const { users, shapeFor, drift } = source;
  const wire = (user: StoredUser) => stringifyWire(toWireUser(user, shapeFor(user)));
  const specs = options.entries ?? [{ format: 'json' as const }];
  const folder = options.folder ? `${options.folder.replace(/\/+$/, '')}/` : '';
  const perEntry = Math.ceil(users.length / Math.max(1, specs.length));

  const entries: ZipWriterEntry[] = [];
  if (options.fault === 'too-many-entries') {
    for (let i = 0; i < TOO_MANY_ENTRIES; i++) entries.push({ name: `parts/${String(i).padStart(5, '0')}/` });
  }
  if (folder) entries.push({ name: folder });
  specs.forEach((spec, k) => {
    const slice = users.slice(k * perEntry, (k + 1) * perEntry);
    const name = folder + (spec.name ?? (specs.length === 1 ? `users.${EXTENSION[spec.format]}` : `users-${k + 1}.${EXTENSION[spec.format]}`));
    const first = k === 0;
    const content = () => {
      let pieces: Iterable<string>;
      if (spec.format === 'csv') {
        // The fields the JSON collection shows (v16 has no party keys, company users no company).
        const shape = users[0] && shapeFor(users[0]);
        const keep = (key: string) =>
          !shape || ((shape.includePartyKeys || (key !== 'partyId' && key !== 'partyNumber')) && (shape.includeCompany || key !== 'company'));
        pieces = csvContent(slice, csvColumns(users, keep, drift));
      } else if (spec.format === 'jsonl') pieces = jsonLinesContent(slice, wire);
      else pieces = jsonContent(slice, wire, spec.format === 'json');
      const parts = [pieces];
      if (first && options.fault === 'bomb') parts.push(bombPadding());
      return batched(
        (function* () {
          for (const part of parts) yield* part;
        })(),
      );
    };
    const damage = first ? damageFor(options.fault) : undefined;
    entries.push({
      name,
      content,
      compression: damage?.corruptDeflate || options.fault === 'bomb' ? 'deflate' : (options.compression ?? 'deflate'),
      ...(damage ? { damage } : {}),
    });
  });
  for (const extra of options.extraEntries ?? []) entries.push({ name: extra.name, content: () => [extra.content ?? ''] });

  const stream = zipStream(entries, { zip64: options.zip64 === true, ...(options.fault === 'truncated' ? { dropLastBytes: 100 } : {}) });
  return { status: 200, headers, body: '', stream };
}
