import fc from 'fast-check';

/*
 * A zip export's entries arrive in chunks that may cut anywhere (inside a string, between \r and
 * \n): the streaming parsers' properties feed each text cut at generated positions.
 */

/** A streaming parser of text: pieces written in order, then the end. */
export interface TextParser {
  write(chunk: string): void;
  end(): void;
}

/** Feeds `text` to `parser` cut at `cuts` (sorted positions within it), then ends it. */
export function writeInChunks(parser: TextParser, text: string, cuts: readonly number[]): void {
  let at = 0;
  for (const cut of [...cuts, text.length]) {
    parser.write(text.slice(at, cut));
    at = cut;
  }
  parser.end();
}

/** Where to cut `text`: up to `most` distinct positions, sorted. */
export function chunkCuts(text: string, most: number): fc.Arbitrary<number[]> {
  return fc.array(fc.nat({ max: text.length }), { maxLength: most }).map((cuts) => [...new Set(cuts)].sort((a, b) => a - b));
}
