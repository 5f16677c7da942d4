import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/cpq/http-bodies.js';
import { runs } from './arbitraries.js';

/*
 * A response's text from its bytes and its Content-Type's charset (review CV, review CX): UTF-8
 * stays UTF-8 under any label, text written in the charset its label names reads back as written.
 */
const URL = 'http://site/rest/v16/companies/_host/users';
const LATIN1 = 'application/json; charset=ISO-8859-1';

/** Text of any Unicode (no lone surrogate: it has no UTF-8 form). */
const unicode = fc.string({ unit: 'grapheme', maxLength: 40 });
/** Text in ISO-8859-1 without C1 controls (where windows-1252, which the web decodes ISO-8859-1 as, differs). */
const latin1 = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});

/** Whether some 2 to 4 bytes of `bytes` are one character beyond ASCII in UTF-8, by the platform's own strict decoder. */
function holdsUtf8Character(bytes: Buffer): boolean {
  const strict = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < bytes.length; i++) {
    for (let n = 2; n <= 4 && i + n <= bytes.length; n++) {
      try {
        const text = strict.decode(bytes.subarray(i, i + n));
        const point = text.codePointAt(0)!;
        if (point > 0x7f && text.length === (point > 0xffff ? 2 : 1)) return true;
      } catch {
        // not one character
      }
    }
  }
  return false;
}

describe('decoding a response body', () => {
  it('UTF-8 text reads back as itself under a UTF-8, ISO-8859-1 or no label', () => {
    fc.assert(
      fc.property(unicode, fc.constantFrom(LATIN1, 'application/json', 'application/json; charset=utf-8'), (text, contentType) => {
        expect(decodeBody(Buffer.from(text, 'utf8'), contentType, URL)).toBe(text);
      }),
      runs(500, 60_000),
    );
  });

  it('text written in ISO-8859-1 as its label says reads back as itself, unless it happens to hold a UTF-8 sequence (Ã¼), then it is read as UTF-8', () => {
    fc.assert(
      fc.property(latin1, (text) => {
        const decoded = decodeBody(Buffer.from(text, 'latin1'), LATIN1, URL);
        const bytes = Buffer.from(text, 'latin1');
        if (holdsUtf8Character(bytes)) expect(decoded).toBe(new TextDecoder().decode(bytes));
        else expect(decoded).toBe(text);
      }),
      runs(500, 60_000),
    );
  });

  it('UTF-8 with one stray byte, labelled ISO-8859-1: the letters stay, the stray byte becomes U+FFFD', () => {
    const bytes = Buffer.concat([Buffer.from('{"lastName":"Müller","x":"', 'utf8'), Buffer.from([0xff]), Buffer.from('"}', 'utf8')]);
    expect(decodeBody(bytes, LATIN1, URL)).toBe('{"lastName":"Müller","x":"\ufffd"}');
  });

  it('a charset with no decoder, on bytes that are not UTF-8, is refused by name', () => {
    expect(() => decodeBody(Buffer.from('M\u00fcller', 'latin1'), 'application/json; charset=x-made-up', URL)).toThrow(
      `GET ${URL}: the response is not valid UTF-8, and its Content-Type names the charset "x-made-up", which cannot be decoded here; refused rather than store altered text`,
    );
  });
});
