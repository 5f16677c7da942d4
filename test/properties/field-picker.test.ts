import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CPQ_USER_FIELDS, FieldPicker, MAPPED_FIELD_KEYS, canonicalize } from '../../src/cpq/user-fields.js';
import { propertyTimeout, runs } from './arbitraries.js';

const CANONICAL_NAMES = [...new Set([...Object.keys(CPQ_USER_FIELDS), 'login', 'groups', 'items', 'variableName', 'value', 'displayValue'])];

/** A spelling of a field name: as is, or with some letters' case flipped (CPQ's own keys vary so). */
const spelling = fc
  .tuple(fc.constantFrom(...CANONICAL_NAMES, ...MAPPED_FIELD_KEYS, 'custom_field', '__proto__', 'constructor'), fc.array(fc.boolean(), { maxLength: 40 }))
  .map(([name, flips]) => name.replace(/./g, (c, i: number) => (flips[i] ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)));

describe('FieldPicker', () => {
  it('picks what canonicalize reads, whatever the spellings, their order and repeats (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(spelling, fc.integer()), { selector: ([key]) => key, maxLength: 30 }),
        fc.shuffledSubarray(CANONICAL_NAMES, { minLength: 1 }),
        (entries, names) => {
          const record: Record<string, unknown> = {};
          for (const [key, value] of entries) Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
          const picker = new FieldPicker(names);
          const canonical = canonicalize(record);
          // Twice: the second pick reads the spellings the first one learnt.
          expect(picker.pick(record)).toEqual(names.map((name) => canonical.get(name)));
          expect(picker.pick(record)).toEqual(names.map((name) => canonical.get(name)));
        },
      ),
      runs(500, propertyTimeout(120_000)),
    );
  });
});
