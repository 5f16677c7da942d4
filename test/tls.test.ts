import type { Server } from 'node:tls';
import { describe, expect } from 'vitest';
import { it as harnessIt, type Harness } from './helpers/harness.js';
import { TEST_CERT_FILE, frontUrl, tlsFront } from './helpers/tls-front.js';

/**
 * `it` with `harnessBehindTls(env)`: a harness whose simulator is also served over TLS, and the
 * HTTPS address of that front; the front is closed when the test ends.
 */
const it = harnessIt.extend('harnessBehindTls', async ({ startHarness }, { onCleanup }) => {
  const fronts: Server[] = [];
  onCleanup(() => {
    for (const front of fronts.splice(0)) front.close();
  });
  return async (env: Record<string, string>): Promise<{ h: Harness; url: string }> => {
    let port = 0;
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 0 }, (baseUrl) => {
      port = Number(new URL(baseUrl).port);
      return env;
    });
    const front = await tlsFront(port);
    fronts.push(front);
    return { h, url: frontUrl(front) };
  };
});

describe('HTTPS to CPQ', () => {
  it('verifies the certificate: an unknown CA fails the run with a clear error', async ({ harnessBehindTls }) => {
    const { h, url } = await harnessBehindTls({ CPQ_MAX_RETRIES: '0' });
    const { loadConfig } = await import('../src/config.js');
    const { runSync } = await import('../src/sync/run.js');
    const config = loadConfig({ CPQ_BASE_URL: url, DATABASE_URL: h.t.url, CPQ_MAX_RETRIES: '0' });
    await expect(runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log })).rejects.toThrow(
      /CPQ unreachable after 1 attempt \(.*(SELF_SIGNED|UNABLE_TO_VERIFY|self-signed).*\)/i,
    );
  });

  it('trusts a private CA given in CPQ_CA_FILE', async ({ harnessBehindTls }) => {
    const { h, url } = await harnessBehindTls({});
    const { loadConfig } = await import('../src/config.js');
    const { runSync } = await import('../src/sync/run.js');
    const config = loadConfig({ CPQ_BASE_URL: url, DATABASE_URL: h.t.url, CPQ_CA_FILE: TEST_CERT_FILE });
    const result = await runSync({ pool: h.t.pool, db: h.t.db, config, log: h.log });
    expect(result.inserted).toBe(3);
  });
});
