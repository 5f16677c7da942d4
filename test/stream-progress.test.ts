import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PageRecords } from '../src/cpq/page-records.js';
import { INTEGRATION_STREAM, companyStream } from '../src/cpq/streams.js';
import { StreamProgress } from '../src/sync/stream-progress.js';
import { RunProgress } from '../src/sync/run-progress.js';
import { propertyTimeout, runs } from './properties/arbitraries.js';

/*
 * A read is counted by user in the database only when its logins did not all come in order: each
 * key range of a keyset read returns increasing logins inside its bounds, so a repeat breaks the
 * order or leaves its range. A read in order costs no count (a full re-read of a million users
 * would otherwise pay a DISTINCT over them).
 */

const readOf = (logins: [string, { index: number; count: number; from?: string; to?: string }?][]) => {
  const progress = new StreamProgress(companyStream('_host'), undefined);
  for (const [login, range] of logins) progress.read(login, range);
  return progress.mayRepeat;
};

describe('StreamProgress: whether a read may hold a user twice', () => {
  it('not when each range is in increasing order and inside its bounds', () => {
    expect(readOf([['a'], ['b'], ['c']])).toBe(false);
    const r0 = { index: 0, count: 2, to: 'm' };
    const r1 = { index: 1, count: 2, from: 'm' };
    // Ranges arrive interleaved; each is in order on its own.
    expect(readOf([['a'], ['b', r0], ['m', r1], ['c', r0], ['n', r1]])).toBe(false);
  });

  it('when a login comes again or out of order, or outside its range', () => {
    expect(readOf([['a'], ['b'], ['b']])).toBe(true);
    expect(readOf([['a'], ['c'], ['b']])).toBe(true);
    expect(readOf([['a'], ['n', { index: 0, count: 2, to: 'm' }]])).toBe(true);
    expect(readOf([['a'], ['b', { index: 1, count: 2, from: 'm' }]])).toBe(true);
  });
});

/*
 * A run's progress and the worker's gauge read the totals its streams add to page by page, not a
 * sum over the streams at each look (O(streams), and a run of CPQ_COMPANIES=* reads ~450,000 of
 * them): the totals must be that sum exactly, whatever order the pages come in and however a
 * stream's totalResults comes (first page, last page, told again, changed).
 */
describe('ReadTotals: what the streams of a run have read, summed as they read', () => {
  const timeout = propertyTimeout(30_000);
  // Counts near the largest CPQ may state (2^53 - 1, countValue): a few of them sum past what a double holds.
  const count = fc.oneof(fc.nat(100_000), fc.integer({ min: Number.MAX_SAFE_INTEGER - 1000, max: Number.MAX_SAFE_INTEGER }));
  const page = fc.record({ stream: fc.nat(5), items: fc.nat(1000), totalResults: fc.option(count, { nil: undefined }) });

  it(
    "is the sum of its streams' reports after every page",
    () => {
      fc.assert(
        fc.property(fc.nat(6), fc.boolean(), fc.array(page, { maxLength: 40 }), (companies, integration, pages) => {
          const log = pino({ level: 'silent' });
          const run: StreamProgress[] = [];
          const runProgress = new RunProgress(run, () => Promise.resolve(true), log);
          const totals = runProgress.read;
          const streams = Array.from({ length: companies }, (_, i) => new StreamProgress(companyStream(`c${i}`), undefined, undefined, totals));
          if (integration) streams.push(new StreamProgress(INTEGRATION_STREAM, undefined, undefined, totals));
          run.push(...streams);
          const sums = () => {
            const reported = streams.flatMap((p) => (p.report.totalResults === null ? [] : [p.report.totalResults]));
            return {
              pages: streams.reduce((n, p) => n + p.report.pages, 0),
              received: streams.reduce((n, p) => n + p.report.received, 0),
              totalResults: reported.reduce((n, t) => n + BigInt(t), 0n),
              reporting: reported.length,
              companyStreams: companies,
            };
          };
          for (const p of pages) {
            if (streams.length === 0) break;
            const stream = streams[p.stream % streams.length]!;
            stream.page({
              url: 'http://cpq.test/users',
              index: stream.report.pages,
              items: PageRecords.of(p.items, () => ({ value: {}, storedAsSent: undefined })),
              totalResults: p.totalResults,
            });
            const { pages, received, totalResults, reporting, companyStreams } = totals;
            const expected = sums();
            expect({ pages, received, totalResults, reporting, companyStreams }).toEqual(expected);
            // The run's record states the sum only while it is a count a double holds exactly.
            const stated = expected.reporting > 0 && expected.totalResults <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(expected.totalResults) : null;
            expect(runProgress.report.totalResults).toBe(stated);
          }
        }),
        runs(200, timeout),
      );
    },
    timeout,
  );
});
