import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Fault } from './faults.js';
import { bodyBytes, errorResponse, type HttpResponse } from './http-response.js';

/* How the simulator reads a request body and writes a response: whole, streamed, or cut short by a fault. */

const MAX_REQUEST_BODY_BYTES = 1 << 20;
/** How much of a streamed body a `reset` fault lets through. */
const TRUNCATED_STREAM_BYTES = 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function faultResponse(fault: Fault): HttpResponse {
  const status = fault.status ?? 500;
  const headers = { ...fault.headers };
  if (fault.body === undefined) return status === 204 || status === 304 ? { status, headers, body: '' } : errorResponse(status, 'Simulated fault.', headers);
  const hasContentType = Object.keys(headers).some((name) => name.toLowerCase() === 'content-type');
  if (!hasContentType) headers['content-type'] = fault.body.trimStart().startsWith('<') ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8';
  return { status, headers, body: fault.body };
}

/** The fault's status/headers/body replace those of the real response where given. */
export function overlayFault(response: HttpResponse, fault: Fault): HttpResponse {
  return {
    status: fault.status ?? response.status,
    headers: { ...response.headers, ...fault.headers },
    body: fault.body ?? response.body,
    ...(fault.body === undefined && response.stream ? { stream: response.stream } : {}),
  };
}

export function send(res: ServerResponse, record: { status: number }, response: HttpResponse): void {
  record.status = response.status;
  const stream = response.stream;
  if (res.destroyed) {
    stream?.destroy();
    return;
  }
  if (stream) {
    // Length unknown while the body is being built: sent chunked.
    res.writeHead(response.status, response.headers);
    pipeline(stream, res).catch(() => res.destroy());
    return;
  }
  const body = bodyBytes(response);
  res.writeHead(response.status, { ...response.headers, 'content-length': String(body.length) });
  res.end(body);
}

/** Announces the full length, sends about half, then kills the connection. */
export function sendTruncated(res: ServerResponse, record: { status: number }, response: HttpResponse): void {
  record.status = response.status;
  if (response.stream) {
    void sendStreamStart(res, response, response.stream);
    return;
  }
  const body = bodyBytes(response);
  const announced = Math.max(body.length, 1);
  res.writeHead(response.status, { ...response.headers, 'content-length': String(announced) });
  res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
}

/** A streamed body cut short: its first bytes, then the connection is killed. */
async function sendStreamStart(res: ServerResponse, response: HttpResponse, stream: Readable): Promise<void> {
  res.writeHead(response.status, response.headers);
  let sent = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const part = chunk.subarray(0, TRUNCATED_STREAM_BYTES - sent);
      sent += part.length;
      if (sent >= TRUNCATED_STREAM_BYTES) {
        res.write(part, () => res.destroy());
        return;
      }
      res.write(part);
    }
    res.destroy();
  } catch {
    res.destroy();
  } finally {
    stream.destroy();
  }
}
