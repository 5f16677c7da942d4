/*
 * The same JSON value in another spelling, as JSON allows and a CPQ site may send it: escapes
 * where characters were written as they are (keys too), whitespace between tokens. A reader must
 * give exactly the same values for both.
 */

export type Spelling = 'escaped' | 'spaced';

/** A string's characters alternately as \u escapes and as they are, `/` as `\/`, by code point (an astral one as its escaped surrogate pair). */
function escaped(value: string): string {
  let out = '';
  let i = 0;
  for (const c of value) {
    if (c === '/') out += '\\/';
    else if (i++ % 2 === 0) out += Array.from({ length: c.length }, (_, k) => `\\u${c.charCodeAt(k).toString(16).padStart(4, '0')}`).join('');
    else out += JSON.stringify(c).slice(1, -1);
  }
  return `"${out}"`;
}

/** `text` (a JSON text) in `spelling`; numbers, literals and the order of everything stay as they are. */
export function respell(text: string, spelling: Spelling): string {
  return text.replace(/"(?:[^"\\]|\\.)*"|[,:[\]{}]/g, (token) => {
    if (token.startsWith('"')) return spelling === 'escaped' ? escaped(JSON.parse(token) as string) : token;
    return spelling === 'spaced' ? `\n\t${token} ` : token;
  });
}

/** Values a decoy key holds: each a value the reader would refuse or could not store, were it the one read. */
const DECOYS = ['null', '"\\u0000"', '1e999999', '{"items":null}', '[1,{"a":"\\ud800"}]', 'true', '"decoy"'];

/**
 * `text` (a JSON collection page) with every key of every object inside its items written twice:
 * first with a decoy value, then as sent. JSON.parse and Postgres jsonb both keep the last copy of
 * a key, so a reader that reads the page as JSON reads exactly what it read without the decoys.
 * The page's own keys (items, hasMore, totalResults) are left alone: a page saying one twice is refused.
 */
export function withDecoys(text: string): string {
  let depth = 0;
  let n = 0;
  const tokens = /"(?:[^"\\]|\\.)*"|[[\]{}]/g;
  return text.replace(tokens, (token, offset: number) => {
    if (token === '{' || token === '[') depth++;
    else if (token === '}' || token === ']') depth--;
    else if (depth >= 3 && /^\s*:/.test(text.slice(offset + token.length, offset + token.length + 8)))
      return `${token}:${DECOYS[n++ % DECOYS.length]!},${token}`;
    return token;
  });
}
