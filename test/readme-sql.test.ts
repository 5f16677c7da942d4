import { readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { itWithFileHarness } from './helpers/fixtures.js';

/** Every statement of every ```sql block in the README: the manual's examples must run. */
const statements = [...readFileSync(new URL('../README.md', import.meta.url), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)]
  .flatMap((m) => m[1]!.split(/;\s*\n/))
  .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
  .filter((s) => s !== '');

// The README's `CREATE ROLE reporting` makes a role of the whole server, which an earlier run of
// this file on the same server (TEST_DATABASE_URL) left behind: gone first, so that it runs again.
const it = itWithFileHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 20, integrationUsers: 2 }, { CPQ_COMPANIES: '*' }, async (h) => {
  await h.t.query('DROP ROLE IF EXISTS reporting');
  return h.sync();
});

describe('README SQL examples', () => {
  it('has examples', () => {
    expect(statements.length).toBeGreaterThan(5);
  });
  it.for(statements.map((s) => [s.split('\n')[0]!, s] as const))('runs: %s', async ([, statement], { h }) => {
    await expect(h.t.query(statement)).resolves.toBeDefined();
  });
});
