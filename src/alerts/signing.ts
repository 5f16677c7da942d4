import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries an alert's signature. */
export const SIGNATURE_HEADER = 'X-Cpq-Sync-Signature';
/** The header that carries an alert's idempotency key (also in the body). */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** `sha256=<hex>`: HMAC-SHA256 of the raw body bytes under the shared secret. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** Whether `header` is the signature of `body` under `secret`, compared in constant time (what a receiver does). */
export function verifySignature(body: string, header: string | undefined, secret: string): boolean {
  if (header === undefined) return false;
  const expected = Buffer.from(signBody(body, secret));
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
