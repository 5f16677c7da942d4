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
