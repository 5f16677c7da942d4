import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

export type CopyValue = string | boolean | number | null | undefined;

const SPECIAL = /[\\\n\r\t]/g;
const HAS_SPECIAL = /[\\\n\r\t]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** One value in COPY's text format. */
export function copyText(value: CopyValue): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'number') return String(value);
  // Most values have nothing to escape: testing first skips building a copy of each.
  return HAS_SPECIAL.test(value) ? value.replace(SPECIAL, (c) => ESCAPES[c]!) : value;
}

export function copyLine(values: readonly CopyValue[]): string {
  // join builds one flat string; += would build a rope that is flattened again later.
  const texts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) texts[i] = copyText(values[i]);
  return `${texts.join('\t')}\n`;
}

/**
 * Lines as one UTF-8 buffer for copyRows, written in place (cheaper than joining them into a
 * string first). Made as soon as the lines are: queued work then holds bytes outside the JS heap,
 * not strings the garbage collector keeps walking.
 */
export function copyPayload(lines: string[]): Buffer {
  let size = 0;
  for (const line of lines) size += Buffer.byteLength(line);
  const buffer = Buffer.allocUnsafe(size);
  let at = 0;
  for (const line of lines) at += buffer.write(line, at);
  return buffer;
}

/**
 * COPY rows into a table on the given client (so inside its transaction). `target` is a table
 * name with its column list, built from constants by the caller, never from data.
 */
export async function copyRows(client: pg.PoolClient, target: string, payload: Buffer): Promise<void> {
  if (payload.length === 0) return;
  const stream = client.query(copyFrom(`COPY ${target} FROM STDIN`));
  await pipeline(Readable.from([payload]), stream);
}
