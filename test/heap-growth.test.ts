import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { heapGrowingFlag } from '../src/heap-growth.js';

describe('V8 heap growing factor (SYNC_HEAP_GROWING_PERCENT)', () => {
  it('sets a factor of 3 by default, and the one the variable gives', () => {
    expect(heapGrowingFlag({}, [])).toBe('--heap-growing-percent=200');
    expect(heapGrowingFlag({ SYNC_HEAP_GROWING_PERCENT: '50' }, [])).toBe('--heap-growing-percent=50');
  });

  it("leaves V8's own choice with 0", () => {
    expect(heapGrowingFlag({ SYNC_HEAP_GROWING_PERCENT: '0' }, [])).toBeUndefined();
  });

  it("yields to the flag on node's command line, in any spelling V8 takes", () => {
    for (const given of ['--heap-growing-percent=50', '--heap_growing_percent=50', '-heap-growing-percent=50', '--heap-growing-percent']) {
      expect(heapGrowingFlag({ SYNC_HEAP_GROWING_PERCENT: '300' }, ['--max-old-space-size=192', given]), given).toBeUndefined();
    }
    expect(heapGrowingFlag({}, ['--heap-growing-percentage=5'])).toBe('--heap-growing-percent=200');
  });

  it('sets nothing for a bad value, which loadConfig then names', () => {
    for (const bad of ['abc', '-1', '1001', '2.5']) {
      expect(heapGrowingFlag({ SYNC_HEAP_GROWING_PERCENT: bad }, []), bad).toBeUndefined();
      expect(() => loadConfig({ CPQ_BASE_URL: 'https://cpq.example.com', SYNC_HEAP_GROWING_PERCENT: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ CPQ_BASE_URL: 'https://cpq.example.com', SYNC_HEAP_GROWING_PERCENT: bad })).toThrow(/SYNC_HEAP_GROWING_PERCENT/);
    }
  });
});
