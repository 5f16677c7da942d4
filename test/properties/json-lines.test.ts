import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonLinesParser } from '../../src/cpq/json-lines.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { chunkCuts, writeInChunks } from './chunks.js';
import { comparable, jsonText, oracle } from './json-texts.js';

/*
 * A `.jsonl` entry of a zip export: one user per line. Whatever JSON each line holds, with blank
 * lines, \n or \r\n line ends, a byte-order mark, a last line without its line end, and fed in
 * any chunks, the parser reads each line as JSON.parse reads it (every number exact), and refuses
 * the entry naming the first line that is not JSON. Only \n ends a line (README: \n or \r\n line
 * ends): a lone \r, at a line's end or before another \r\n, is JSON whitespace inside the line,
 * which a second value on the same line then makes invalid. A blank line is one String.prototype.trim()
 * empties: JSON's whitespace, and also Unicode's (a no-break space, U+2028), which JSON.parse
 * would refuse; such a line holds no user either way, and is skipped.
 */

/** A JSON text on one line (its whitespace may hold line breaks; inside strings they are escaped). */
const lineOfJson = jsonText.map((text) => text.replace(/[\r\n]/g, ' '));
const blank = fc.constantFrom('', ' ', '\t', '  \t ', '\u00a0', ' \u2028\u3000');
const broken = fc.constantFrom('{', '}', '{"a":1', 'nul', '"', '[1,]', '{"a" 1}');
const entry = fc
  .tuple(
    fc.boolean(),
    fc.array(
      fc.tuple(
        fc.oneof({ weight: 6, arbitrary: lineOfJson }, { weight: 2, arbitrary: blank }, { weight: 1, arbitrary: broken }),
        // A lone \r (old Mac line ends) joins the line to the next one; before \r\n it stays in the line.
        fc.constantFrom('\n', '\r\n', '\r', '\r\r\n'),
      ),
      {
        maxLength: 6,
      },
    ),
    fc.option(
      fc.oneof(
        { weight: 6, arbitrary: lineOfJson },
        { weight: 2, arbitrary: blank },
        { weight: 1, arbitrary: broken },
        { weight: 1, arbitrary: fc.constant('{"a":1}\r') },
      ),
    ),
  )
  .map(([bom, lines, last]) => ({ bom, text: `${bom ? '\uFEFF' : ''}${lines.map(([line, end]) => line + end).join('')}${last ?? ''}` }));

/**
 * The lines of an entry as JSON lines defines them, from its text: split at each \n, one \r before
 * it dropped (a \r\n line end), and the last (a line without its line end, or nothing) kept when not empty.
 */
function linesOf(text: string, bom: boolean): string[] {
  const lines = (bom ? text.slice(1) : text).split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  return lines.at(-1) === '' ? lines.slice(0, -1) : lines;
}

/** What the parser reads, in the chunks `cuts` makes: each record comparable, or the line it refuses. */
function read(text: string, cuts: number[]): unknown[] | { refused: string } {
  const records: unknown[] = [];
  try {
    writeInChunks(new JsonLinesParser((value) => records.push(comparable(value))), text, cuts);
  } catch (err) {
    return { refused: /^line \d+/.exec((err as Error).message)?.[0] ?? (err as Error).message };
  }
  return records;
}

describe('a JSON-lines entry', () => {
  it(
    'reads each line as JSON.parse does, numbers exact, whatever the chunking; a line that is not JSON refuses the entry',
    () => {
      fc.assert(
        fc.property(
          entry.chain((e) => fc.tuple(fc.constant(e), chunkCuts(e.text, 5))),
          ([{ bom, text }, cuts]) => {
            const texts = linesOf(text, bom);
            const firstInvalid = texts.findIndex((line) => line.trim() !== '' && oracle(line) === 'invalid');
            const expected = firstInvalid >= 0 ? { refused: `line ${firstInvalid + 1}` } : texts.filter((line) => line.trim() !== '').map(oracle);
            expect(read(text, cuts)).toEqual(expected);
          },
        ),
        runs(300, propertyTimeout(60_000)),
      );
    },
    propertyTimeout(60_000),
  );
});
