import { describe, expect, it } from 'vitest';
import { numberAsWritten, numberLiteralOf, parseExactJson } from '../../src/exact-json.js';
import { SPELLED_COLUMNS, withStoredSpellings } from '../../src/normalize/stored-spellings.js';

/*
 * A stored integration user re-read from raw gets the spelling of its numbers back from its
 * columns and permission rows (src/normalize/stored-spellings.ts). A hostile site decides how many
 * permissions a user has and how its numbers are written: the work must stay linear in them.
 * Each case takes well under a second here; before, the first took 52 s (each permission compared
 * with each row) and the second 46 s (a regular expression retrying from each zero).
 */

function timed<T>(work: () => T): { result: T; ms: number } {
  const start = performance.now();
  const result = work();
  return { result, ms: performance.now() - start };
}

describe('attack: stored spellings built to cost the square of their size', () => {
  it('10,000 permissions whose keys are numbers get their rows spelling back in linear time', () => {
    const count = 10_000;
    // As sent: variableName 1E1, 1E2, ...: jsonb gives them back as 10, 100, ... (parsed from raw::text).
    const stored = parseExactJson(
      `{"login":"u1","accessPermissions":{"items":[${Array.from({ length: count }, (_, i) => `{"type":"t","variableName":${i + 1}0,"name":"n","hasAccess":true}`).join(',')}]}}`,
    ) as Record<string, unknown>;
    const permissions = Array.from({ length: count }, (_, i) => ({ type: 't', variableName: `${i + 1}E1`, name: 'n', hasAccess: true }));
    const { result, ms } = timed(() => withStoredSpellings(stored, { texts: SPELLED_COLUMNS.map(() => null), permissions }));
    expect(ms).toBeLessThan(2000);
    const items = (result.accessPermissions as { items: { variableName: unknown }[] }).items;
    expect(items.map((p) => numberLiteralOf(p.variableName))).toEqual(permissions.map((p) => p.variableName));
  });

  it('a number of 200,000 digits with a long inner run of zeros is compared in linear time', () => {
    const digits = `1${'0'.repeat(200_000)}1`;
    const { result, ms } = timed(() => numberAsWritten(`${digits}e-3`, `${digits.slice(0, -3)}.${digits.slice(-3)}`));
    expect(ms).toBeLessThan(1000);
    expect(result).toBeDefined();
  });
});
