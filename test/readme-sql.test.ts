import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

/** Every statement of every ```sql block in the README: the manual's examples must run. */
const statements = [...readFileSync(new URL('../README.md', import.meta.url), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)]
  .flatMap((m) => m[1]!.split(/;\s*\n/))
  .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
  .filter((s) => s !== '');

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 20, integrationUsers: 2 }, { CPQ_COMPANIES: '*' });
  await h.sync();
});
afterAll(async () => h.close());

describe('README SQL examples', () => {
  it('has examples', () => {
    expect(statements.length).toBeGreaterThan(5);
  });
  it.each(statements.map((s) => [s.split('\n')[0], s]))('runs: %s', async (_title, statement) => {
    await expect(h.t.query(statement)).resolves.toBeDefined();
  });
});
