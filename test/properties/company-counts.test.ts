import fc from 'fast-check';
import { describe, expect } from 'vitest';
import type { Queryable } from '../../src/db/compiled-query.js';
import { readLatestCompanyCounts } from '../../src/db/sql/read-proofs.js';
import { it } from '../helpers/fixtures.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * readLatestCompanyCounts reads each site's last run that read companies through indexes (and
 * at most `limit` of its companies). It must answer as the plain query below, which says what it
 * means and reads every row: for any runs of any sites, the companies of the site's last run that
 * recorded counts, each with its active rows in that run and CPQ's total at its latest full read
 * (NULL when none, or when that read recorded none), the first `limit` per site (of the sites
 * asked for, or every one), in the same
 * order, and how many companies that run read. Asked with the planner free and with index scans
 * off (the same query read another way).
 *
 * The counts and run ids are bigint columns (README: int64, never rounded), so they run up to
 * 2^63 - 1. Past 2^53 a double rounds (2^53 + 1 reads as 2^53), and
 * readLatestCompanyCounts gives numbers (its gauge is a Prometheus float), so rows that differ by
 * one there come out alike: the rows Postgres answered are compared too, as exact text, so a
 * neighbour's count picked by mistake is still seen.
 */
const PLAIN = `
  SELECT k.site, k.company_login AS company, k.active_rows::text AS database,
         (SELECT f.total_results::text FROM cpq.run_company_counts f
          WHERE f.site = k.site AND f.company_login = k.company_login AND f.mode = 'full' ORDER BY f.run_id DESC LIMIT 1) AS cpq,
         (SELECT count(*) FROM cpq.run_company_counts n WHERE n.run_id = k.run_id)::text AS companies
  FROM cpq.run_company_counts k
  WHERE k.run_id = (SELECT max(m.run_id) FROM cpq.run_company_counts m WHERE m.site = k.site)
  ORDER BY k.site, k.company_login`;

const SITES = ['emea', 'us', 'US', 'a-b', 'ab', 'z_1'];
// Logins that sort differently by byte and by a language's rules, and one that differs only in case.
const COMPANIES = ['_host', 'acme', 'Acme', 'a b', 'ab', 'a-b', 'é', 'z'];

const TWO_TO_53 = 2n ** 53n;
const INT64_MAX = 2n ** 63n - 1n;

/**
 * A count as a bigint column holds it, as text (a double would round it on the way in): small,
 * just either side of 2^53 (where neighbours begin to read alike as doubles), anywhere past it,
 * or at int64's top.
 */
const count: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 3, arbitrary: fc.bigInt(0n, 1000n) },
    { weight: 2, arbitrary: fc.bigInt(TWO_TO_53 - 3n, TWO_TO_53 + 3n) },
    { weight: 2, arbitrary: fc.bigInt(TWO_TO_53, INT64_MAX) },
    { weight: 1, arbitrary: fc.bigInt(INT64_MAX - 3n, INT64_MAX) },
  )
  .map(String);

/** The first run's id (bigint too): runs take the ids after it, up to 30 of them, so the last may be int64's top. */
const firstRunId: fc.Arbitrary<string> = fc
  .oneof(fc.constant(1n), fc.bigInt(TWO_TO_53 - 20n, TWO_TO_53 + 3n), fc.bigInt(TWO_TO_53, INT64_MAX - 29n), fc.constant(INT64_MAX - 29n))
  .map(String);

/** A Queryable that keeps the rows Postgres answered, before readLatestCompanyCounts makes their counts numbers. */
function keepingRows(on: Queryable): Queryable & { answered: unknown[] } {
  const answered: unknown[] = [];
  return {
    answered,
    async query(text, values) {
      const result = await on.query(text, values);
      answered.push(...(result.rows as unknown[]));
      return result;
    },
  };
}

/** One run: its site, and per company it read, its mode, CPQ's total (null: none recorded) and the rows held active. */
const run = fc.record({
  site: fc.constantFrom(...SITES),
  counts: fc.uniqueArray(
    fc.record({
      company: fc.constantFrom(...COMPANIES),
      mode: fc.constantFrom('full', 'incremental', 'incremental'),
      total: fc.option(count, { freq: 4 }),
      active: count,
    }),
    { selector: (c) => c.company, maxLength: 4 },
  ),
});

describe('per-company counts of /metrics (property)', () => {
  it(
    'the indexed read answers as the plain query, for any runs of any sites and any limit',
    async ({ createDatabase }) => {
      const t = await createDatabase();
      await t.query(`INSERT INTO cpq.sites (name) SELECT unnest($1::text[])`, [SITES]);
      await fc.assert(
        fc.asyncProperty(
          fc.array(run, { maxLength: 30 }),
          firstRunId,
          fc.integer({ min: 1, max: 5 }),
          fc.option(fc.subarray(SITES)),
          async (runsMade, firstId, limit, only) => {
            await t.query('DELETE FROM cpq.run_company_counts');
            await t.query('DELETE FROM cpq.sync_runs');
            await t.query(`SELECT setval(pg_get_serial_sequence('cpq.sync_runs', 'id'), $1, false)`, [firstId]);
            for (const r of runsMade) {
              const [made] = await t.query<{ id: string }>(
                `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at) VALUES ($1, 'succeeded', 'incremental', now(), now()) RETURNING id::text`,
                [r.site],
              );
              for (const c of r.counts) {
                await t.query(
                  `INSERT INTO cpq.run_company_counts (run_id, company_login, site, mode, total_results, received, received_checksum, active_rows, active_checksum, active_source)
                 VALUES ($1, $2, $3, $4, $5, 0, '', $6, '', 'table')`,
                  [made!.id, c.company, r.site, c.mode, c.total, c.active],
                );
              }
            }
            const every = await t.query<{ site: string; company: string; cpq: string | null; database: string; companies: string }>(PLAIN);
            const exact = every.filter((r, i) => (only === null || only.includes(r.site)) && every.slice(0, i).filter((o) => o.site === r.site).length < limit);
            const expected = {
              counts: exact.map((r) => ({ site: r.site, company: r.company, cpq: r.cpq === null ? null : Number(r.cpq), database: Number(r.database) })),
              companiesRead: [...new Map(exact.map((r) => [r.site, Number(r.companies)]))].map(([site, companies]) => ({ site, companies })),
            };
            const free = keepingRows(t.pool);
            expect(await readLatestCompanyCounts(free, only ?? undefined, limit)).toEqual(expected);
            expect(free.answered).toEqual(exact);
            const client = await t.pool.connect();
            try {
              await client.query('BEGIN');
              await client.query('SET LOCAL enable_indexscan = off');
              await client.query('SET LOCAL enable_indexonlyscan = off');
              await client.query('SET LOCAL enable_bitmapscan = off');
              const noIndex = keepingRows(client);
              expect(await readLatestCompanyCounts(noIndex, only ?? undefined, limit)).toEqual(expected);
              expect(noIndex.answered).toEqual(exact);
            } finally {
              await client.query('ROLLBACK');
              client.release();
            }
          },
        ),
        runs(60, propertyTimeout(90_000)),
      );
    },
    propertyTimeout(90_000),
  );
});
