import { inspect } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import { expect } from 'vitest';
import { withCpq, type AppConfig } from '../../src/config.js';
import { SyncError } from '../../src/errors.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { ByteServer } from '../helpers/byte-server.js';
import { rowVersions } from '../helpers/db-equals-simulator.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { zipOf } from '../helpers/zip-bytes.js';

/*
 * A hostile CPQ for the test/security/cpq-* suites: the simulator (a real site with a few users,
 * synced once as the last good state) behind a loopback server that answers chosen paths with
 * exactly the bytes an attacker would send. Each attack is run as a real sync of one company.
 */

export interface HostileSite {
  h: Harness;
  front: ByteServer;
  /** Answers the users collection of `company` (JSON pages and zip export alike) with these bytes. */
  serve(company: string, body: Buffer | string, contentType?: string): void;
  /** One run of `company` only; `cpq` overrides settings of the CPQ config (baseUrl, caps...). */
  run(company: string, options?: { format?: 'json' | 'zip'; cpq?: Partial<NonNullable<AppConfig['cpq']>> }): Promise<{ result?: RunResult; error?: unknown }>;
  /** A run that must fail with a one-line SyncError and leave every table as it was; returns the error. */
  refused(company: string, options?: { format?: 'json' | 'zip'; cpq?: Partial<NonNullable<AppConfig['cpq']>> }): Promise<SyncError>;
  close(): Promise<void>;
}

export async function hostileSite(env: Record<string, string> = {}): Promise<HostileSite> {
  const front = new ByteServer();
  await front.start();
  const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 4, integrationUsers: 0 }, (simUrl) => {
    front.target = simUrl;
    return { CPQ_BASE_URL: front.url, CPQ_MAX_RETRIES: '0', ...env };
  });
  await h.sync();
  const run: HostileSite['run'] = async (company, options = {}) => {
    const config: AppConfig = withCpq(h.config, { companies: [company], exportFormat: options.format ?? 'json', ...options.cpq });
    try {
      // Attacks are served from addresses of their own too, each standing in for the site's CPQ:
      // moves of it (cpq.sites.cpq_url), said so, or every one after the first would be refused as one.
      return { result: await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log }, { cpqMoved: true }) };
    } catch (error) {
      return { error };
    }
  };
  return {
    h,
    front,
    serve: (company, body, contentType = 'application/json') =>
      front.serve(`/rest/v16/companies/${company}/users`, { status: 200, headers: { 'content-type': contentType }, body: Buffer.from(body) }),
    run,
    refused: async (company, options) => {
      const before = await rowVersions(h.t);
      const { error } = await run(company, options);
      if (!(error instanceof SyncError))
        throw new Error(
          `expected the run to fail with a SyncError, but it ${error ? `threw ${error instanceof Error ? String(error) : inspect(error)}` : 'succeeded'}`,
        );
      expect(error.message).not.toMatch(/[\r\n]/);
      expect(await rowVersions(h.t)).toEqual(before);
      return error;
    },
    close: async () => {
      await h.close();
      await front.stop();
    },
  };
}

/** A zip export holding these entries (deflated). */
export function zipExport(entries: { name: string; text: string }[]): Buffer {
  return zipOf(
    entries.map((e) => ({ name: e.name, data: Buffer.from(e.text, 'utf8'), deflate: true })),
    deflateRawSync,
  );
}

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Company `i` as a 4-character login name (62^4: 14.7 million of them), for company lists as long as a bound allows. */
export const fourCharacterName = (i: number) => Array.from({ length: 4 }, (_, d) => DIGITS[Math.floor(i / 62 ** d) % 62]).join('');
