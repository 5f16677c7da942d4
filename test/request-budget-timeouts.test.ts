import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import { expectInSync } from './helpers/db-equals-simulator.js';
import { it } from './helpers/harness.js';

/*
 * Requests CPQ does not answer within CPQ_REQUEST_TIMEOUT cut the site's request budget like its
 * 429s and 503s do (src/cpq/request-budget.ts), seen end to end: a real run against the simulator,
 * whose count of requests in flight shows the run sending fewer at once after the timeouts, and
 * which still stores every user.
 */

const MAX_IN_FLIGHT = 8;
const STALLED = 3;
const TIMEOUT_LOG = 'no response within the request timeout';

describe('a run whose requests time out', () => {
  it('halves the requests it sends at once after the timeouts, and still reads every user', async ({ startHarness }) => {
    // Pages of 4 users taking 60 ms (much longer than loading one), four companies read at once in
    // six ranges each: enough pages to keep eight requests in flight.
    const h = await startHarness(
      { partnerCompanies: 3, usersPerCompany: 40, integrationUsers: 0, latency: { fixedMs: 60 } },
      {
        CPQ_COMPANIES: '*',
        CPQ_PAGE_SIZE: '4',
        CPQ_KEY_RANGES: '6',
        CPQ_SPLIT_SLOWER_THAN: '0ms',
        CPQ_CONCURRENCY: '4',
        CPQ_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
        CPQ_REQUEST_TIMEOUT: '1s',
        CPQ_MAX_RETRIES: '5',
      },
    );
    // Per user-page request: how many requests had timed out at the client when it arrived, and
    // the requests the simulator was serving (itself included) a turn of the event loop later. The
    // client closes a request it gave up on just before it sends the next one, and the simulator
    // may see the new request first: a turn later it has seen the close too, and counts what the
    // client has in flight.
    const arrivals: Array<{ inFlight: number; timedOut: number }> = [];
    let logged = 0;
    let timedOut = 0;
    let stalling = false;
    h.sim.onRequest = async (req) => {
      if (!req.path.endsWith('/users')) return;
      // The client logs each timeout before it gives back the request's place, so before any request sent after it.
      for (; logged < h.logLines.length; logged++) if (h.logLines[logged]!.includes(TIMEOUT_LOG)) timedOut++;
      const seen = timedOut;
      if (!stalling && h.sim.inFlight >= MAX_IN_FLIGHT) {
        // The budget is full: this request and the next two are never answered (all sent before any cut).
        stalling = true;
        h.sim.addFault({ match: { path: /\/users$/ }, times: STALLED, action: 'stall' });
      }
      await sleep(1);
      arrivals.push({ inFlight: h.sim.inFlight, timedOut: seen });
    };
    const result = await h.sync();
    h.sim.onRequest = undefined;

    expect(result.inserted).toBe(4 * 40);
    // The stalled requests timed out and were retried. On a loaded machine another request may
    // also miss the timeout now and then: that cuts the budget further, which the checks below allow.
    expect(Object.keys(result.http.retries)).toEqual(['network']);
    expect(result.http.retries.network).toBe(timedOut);
    expect(timedOut).toBeGreaterThanOrEqual(STALLED);
    await expectInSync(h);

    // Before the timeouts the run used its whole budget, never more.
    expect(Math.max(...arrivals.filter((a) => a.timedOut === 0).map((a) => a.inFlight))).toBe(MAX_IN_FLIGHT);
    expect(h.sim.maxInFlightSeen).toBe(MAX_IN_FLIGHT);
    // Once they timed out (one cut: all three were sent in the same round; another timeout only
    // cuts further), at most half as many at once. Each good answer grows the limit by 1/16 at 4:
    // it takes 16 answers to reach 5, more than the requests in flight at the cut and the first
    // six sent after it can give.
    const after = arrivals.filter((a) => a.timedOut >= STALLED).slice(0, 6);
    expect(after).toHaveLength(6);
    for (const a of after) expect(a.inFlight).toBeLessThanOrEqual(MAX_IN_FLIGHT / 2);
  });
});
