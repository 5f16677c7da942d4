import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

export type CopyValue = string | boolean | number | null | undefined;

const SPECIAL = /[\\\n\r\t]/g;
const HAS_SPECIAL = /[\\\n\r\t]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Whether a value needs escaping. Most values need none: testing first skips building a copy of
 * each. For long values (a user's raw JSON, ~4 KB) four `includes` scans are ~14x faster than the
 * character-class regex; for short ones the regex is a little faster.
 */
function needsEscape(value: string): boolean {
  if (value.length <= 32) return HAS_SPECIAL.test(value);
  return value.includes('\\') || value.includes('\n') || value.includes('\r') || value.includes('\t');
}

/** One value in COPY's text format. */
export function copyText(value: CopyValue): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'number') return String(value);
  return needsEscape(value) ? value.replace(SPECIAL, (c) => ESCAPES[c]!) : value;
}

/**
 * One row in COPY's text format, without its line end (CopyRows writes that): the values of
 * `parts` one after the other (a user's ~80 column values go in as one part, not spread into a
 * new array per row).
 */
export function copyLine(...parts: (readonly CopyValue[])[]): string {
  let count = 0;
  for (const part of parts) count += part.length;
  // join builds one flat string; += (or appending the line end) would build a rope that is
  // flattened again, a copy of the whole line, when it is written.
  const texts = new Array<string>(count);
  let k = 0;
  for (const part of parts) for (let i = 0; i < part.length; i++) texts[k++] = copyText(part[i]);
  return texts.join('\t');
}

const LINE_END = 0x0a;
/** The first piece of a CopyRows; each next one twice the last, up to LARGEST_PIECE (a row larger than that gets a piece of its own). */
const FIRST_PIECE = 1 << 16;
const LARGEST_PIECE = 1 << 20;

/**
 * Rows for one COPY in its text format, each turned into UTF-8 bytes as it is added (copyLine,
 * then a newline): a page's rows are then never held as strings, which the garbage collector
 * would copy while the page is worked through, and queued work holds bytes outside the JS heap.
 */
export class CopyRows {
  private readonly full: Buffer[] = [];
  private piece: Buffer | undefined;
  private at = 0;
  private count = 0;

  /** Adds one row: the values of `parts` one after the other (see copyLine). */
  add(...parts: (readonly CopyValue[])[]): void {
    const line = copyLine(...parts);
    // At most 3 bytes per UTF-16 unit, and the newline.
    const most = line.length * 3 + 1;
    if (this.piece === undefined || this.at + most > this.piece.length) {
      const size = this.piece === undefined ? FIRST_PIECE : Math.min(LARGEST_PIECE, this.piece.length * 2);
      if (this.piece !== undefined) this.full.push(this.piece.subarray(0, this.at));
      this.piece = Buffer.allocUnsafe(Math.max(size, most));
      this.at = 0;
    }
    this.at += this.piece.write(line, this.at);
    this.piece[this.at++] = LINE_END;
    this.count++;
  }

  /** How many rows were added. */
  get rows(): number {
    return this.count;
  }

  /**
   * The rows' bytes, in order, in pieces; the last piece copied to its size when most of it is
   * unused, so that queued work holds no more memory than its bytes.
   */
  bytes(): Buffer[] {
    if (this.piece === undefined) return [...this.full];
    const last = this.piece.subarray(0, this.at);
    return [...this.full, this.piece.length - this.at > FIRST_PIECE ? Buffer.from(last) : last];
  }
}

/**
 * COPY rows into a table on the given client (so inside its transaction). `target` is a table
 * name with its column list, built from constants by the caller, never from data.
 */
export async function copyRows(client: pg.PoolClient, target: string, bytes: readonly Buffer[]): Promise<void> {
  // A CopyRows without rows has no pieces.
  if (bytes.length === 0) return;
  const stream = client.query(copyFrom(`COPY ${target} FROM STDIN`));
  await pipeline(Readable.from(bytes), stream);
}
