/**
 * JSON as Postgres prints it (`jsonb::text`), carried to the output as text.
 *
 * Parsing it in JavaScript would pass every number through a double: 318766884429645907 becomes
 * 318766884429645900, 0.1234567890123456789 loses digits, and 1e400 (which jsonb stores as its
 * 401 digits) becomes null. The exports never parse it: they select jsonb columns as text and
 * write that text out, so every number leaves exactly as it is stored.
 */

// A string literal (kept whole, escapes and all) or a run of whitespace between tokens.
const STRING_OR_SPACE = /"(?:[^"\\]|\\.)*"|[ \t\r\n]+/g;

/** `{"a": 1, "b": [2]}` as `{"a":1,"b":[2]}`: jsonb::text with the spaces between tokens dropped, nothing else changed. */
export function compactJsonText(text: string): string {
  if (!/[ \t\r\n]/.test(text)) return text;
  return text.replace(STRING_OR_SPACE, (token) => (token.charCodeAt(0) === 0x22 ? token : ''));
}

/** A JSON value held as its text; stringifyWithJsonText writes it out verbatim. */
export class JsonText {
  readonly text: string;
  constructor(text: string) {
    this.text = compactJsonText(text);
  }
}

// Postgres text never holds a NUL character, so no string from the database can look like a placeholder.
const PLACEHOLDER = '\u0000json-text:';
const PLACEHOLDERS = /"\\u0000json-text:(\d+)"/g;

/** JSON.stringify (with the same indentation argument) that writes each JsonText as the JSON it holds. */
export function stringifyWithJsonText(value: unknown, space?: number): string {
  const texts: string[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => (v instanceof JsonText ? `${PLACEHOLDER}${texts.push(v.text) - 1}` : v), space);
  return texts.length === 0 ? text : text.replace(PLACEHOLDERS, (_m, index: string) => texts[Number(index)]!);
}
