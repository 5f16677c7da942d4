import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { companyStream } from '../src/cpq/streams.js';
import { deletableCompanies, type DeletionGuard } from '../src/sync/deletion-guard.js';
import { Stager } from '../src/sync/stager.js';
import { StreamProgress } from '../src/sync/stream-progress.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

/*
 * The deletion guard decides for every company read in full, and a run of CPQ_COMPANIES=* reads
 * every company of a list that may name hundreds of thousands (as many as CPQ_MAX_PAGE_BYTES
 * allows). It searched the run's reads for each company's count: the square of their number
 * (160,000 companies, 67 s of CPU at the end of the run, in its transaction). Counted here as the
 * times it looks at a read's stream id, which is deterministic where time is not.
 */

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

describe('the deletion guard of a run of many companies', () => {
  it("looks at each company's read a few times, not once per other company", async () => {
    const companies = Array.from({ length: 3000 }, (_, i) => `partner${i}`);
    let idReads = 0;
    const progress = companies.map((company) => {
      const read = new StreamProgress(companyStream(company), undefined);
      read.report.totalResults = 0;
      return new Proxy(read, {
        get: (target, key, receiver) => {
          if (key === 'id') idReads++;
          return Reflect.get(target, key, receiver) as unknown;
        },
      });
    });
    const warnings: string[] = [];
    const guard: DeletionGuard = {
      site: 'default',
      progress,
      firstLoads: new Set(),
      maxDeleteFraction: 0.2,
      massDeleteMin: 10,
      allowMassDelete: false,
      rerun: 'cpq-sync run --full --allow-mass-delete',
      integrationUsersKept: false,
      keysetReads: true,
      warn: (m) => warnings.push(m),
    };
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      await Stager.create(client);
      const allowed = await deletableCompanies(client, '1', guard);
      // Every company may delete (none holds a user), each decided by its own read's report.
      expect(allowed.sort()).toEqual([...companies].sort());
      expect(progress.every((p) => p.report.deletion === 'applied: none missing')).toBe(true);
      expect(warnings).toEqual([]);
      // Searched per company, it looked 4.5 million times (n²/2).
      expect(idReads).toBeLessThanOrEqual(4 * companies.length);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
