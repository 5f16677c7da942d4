import { describe, expect, it } from 'vitest';
import { companyStream } from '../src/cpq/streams.js';
import { StreamProgress } from '../src/sync/stream-progress.js';

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
