import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { canonicalTimestampMs, subMillisecond } from '../date-time.js';

export type CopyValue = string | boolean | number | null | undefined;

/**
 * The Postgres types of the columns the sync writes with COPY. Rows go in COPY's binary format,
 * in which each type has its own form: Postgres then neither scans every byte for escapes (a
 * user's raw JSON is ~3 KB) nor parses text into timestamps and integers. On 100,000 users
 * COPY into cpq.users took 8.7-9.6 s as text and 7.4-7.5 s as binary (bench/RESULTS.md, session 7).
 */
export type CopyType = 'text' | 'boolean' | 'bigint' | 'integer' | 'timestamptz' | 'jsonb';

const TYPE_CODES: Record<CopyType, number> = { text: 0, boolean: 1, bigint: 2, integer: 3, timestamptz: 4, jsonb: 5 };
const { text: TEXT, boolean: BOOLEAN, bigint: BIGINT, integer: INTEGER, timestamptz: TIMESTAMPTZ, jsonb: JSONB } = TYPE_CODES;

/** A table and the columns a COPY fills, with their types, in COPY order. */
export interface CopyTarget {
  readonly table: string;
  /** `table (column, ...)`, built from constants, never from data. */
  readonly sql: string;
  readonly columns: readonly string[];
  /** TYPE_CODES of the columns. */
  readonly types: Uint8Array;
}

/** `columns`: name and Postgres type of each column, in the order rows give their values. */
export function copyTarget(table: string, columns: readonly (readonly [name: string, type: CopyType])[]): CopyTarget {
  return {
    table,
    sql: `${table} (${columns.map(([name]) => name).join(', ')})`,
    columns: columns.map(([name]) => name),
    types: Uint8Array.from(columns.map(([, type]) => TYPE_CODES[type])),
  };
}

/** The binary format's header: signature, flags (no OIDs) and an empty header extension. */
const HEADER = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
/** The trailer: a field count of -1. */
const TRAILER = Buffer.from([0xff, 0xff]);
/** The first piece of a CopyRows; each next one twice the last, up to LARGEST_PIECE (a value larger than that gets a piece of its own). */
const FIRST_PIECE = 1 << 16;
const LARGEST_PIECE = 1 << 20;
/** Strings up to this length are written byte by byte while they are ASCII (most are): cheaper than a call into Buffer.write. */
const SHORT_STRING = 48;
const TWO_32 = 2 ** 32;
/** 2000-01-01T00:00:00Z, the epoch of Postgres' binary timestamps (microseconds), in Unix milliseconds. */
const POSTGRES_EPOCH_MS = 946_684_800_000;
/**
 * Rows for one COPY in its binary format, each turned into bytes as it is added: a page's rows are
 * then never held as strings, which the garbage collector would copy while the page is worked
 * through, and queued work holds bytes outside the JS heap. A row may span two pieces: COPY
 * reads its input as one stream.
 */
export class CopyRows {
  private readonly full: Buffer[] = [];
  private piece: Buffer | undefined;
  private at = 0;
  private count = 0;

  constructor(readonly target: CopyTarget) {}

  /** Adds one row: the values of `parts` one after the other, one per column of the target. */
  add(...parts: (readonly CopyValue[])[]): void {
    const types = this.target.types;
    let total = 0;
    for (const part of parts) total += part.length;
    if (total !== types.length) throw new Error(`a row for ${this.target.table} has ${total} values, not ${types.length}`);
    // A value refused half-way through the row: the row's bytes are taken back, so that the rows
    // added before it (and after it) still make a valid COPY.
    const { piece, at } = this;
    const fullPieces = this.full.length;
    try {
      this.write(parts, total);
    } catch (err) {
      this.piece = piece;
      this.at = at;
      this.full.length = fullPieces;
      throw err;
    }
    this.count++;
  }

  private write(parts: (readonly CopyValue[])[], total: number): void {
    const types = this.target.types;
    if (this.piece === undefined) {
      this.piece = Buffer.allocUnsafe(FIRST_PIECE);
      HEADER.copy(this.piece, 0);
      this.at = HEADER.length;
    }
    this.room(2);
    this.piece[this.at++] = total >>> 8;
    this.piece[this.at++] = total & 0xff;
    let column = 0;
    for (const part of parts) {
      for (let i = 0; i < part.length; i++, column++) {
        const value = part[i];
        if (value === null || value === undefined) {
          this.room(4);
          this.int32(-1);
          continue;
        }
        switch (types[column]) {
          case TEXT:
            this.string(column, value, 0);
            break;
          case JSONB:
            this.string(column, value, 1);
            break;
          case BOOLEAN:
            if (typeof value !== 'boolean') this.wrong(column, value);
            this.room(5);
            this.int32(1);
            this.piece[this.at++] = value ? 1 : 0;
            break;
          case BIGINT:
            this.room(12);
            this.int32(8);
            this.int64(this.whole(column, value));
            break;
          case INTEGER: {
            const n = this.whole(column, value);
            if (typeof n !== 'number' || n < -(2 ** 31) || n >= 2 ** 31) this.wrong(column, value);
            this.room(8);
            this.int32(4);
            this.int32(n);
            break;
          }
          case TIMESTAMPTZ:
            this.room(12);
            this.int32(8);
            this.timestamp(column, value);
            break;
        }
      }
    }
  }

  /** How many rows were added. */
  get rows(): number {
    return this.count;
  }

  /**
   * The COPY input, in pieces (none without rows); the last piece copied to its size when most of
   * it is unused. (A full piece may keep some unused room: up to three bytes per character of the
   * value that did not fit in it.)
   */
  bytes(): Buffer[] {
    if (this.piece === undefined) return [];
    const last = this.piece.subarray(0, this.at);
    return [...this.full, this.piece.length - this.at > FIRST_PIECE ? Buffer.from(last) : last, TRAILER];
  }

  /** Makes room for `bytes` more bytes in the current piece. */
  private room(bytes: number): void {
    const piece = this.piece!;
    if (this.at + bytes <= piece.length) return;
    this.full.push(piece.subarray(0, this.at));
    this.piece = Buffer.allocUnsafe(Math.max(Math.min(LARGEST_PIECE, piece.length * 2), bytes));
    this.at = 0;
  }

  private int32(n: number): void {
    const piece = this.piece!;
    piece[this.at] = n >>> 24;
    piece[this.at + 1] = (n >>> 16) & 0xff;
    piece[this.at + 2] = (n >>> 8) & 0xff;
    piece[this.at + 3] = n & 0xff;
    this.at += 4;
  }

  /** A 64-bit integer: a safe integer as a number, or any as a bigint. */
  private int64(n: number | bigint): void {
    if (typeof n === 'bigint') {
      this.piece!.writeBigInt64BE(n, this.at);
      this.at += 8;
      return;
    }
    const high = Math.floor(n / TWO_32);
    this.int32(high);
    this.int32(n - high * TWO_32);
  }

  /** A whole number given as a number or in decimal digits: a number when safe, else a bigint (in int64's range). */
  private whole(column: number, value: CopyValue): number | bigint {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) this.wrong(column, value);
      return value;
    }
    if (typeof value !== 'string' || !/^-?\d{1,19}$/.test(value)) return this.wrong(column, value);
    if (value.length <= 15) return Number(value);
    const n = BigInt(value);
    if (n < -(2n ** 63n) || n >= 2n ** 63n) this.wrong(column, value);
    return n;
  }

  /** Microseconds since 2000-01-01 UTC, of a canonical date-time. */
  private timestamp(column: number, value: CopyValue): void {
    const ms = typeof value === 'string' ? canonicalTimestampMs(value) : undefined;
    if (ms === undefined) return this.wrong(column, value);
    // ms * 1000 exceeds 2^53 for most dates: multiplied in two halves, each exact.
    const since = ms - POSTGRES_EPOCH_MS;
    const high = Math.floor(since / TWO_32);
    const low = (since - high * TWO_32) * 1000 + subMillisecond(value as string);
    const carry = Math.floor(low / TWO_32);
    this.int32(high * 1000 + carry);
    this.int32(low - carry * TWO_32);
  }

  /** Text as UTF-8 (`prefix` 1: jsonb's version byte before it). */
  private string(column: number, value: CopyValue, prefix: 0 | 1): void {
    if (typeof value !== 'string') return this.wrong(column, value);
    const n = value.length;
    this.room(5 + n * 3);
    const piece = this.piece!;
    const start = this.at + 4 + prefix;
    if (prefix === 1) piece[this.at + 4] = 1;
    let bytes = 0;
    if (n <= SHORT_STRING) {
      while (bytes < n) {
        const c = value.charCodeAt(bytes);
        if (c >= 0x80) break;
        piece[start + bytes++] = c;
      }
    }
    // Written whole (again) when it is long or not ASCII; the room made above holds any string.
    if (bytes < n) bytes = piece.write(value, start, 'utf8');
    this.int32(bytes + prefix);
    this.at = start + bytes;
  }

  /** Refuses a value of the wrong type or form: a fault of the sync, named without the value, which may be a user's data. */
  private wrong(column: number, value: CopyValue): never {
    const what = typeof value === 'string' ? `a string of ${value.length} characters` : `a ${typeof value}`;
    throw new TypeError(`column ${this.target.columns[column]} of ${this.target.table} cannot take ${what}`);
  }
}

/**
 * COPY bytes made by a CopyRows (`bytes()`, taken when the COPY is queued) into its target, on
 * the given client (so inside its transaction); nothing for no pieces (no rows).
 */
export async function copyBytes(client: pg.PoolClient, target: CopyTarget, bytes: readonly Buffer[]): Promise<void> {
  if (bytes.length === 0) return;
  const stream = client.query(copyFrom(`COPY ${target.sql} FROM STDIN (FORMAT binary)`));
  await pipeline(Readable.from(bytes), stream);
}
