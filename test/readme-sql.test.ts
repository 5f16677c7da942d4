import { readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { itWithFileHarness } from './helpers/fixtures.js';

/** The statements of each ```sql block in the README, comments left out. */
const blocks = [...readFileSync(new URL('../README.md', import.meta.url), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)].map((m) =>
  m[1]!
    .split(/;\s*\n/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s !== ''),
);
const makesReportingLogin = (block: string[]) => block.some((s) => /^CREATE ROLE reporting\b/.test(s));
/** The read-only access block: a DBA makes the reporting login with it. */
const roleSetUp = blocks.filter(makesReportingLogin).flat();
/** Every other example: what the people who report run, as that login. */
const reportingQueries = blocks.filter((b) => !makesReportingLogin(b)).flat();

// The README's `CREATE ROLE reporting` makes a role of the whole server, which an earlier run of
// this file on the same server (TEST_DATABASE_URL) left behind: gone first, so that it runs again.
const it = itWithFileHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 20, integrationUsers: 2 }, { CPQ_COMPANIES: '*' }, async (h) => {
  await h.t.query('DROP ROLE IF EXISTS reporting');
  await h.sync();
  for (const statement of roleSetUp) await h.t.query(statement);
});

describe('README SQL examples', () => {
  it('has examples, and the read-only access block that makes the reporting login', () => {
    expect(reportingQueries.length).toBeGreaterThan(5);
    expect(roleSetUp).toEqual([expect.stringMatching(/^CREATE ROLE reporting LOGIN/), 'GRANT cpq_reader TO reporting']);
  });
  // Run as the README's reporting login (member of cpq_reader only), not as the test's superuser:
  // an example that needs a right cpq_reader lacks fails here as it would for the people it is for.
  it.for(reportingQueries.map((s) => [s.split('\n')[0]!, s] as const))('runs as the reporting login: %s', async ([, statement], { h }) => {
    const client = await h.t.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL ROLE reporting');
      const { rows } = await client.query<{ current_user: string }>('SELECT current_user');
      expect(rows[0]!.current_user).toBe('reporting');
      await expect(client.query(statement)).resolves.toBeDefined();
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
