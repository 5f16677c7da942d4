import { SyncError, oneLine, printable } from '../errors.js';
import { headOf } from '../exact-json.js';
import { bodyChunks } from '../fetch-body.js';

/*
 * Reading CPQ's response bodies within limits, and describing them (and network failures) in one
 * line for an error message, without the credentials we sent.
 */

export function describeNetworkError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no response within the request timeout';
  const cause = e.cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` ${cause.message}` : ''}`;
  return e.message;
}

/**
 * Whether fetch refused the request's port before sending it: undici blocks the WHATWG "bad ports"
 * (6000, 6665-6669, 10080, …) with the cause "bad port". No retry changes that.
 */
export function isBadPort(err: unknown): boolean {
  return (err as { cause?: { message?: unknown } } | null)?.cause?.message === 'bad port';
}

/**
 * JSON.parse's message without the few characters of the body V8 quotes in it (`Unexpected
 * token 'B', "Basic dXNl"... is not valid JSON`): cut from the body at any length, they may hold
 * the start of a credential that a gateway echoed back, too short for quotesSecret to tell from any text.
 */
export function withoutBodyExcerpt(jsonError: string): string {
  // V8 writes the excerpt in double quotes, after the token ('B'), with or without dots around
  // it; its other messages hold none. Everything from the first double quote on goes.
  const quote = jsonError.indexOf('"');
  return quote < 0 ? jsonError : jsonError.slice(0, quote).replace(/[\s,.]+$/, '');
}

/**
 * What an Authorization header we sent keeps secret: its credential (the part after the scheme: a
 * token, or Basic's base64) and, for Basic, the password.
 */
export function headerSecrets(header: string): { credential: string; password?: string } {
  const credential = header.replace(/^\S+\s+/, '');
  if (!/^basic\s/i.test(header)) return { credential };
  const pair = Buffer.from(credential, 'base64').toString('utf8');
  return { credential, password: pair.slice(pair.indexOf(':') + 1) };
}

/** The secrets of Authorization headers we sent that quotesSecret looks for: each credential, and Basic's password. */
export function credentialSecrets(authorizations: Iterable<string>): string[] {
  const secrets: string[] = [];
  for (const header of authorizations) {
    const { credential, password } = headerSecrets(header);
    secrets.push(credential);
    if (password !== undefined) secrets.push(password);
  }
  return secrets;
}

/**
 * How many characters of a credential in a row make a text one that quotes it (quotesSecret); and
 * the shortest credential CpqHttpClient looks for in the bodies it reads (credentialEcho).
 */
export const CREDENTIAL_ECHO_CHARS = 8;

export function describeBody(text: string, contentType: string | null): string {
  const head = oneLine(headOf(text, 60));
  if (text.trim() === '') return 'an empty body';
  if (/html/i.test(contentType ?? '') || /^\s*</.test(text)) return `an HTML page ("${head}…")`;
  return `"${head}${text.length > 60 ? '…' : ''}"`;
}

/**
 * The Content-Encoding of a response, for a message, when it has one other than identity; else
 * undefined. fetch decodes such a body unseen, whatever was asked for.
 */
export function contentEncoding(response: Response): string | undefined {
  const encoding = response.headers.get('content-encoding')?.trim();
  return encoding && encoding.toLowerCase() !== 'identity' ? JSON.stringify(printable(encoding.slice(0, 40))) : undefined;
}

/**
 * The content codings Node's fetch decodes (its bundled undici 6): gzip, x-gzip, deflate (with
 * zlib's wrapper or raw) and br, in any case. It decodes a Content-Encoding that lists only these,
 * one after another (`gzip, gzip`); one that names any other coding (zstd) it leaves as sent,
 * the whole body, and tells nobody.
 */
export const FETCH_DECODED_CODINGS: readonly string[] = ['gzip', 'x-gzip', 'deflate', 'br'];

/** The magic bytes a compressed format's data begins with, by the format's name (brotli and raw deflate have none). */
const COMPRESSED_MAGIC: [string, Buffer][] = [
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
];

/** A body readBodyCapped read: its text, and what an error about the text says of its bytes. */
export interface BodyText {
  text: string;
  /** How many bytes fetch gave: the body as decoded from a Content-Encoding fetch decodes, else as sent. */
  bytes: number;
  /** The compressed format (COMPRESSED_MAGIC) whose magic bytes those bytes begin with, if any. */
  compressedAs: string | undefined;
}

/**
 * What the bytes of a body that is not JSON show of its Content-Encoding, for the end of an error
 * message (after a colon), or undefined when there is nothing to say: `decoded` when fetch decoded
 * the body (the clause then says the bytes it decoded to). Node's fetch does not check that a
 * compressed body ends whole (undici decodes with Z_SYNC_FLUSH, as curl does): 40 bytes of a
 * gzipped page decoded to nothing, 70% of one to JSON that stops mid-string, and each failed as
 * "an empty body" or "not valid JSON" with the decoded length alone. Nor does it say when it
 * leaves a body as sent: a gzip sent without Content-Encoding, or with one fetch does not decode,
 * failed on its first byte (`Unexpected token '\x1f'`) with nothing naming the encoding.
 */
export function describeBodyEncoding(response: Response, body: BodyText): { clause: string; decoded: boolean } | undefined {
  const named = contentEncoding(response);
  const format = body.compressedAs;
  const magic = format === undefined ? undefined : `${format}'s magic bytes`;
  if (named === undefined) {
    return magic === undefined
      ? undefined
      : { clause: `the body starts with ${magic} but no Content-Encoding says ${format}, so it was read as sent`, decoded: false };
  }
  const codings = response.headers.get('content-encoding')!.toLowerCase().split(',');
  const undecoded = codings.map((coding) => coding.trim()).find((coding) => !FETCH_DECODED_CODINGS.includes(coding));
  if (undecoded !== undefined) {
    const which = codings.length === 1 ? 'which' : `whose ${JSON.stringify(printable(undecoded.slice(0, 40)))}`;
    return {
      clause: `the body came with Content-Encoding ${named}, ${which} this client does not decode (it decodes ${FETCH_DECODED_CODINGS.slice(0, -1).join(', ')} and ${FETCH_DECODED_CODINGS.at(-1)!}), so it was read as sent${magic === undefined ? '' : `; it starts with ${magic}`}`,
      decoded: false,
    };
  }
  const announced = response.headers.get('content-length');
  // Nothing sent is no compressed body: an empty body, as said.
  if (announced !== null && /^0+$/.test(announced)) return undefined;
  const sent = announced !== null && /^\d+$/.test(announced) ? ` (${announced} bytes)` : '';
  const blank = body.text.trim() === '';
  const decodedTo = body.bytes === 0 ? 'nothing' : blank ? `${body.bytes} bytes of white space` : `${body.bytes} bytes`;
  // Said of what a cut body looks like, not that this one was cut: a whole gzip of an empty or
  // cut text decodes the same, and nothing here tells the two apart.
  const what =
    magic !== undefined
      ? ` that start with ${magic}`
      : blank || endsMidJson(body.text)
        ? `${blank ? '' : ' that stop mid-JSON'}, as a compressed body cut short does (fetch does not check that one ends whole)`
        : '';
  return { clause: `the body sent with Content-Encoding ${named}${sent} decoded to ${decodedTo}${what}`, decoded: true };
}

/**
 * Whether `text` stops before its JSON ends: JSON.parse fails at its end ("Unexpected end of JSON
 * input", or a position that is the text's length), not at a character inside it.
 */
function endsMidJson(text: string): boolean {
  try {
    JSON.parse(text);
    return false;
  } catch (err) {
    const message = (err as Error).message;
    const at = /at position (\d+)/.exec(message)?.[1];
    return /end of JSON input/.test(message) || (at !== undefined && Number(at) >= text.length);
  }
}

/** The first bytes of an error body as text, without reading a possibly huge body to the end; `signal`: the request's (see bodyChunks). */
export async function readHead(response: Response, maxBytes: number, signal: AbortSignal | undefined): Promise<string> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const value of bodyChunks(response, signal)) {
    parts.push(value);
    size += value.byteLength;
    if (size >= maxBytes) break;
  }
  return Buffer.concat(parts).subarray(0, maxBytes).toString('utf8');
}

/**
 * The body as text, read piece by piece and refused as soon as it is larger than `maxBytes`
 * (announced in Content-Length, or as fetch gives it: decoded from any Content-Encoding it
 * decodes, FETCH_DECODED_CODINGS), so an endless, huge or highly compressed body never fills memory.
 * Decoded like Response.text(): UTF-8, a byte-order mark dropped, bad bytes as U+FFFD; but a
 * body that is not valid UTF-8 and whose Content-Type names another charset is decoded in that
 * one, or refused when it could be either (decodeBody). `signal`: the request's (see bodyChunks).
 */
export async function readBodyCapped(response: Response, url: string, maxBytes: number, signal: AbortSignal | undefined): Promise<BodyText> {
  const tooLarge = () => new SyncError('data', `GET ${url}: the response is larger than CPQ_MAX_PAGE_BYTES (${maxBytes} bytes); refused`);
  const announced = Number(response.headers.get('content-length') ?? NaN);
  if (announced > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const value of bodyChunks(response, signal)) {
    size += value.byteLength;
    if (size > maxBytes) throw tooLarge();
    parts.push(value);
  }
  const bytes = Buffer.concat(parts, size);
  return {
    text: decodeBody(bytes, response.headers.get('content-type'), url),
    bytes: size,
    compressedAs: COMPRESSED_MAGIC.find(([, magic]) => bytes.subarray(0, magic.length).equals(magic))?.[0],
  };
}

/**
 * JSON is UTF-8 (RFC 8259), and many servers label it with a charset it is not written in (a
 * Java server's default ISO-8859-1 on UTF-8 bytes): a body that is valid UTF-8 is read as UTF-8,
 * whatever its label says. One that is not, labelled with another charset, is written in that one
 * (a proxy or server that encodes as it says, Müller as the one byte 0xFC; read as UTF-8, each
 * such byte would become U+FFFD and the name be stored altered), unless it also holds valid
 * multi-byte UTF-8 sequences: then it may be UTF-8 with a stray byte (read in a one-byte charset,
 * every ü of the page would become Ã¼) as well as text in that charset (É’ in windows-1252, most
 * of GBK), and which it is cannot be told: refused, as is a charset with no decoder here, rather
 * than a page's names stored altered by a guess (review CZ). A body without a charset, or
 * labelled UTF-8, is decoded as UTF-8 with U+FFFD for bad bytes, as Response.text() does.
 */
export function decodeBody(bytes: Uint8Array, contentType: string | null, url: string): string {
  const label = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '')?.[1]?.trim();
  if (label === undefined || label === '' || utf8Label(label)) return new TextDecoder().decode(bytes);
  const utf16 = utf16Encoding(label, bytes);
  if (utf16 !== undefined) return decodeUtf16(bytes, utf16, label, url);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Not UTF-8 throughout.
  }
  const named = JSON.stringify(printable(label.slice(0, 40)));
  if (holdsUtf8Sequence(bytes)) {
    throw new SyncError(
      'data',
      `GET ${url}: the response is not valid UTF-8 (byte ${firstBadByte(bytes)} is not) yet holds UTF-8 sequences, and its Content-Type names the charset ${named}: which one it is written in cannot be told; refused rather than store altered text`,
    );
  }
  let text: string;
  try {
    // The constructor refuses a label it has no decoder for; decoding (not fatal) throws nothing.
    text = new TextDecoder(label).decode(bytes);
  } catch {
    throw new SyncError(
      'data',
      `GET ${url}: the response is not valid UTF-8, and its Content-Type names the charset ${named}, which cannot be decoded here; refused rather than store altered text`,
    );
  }
  return text;
}

/**
 * The length of the valid multi-byte UTF-8 sequence that starts at `i` (a lead byte and its
 * continuation bytes, as RFC 3629 allows them: no overlong form, surrogate or code point past
 * U+10FFFF), or 0.
 */
function utf8SequenceAt(bytes: Uint8Array, i: number): number {
  const continuation = (at: number, low = 0x80, high = 0xbf) => at < bytes.length && bytes[at]! >= low && bytes[at]! <= high;
  const lead = bytes[i]!;
  if (lead < 0xc2 || lead > 0xf4) return 0;
  if (lead <= 0xdf) return continuation(i + 1) ? 2 : 0;
  if (lead <= 0xef) {
    const [low, high] = lead === 0xe0 ? [0xa0, 0xbf] : lead === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return continuation(i + 1, low, high) && continuation(i + 2) ? 3 : 0;
  }
  const [low, high] = lead === 0xf0 ? [0x90, 0xbf] : lead === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
  return continuation(i + 1, low, high) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
}

/** Whether `bytes` hold a valid multi-byte UTF-8 sequence anywhere. */
function holdsUtf8Sequence(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (utf8SequenceAt(bytes, i) > 0) return true;
  return false;
}

/** The offset of the first byte that neither is ASCII nor begins a valid UTF-8 sequence: for an operator to find it. */
function firstBadByte(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const step = bytes[i]! < 0x80 ? 1 : utf8SequenceAt(bytes, i);
    if (step === 0) return i;
    i += step;
  }
  return i;
}

/**
 * The UTF-16 a body labelled UTF-16 is written in, when it shows it is: a byte-order mark (which
 * decides the byte order, whatever the label says, as the WHATWG decode does), or a NUL byte, which
 * UTF-16 has in every ASCII character and JSON in UTF-8 never holds (outside strings only
 * whitespace may stand, inside them a control character is escaped). Read as UTF-8 first, as
 * other labels are, an honest UTF-16 page of ASCII text was valid UTF-8 full of NULs, and refused
 * as "not valid JSON" (review DW). Otherwise (no label of UTF-16, or bytes without either sign)
 * undefined: the UTF-8 rule applies.
 */
function utf16Encoding(label: string, bytes: Uint8Array): 'utf-16le' | 'utf-16be' | undefined {
  let encoding: string;
  try {
    encoding = new TextDecoder(label).encoding;
  } catch {
    return undefined;
  }
  if (encoding !== 'utf-16le' && encoding !== 'utf-16be') return undefined;
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return 'utf-16be';
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return 'utf-16le';
  return bytes.includes(0) ? encoding : undefined;
}

/** `bytes` in that UTF-16 (a byte-order mark dropped), or refused naming the label when they are not (an odd length, an unpaired surrogate). */
function decodeUtf16(bytes: Uint8Array, encoding: 'utf-16le' | 'utf-16be', label: string, url: string): string {
  try {
    return new TextDecoder(encoding, { fatal: true }).decode(bytes);
  } catch {
    throw new SyncError(
      'data',
      `GET ${url}: the response is not valid ${encoding.toUpperCase()}, the charset its Content-Type names (${JSON.stringify(printable(label.slice(0, 40)))}); refused rather than store altered text`,
    );
  }
}

/** Whether a charset label is one of UTF-8's (utf8, unicode-1-1-utf-8, x-unicode20utf8, …, as the WHATWG decoder reads labels). */
function utf8Label(label: string): boolean {
  try {
    return new TextDecoder(label).encoding === 'utf-8';
  } catch {
    return false;
  }
}
