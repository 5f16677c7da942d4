import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonLinesParser } from '../../src/cpq/json-lines.js';
import { runs } from './arbitraries.js';
import { comparable, jsonText, oracle } from './json-texts.js';

/*
 * A `.jsonl` entry of a zip export: one user per line. Whatever JSON each line holds, with blank
 * lines, \n or \r\n line ends, a byte-order mark, a last line without its line end, and fed in
 * any chunks, the parser reads each line as JSON.parse reads it (every number exact), and refuses
 * the entry when a line is not JSON.
 */

/** A JSON text on one line (its whitespace may hold line breaks; inside strings they are escaped). */
const lineOfJson = jsonText.map((text) => text.replace(/[\r\n]/g, ' '));
const blank = fc.constantFrom('', ' ', '\t', '  \t ');
const broken = fc.constantFrom('{', '}', '{"a":1', 'nul', '"', '[1,]', '{"a" 1}');
const entry = fc
  .tuple(
    fc.boolean(),
    fc.array(
      fc.tuple(
        fc.oneof({ weight: 6, arbitrary: lineOfJson }, { weight: 2, arbitrary: blank }, { weight: 1, arbitrary: broken }),
        fc.constantFrom('\n', '\r\n'),
      ),
      {
        maxLength: 6,
      },
    ),
    fc.option(lineOfJson),
  )
  .map(([bom, lines, last]) => ({
    text: `${bom ? '\uFEFF' : ''}${lines.map(([line, end]) => line + end).join('')}${last ?? ''}`,
    lines: [...lines.map(([line]) => line), ...(last === null ? [] : [last])],
  }));

/** What the parser reads, in the chunks `cuts` makes: each record comparable, or 'refused'. */
function read(text: string, cuts: number[]): unknown[] | 'refused' {
  const records: unknown[] = [];
  const parser = new JsonLinesParser((value) => records.push(comparable(value)));
  try {
    let at = 0;
    for (const cut of [...cuts, text.length]) {
      parser.write(text.slice(at, cut));
      at = cut;
    }
    parser.end();
  } catch {
    return 'refused';
  }
  return records;
}

describe('a JSON-lines entry', () => {
  it('reads each line as JSON.parse does, numbers exact, whatever the chunking; a line that is not JSON refuses the entry', () => {
    fc.assert(
      fc.property(
        entry.chain((e) => fc.tuple(fc.constant(e), fc.array(fc.nat({ max: e.text.length }), { maxLength: 5 }))),
        ([{ text, lines }, positions]) => {
          const cuts = [...new Set(positions)].sort((a, b) => a - b);
          const expected = lines.filter((line) => line.trim() !== '').map(oracle);
          expect(read(text, cuts)).toEqual(expected.includes('invalid') ? 'refused' : expected);
        },
      ),
      runs(300, 60_000),
    );
  });
});
