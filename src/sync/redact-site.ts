import type pg from 'pg';
import { redactExpired, type RedactedRows } from '../db/sql/redact-personal.js';

/**
 * Redacts `site`'s personal fields that HISTORY_RETENTION says expired before `retainedFrom`, in a
 * transaction of its own on `client`, whose caller holds the site's sync lock: outside a run (a
 * site the configuration no longer names, or one whose run just failed).
 */
export async function redactSiteOutsideRun(client: pg.PoolClient, site: string, retainedFrom: Date): Promise<RedactedRows> {
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    const redacted = await redactExpired(client, site, retainedFrom);
    await client.query('COMMIT');
    return redacted;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
