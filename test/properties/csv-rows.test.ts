import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvRowsParser } from '../../src/cpq/csv-rows.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { chunkCuts, writeInChunks } from './chunks.js';

/*
 * The CSV entries of a zip export are read by a parser of our own (src/cpq/csv-rows.ts: csv-parse
 * costs 4-11x its CPU). Here csv-parse, set to the same reading of RFC 4180 (a byte-order mark
 * dropped, empty lines skipped, rows ending in \n, \r\n or \r, any number of fields per row, no
 * quote inside an unquoted field nor text after a closing one), is the reference: on any text,
 * both read the same rows or both refuse it, whatever chunks ours is fed in.
 */

/** csv-parse's rows, or 'refused'. Its strict defaults are spelled out, so that a later default cannot loosen the reference. */
function reference(text: string): string[][] | 'refused' {
  try {
    return parse(text, {
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      // '\r\n' before '\r': csv-parse takes the first that matches.
      record_delimiter: ['\r\n', '\n', '\r'],
      delimiter: ',',
      quote: '"',
      escape: '"',
      relax_quotes: false,
      comment: undefined,
      trim: false,
      skip_records_with_error: false,
    });
  } catch {
    return 'refused';
  }
}

/** Our parser's rows, fed in the chunks `cuts` makes, or 'refused'. */
function ours(text: string, cuts: number[] = []): string[][] | 'refused' {
  const rows: string[][] = [];
  try {
    writeInChunks(new CsvRowsParser((cells) => rows.push(cells)), text, cuts);
  } catch {
    return 'refused';
  }
  return rows;
}

const lineEnd = fc.constantFrom('\n', '\r\n', '\r');
/** Text of an unquoted field: anything but a quote, a comma or a line break. */
const plain = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '\t', "'", ';', 'é', '\u{1F600}', '\uFEFF'), maxLength: 6 });
/** A quoted field: any text, its quotes doubled. */
const quoted = fc.string({ unit: fc.constantFrom('a', ' ', ',', '"', '\n', '\r', '\r\n', ';', 'é'), maxLength: 8 }).map((s) => `"${s.replaceAll('"', '""')}"`);
const row = fc.array(fc.oneof(plain, quoted), { minLength: 1, maxLength: 5 }).map((fields) => fields.join(','));
/** A well-formed CSV text: rows and empty lines, any line ends, a byte-order mark or not, a last line end or not. */
const wellFormed = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.tuple(fc.oneof({ weight: 4, arbitrary: row }, { weight: 1, arbitrary: fc.constant('') }), lineEnd), { maxLength: 6 }),
    fc.option(row),
  )
  .map(([bom, lines, last]) => `${bom ? '\uFEFF' : ''}${lines.map(([r, end]) => r + end).join('')}${last ?? ''}`);
/**
 * Any text of CSV's punctuation and a little else: mostly malformed. No NUL: csv-parse takes one
 * after a closing quote for the end of the input (it reads `"a"\0b` as one field), where ours
 * refuses the text after the quote.
 */
const noise = fc.string({ unit: fc.constantFrom('"', ',', '\n', '\r', 'a', ' ', '\uFEFF'), maxLength: 32, size: 'medium' });

describe('CSV rows, against csv-parse', () => {
  it(
    'read every well-formed text as csv-parse does, whatever the chunking',
    () => {
      fc.assert(
        fc.property(
          wellFormed.chain((text) => fc.tuple(fc.constant(text), chunkCuts(text, 4))),
          ([text, cuts]) => {
            const expected = reference(text);
            expect(expected).not.toBe('refused');
            expect(ours(text, cuts)).toEqual(expected);
          },
        ),
        runs(300, propertyTimeout(60_000)),
      );
    },
    propertyTimeout(60_000),
  );

  it(
    'read any text of quotes, commas and line breaks as csv-parse does, or refuse it as csv-parse does',
    () => {
      fc.assert(
        fc.property(
          noise.chain((text) => fc.tuple(fc.constant(text), chunkCuts(text, 4))),
          ([text, cuts]) => {
            expect(ours(text, cuts)).toEqual(reference(text));
          },
        ),
        runs(500, propertyTimeout(60_000)),
      );
    },
    propertyTimeout(60_000),
  );
});
