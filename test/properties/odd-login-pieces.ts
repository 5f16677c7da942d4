import fc from 'fast-check';

/**
 * The pieces of the logins no generated site holds (odd-logins.test.ts, odd-logins-formats.test.ts):
 * pairs that differ only by Unicode normalization (NFC é against e + U+0301) or by case folding
 * that changes length (ß/SS, İ/i̇), characters whose UTF-16 order is not their code-point order
 * (U+FFFF, U+E000 against astral ones), characters a URL or a JSON filter must escape, no-break
 * and zero-width spaces, a byte-order mark, blanks.
 */
export const ODD_LOGIN_PIECES = [
  'a',
  'A',
  'é',
  'e\u0301',
  'E\u0301',
  'É',
  'ß',
  'SS',
  'ss',
  'ẞ',
  'İ',
  'i\u0307',
  'ı',
  'I',
  'i',
  '\uFFFF',
  '\uFFFD',
  '\uE000',
  '\u{10000}',
  '\u{1F600}',
  '\u{1F600}\u{1F3FD}',
  ' ',
  '\u00A0',
  '\u200B',
  '\t',
  '+',
  '&',
  '#',
  '%',
  '%2B',
  '?',
  '/',
  '"',
  '\\',
  '.',
  '*',
  '$',
  '{',
  '}',
  ':',
  ',',
  "'",
  '<',
  '>',
  '=',
  '\u2028',
  'ﬁ',
  'Å',
  'Å',
  ';',
  '\r',
  '\n',
  '\uFEFF',
];

/** A login of one to four such pieces, not blank. */
export const oddLogin: fc.Arbitrary<string> = fc
  .array(fc.constantFrom(...ODD_LOGIN_PIECES), { minLength: 1, maxLength: 4 })
  .map((p) => p.join(''))
  .filter((l) => l.trim() !== '');
