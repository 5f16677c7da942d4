import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/cpq/http-bodies.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * A response's text from its bytes and its Content-Type's charset (reviews CV, CX, CZ): UTF-8
 * stays UTF-8 under any label; bytes that are not, in the charset their label names, read back
 * as that charset has them, unless they could be UTF-8 with a stray byte as well: refused.
 */
const URL = 'http://site/rest/v16/companies/_host/users';
const LATIN1 = 'application/json; charset=ISO-8859-1';

/** Text of any Unicode (no lone surrogate: it has no UTF-8 form). */
const unicode = fc.string({ unit: 'grapheme', maxLength: 40 });
/** Bytes of text in a one-byte charset: printable ASCII and every byte above it. */
const oneByteText = fc.uint8Array({ min: 0x20, max: 0xff, maxLength: 40 }).map((b) => Buffer.from(b));
const AMBIGUOUS = 'yet holds UTF-8 sequences';

/** Whether some 2 to 4 bytes of `bytes` are one character beyond ASCII in UTF-8, by the platform's own strict decoder. */
function holdsUtf8Character(bytes: Buffer): boolean {
  // ignoreBOM: EF BB BF is U+FEFF, a character like any other here; the decoder drops it by default
  // (review HI: a page of EF BB BF 80 was counted as holding no UTF-8 sequence).
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
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
      runs(500, propertyTimeout(120_000)),
    );
  });

  it('bytes labelled ISO-8859-1: valid UTF-8 is UTF-8; else, without a UTF-8 sequence, what windows-1252 (the web’s ISO-8859-1) has them say; with one, refused', () => {
    fc.assert(
      fc.property(oneByteText, (bytes) => {
        const decode = () => decodeBody(bytes, LATIN1, URL);
        let utf8: string | undefined;
        try {
          utf8 = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        } catch {
          // not UTF-8
        }
        if (utf8 !== undefined) expect(decode()).toBe(utf8);
        else if (holdsUtf8Character(bytes)) expect(decode).toThrow(AMBIGUOUS);
        else expect(decode()).toBe(new TextDecoder('windows-1252').decode(bytes));
      }),
      runs(500, propertyTimeout(120_000)),
    );
  });

  it('UTF-8 with one stray byte, labelled ISO-8859-1, and one-byte text that happens to hold a UTF-8 sequence (É’, GBK): refused, not guessed', () => {
    const strayByte = Buffer.concat([Buffer.from('{"lastName":"Müller","x":"', 'utf8'), Buffer.from([0xff]), Buffer.from('"}', 'utf8')]);
    expect(() => decodeBody(strayByte, LATIN1, URL)).toThrow(
      `GET ${URL}: the response is not valid UTF-8 (byte ${Buffer.byteLength('{"lastName":"Müller","x":"')} is not) yet holds UTF-8 sequences, and its Content-Type names the charset "ISO-8859-1": which one it is written in cannot be told; refused rather than store altered text`,
    );
    // JOSÉ’S in windows-1252: É (0xC9) and ’ (0x92) make a UTF-8 pair; Müller's ü (0xFC) is no UTF-8.
    expect(() => decodeBody(Buffer.from([0x4a, 0x4f, 0x53, 0xc9, 0x92, 0x53, 0x20, 0x4d, 0xfc]), 'text/json; charset=windows-1252', URL)).toThrow(AMBIGUOUS);
    // 王芳 in GBK (CD F5 B7 BC): F5 B7 BC is no UTF-8, but the name beside, 郑 (D6 A3), is a UTF-8 pair.
    expect(() => decodeBody(Buffer.from([0xd6, 0xa3, 0x20, 0xcd, 0xf5, 0xb7, 0xbc]), 'application/json; charset=gbk', URL)).toThrow(AMBIGUOUS);
    // Without such a pair, GBK is read as GBK.
    expect(decodeBody(Buffer.from([0xcd, 0xf5, 0xb7, 0xbc]), 'application/json; charset=gbk', URL)).toBe('王芳');
  });

  it('any label of UTF-8 (x-unicode20utf8, unicode11utf8) is UTF-8: a stray byte becomes U+FFFD, as with charset=utf-8 (review DA)', () => {
    const bytes = Buffer.concat([Buffer.from('Müller ', 'utf8'), Buffer.from([0xff])]);
    for (const label of ['x-unicode20utf8', 'unicode11utf8', 'UTF8'])
      expect(decodeBody(bytes, `application/json; charset=${label}`, URL)).toBe('Müller \ufffd');
  });

  it('a JSON text in UTF-16, either byte order, with or without a byte-order mark, reads back as itself under a UTF-16 label (review DW)', () => {
    // Read as UTF-8 first, an ASCII-only UTF-16 page was valid UTF-8 full of NULs, and refused as not JSON.
    const utf16 = (text: string, order: 'le' | 'be', bom: boolean) => {
      const le = Buffer.from(`${bom ? '\ufeff' : ''}${text}`, 'utf16le');
      return order === 'le' ? le : le.swap16();
    };
    fc.assert(
      fc.property(
        unicode,
        fc.constantFrom<'le' | 'be'>('le', 'be'),
        fc.boolean(),
        fc.constantFrom('utf-16', 'UTF-16LE', 'utf-16be', 'unicodefffe', 'csunicode'),
        (name, order, bom, label) => {
          const text = JSON.stringify({ items: [{ login: 'u1', lastName: name }] });
          const declared = new TextDecoder(label).encoding === 'utf-16be' ? 'be' : 'le';
          // Without a byte-order mark, the label says the byte order.
          fc.pre(bom || declared === order);
          expect(decodeBody(utf16(text, order, bom), `application/json; charset=${label}`, URL)).toBe(text);
        },
      ),
      runs(500, propertyTimeout(120_000)),
    );
    // An odd number of bytes is no UTF-16: refused naming the charset, not read with U+FFFD.
    expect(() => decodeBody(Buffer.concat([utf16('{"items":[]}', 'le', false), Buffer.from([0x20])]), 'application/json; charset=utf-16le', URL)).toThrow(
      `GET ${URL}: the response is not valid UTF-16LE, the charset its Content-Type names ("utf-16le"); refused rather than store altered text`,
    );
    // UTF-8 labelled UTF-16 (no NUL, no byte-order mark) is still read as UTF-8.
    expect(decodeBody(Buffer.from('{"lastName":"Müller"}', 'utf8'), 'application/json; charset=utf-16', URL)).toBe('{"lastName":"Müller"}');
  });

  it('a charset with no decoder, on bytes that are not UTF-8, is refused by name', () => {
    expect(() => decodeBody(Buffer.from('M\u00fcller', 'latin1'), 'application/json; charset=x-made-up', URL)).toThrow(
      `GET ${URL}: the response is not valid UTF-8, and its Content-Type names the charset "x-made-up", which cannot be decoded here; refused rather than store altered text`,
    );
  });
});
