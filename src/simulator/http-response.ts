import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  /** Bytes only for a response kept by the simulator's page cache. */
  body: string | Buffer;
  /** A body produced while it is sent (the zip export), sent chunked instead of `body`. */
  stream?: Readable;
  /** Users in the body (a collection page), for the simulated latency. */
  users?: number;
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

export function jsonText(status: number, body: string, headers: Record<string, string> = {}): HttpResponse {
  return { status, headers: { 'content-type': JSON_CONTENT_TYPE, ...headers }, body };
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return jsonText(status, JSON.stringify(body), headers);
}

/** CPQ documents no error body format; this small JSON shape is the simulator's choice. */
export function errorResponse(status: number, detail: string, headers: Record<string, string> = {}): HttpResponse {
  return jsonResponse(status, { title: STATUS_CODES[status] ?? 'Error', status, detail }, headers);
}

/** The body as bytes, whether kept as text or as bytes. */
export function bodyBytes(response: HttpResponse): Buffer {
  return typeof response.body === 'string' ? Buffer.from(response.body, 'utf8') : response.body;
}
