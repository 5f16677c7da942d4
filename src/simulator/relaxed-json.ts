import { LosslessNumber } from 'lossless-json';
import { QueryError } from './query.js';

/*
 * The text of q. Oracle's examples use strict JSON and relaxed forms (unquoted keys,
 * single-quoted strings, a top level without braces), so q goes through a small tolerant
 * parser, never eval.
 */

export type QueryLiteral = string | boolean | null | LosslessNumber | QueryLiteral[] | QueryObject;
export interface QueryObject {
  [key: string]: QueryLiteral;
}

const IDENTIFIER_START = /[A-Za-z_$]/;
const IDENTIFIER_PART = /[A-Za-z0-9_$.-]/;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** JSON plus: unquoted keys, single-quoted strings. Numbers stay exact as LosslessNumber. */
class RelaxedJsonParser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseDocument(): QueryLiteral {
    const value = this.value();
    this.skipSpace();
    if (this.pos < this.text.length) this.fail('unexpected text');
    return value;
  }

  private value(): QueryLiteral {
    this.skipSpace();
    const ch = this.text[this.pos];
    if (ch === '{') return this.object();
    if (ch === '[') return this.array();
    if (ch === '"' || ch === "'") return this.string();
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return this.number();
    if (ch !== undefined && IDENTIFIER_START.test(ch)) {
      const word = this.identifier();
      if (word === 'true') return true;
      if (word === 'false') return false;
      if (word === 'null') return null;
      this.fail(`unquoted value "${word}"`);
    }
    return this.fail(ch === undefined ? 'unexpected end' : `unexpected "${ch}"`);
  }

  private object(): QueryObject {
    this.pos++; // {
    const result: QueryObject = Object.create(null) as QueryObject;
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return result;
    }
    for (;;) {
      this.skipSpace();
      const ch = this.text[this.pos];
      let key: string;
      if (ch === '"' || ch === "'") key = this.string();
      else if (ch !== undefined && IDENTIFIER_START.test(ch)) key = this.identifier();
      else return this.fail('expected a key');
      this.skipSpace();
      this.expect(':');
      result[key] = this.value();
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect('}');
      return result;
    }
  }

  private array(): QueryLiteral[] {
    this.pos++; // [
    const result: QueryLiteral[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.value());
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect(']');
      return result;
    }
  }

  private string(): string {
    const quote = this.text[this.pos++];
    let out = '';
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos++] as string;
      if (ch === quote) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const escape = this.text[this.pos++];
      if (escape === 'u') {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
      } else if (escape !== undefined && escape in ESCAPES) {
        out += ESCAPES[escape]!;
      } else {
        this.fail('bad escape');
      }
    }
    return this.fail('unterminated string');
  }

  private number(): LosslessNumber {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) return this.fail('bad number');
    this.pos += match[0].length;
    return new LosslessNumber(match[0]);
  }

  private identifier(): string {
    const start = this.pos;
    while (this.pos < this.text.length && IDENTIFIER_PART.test(this.text[this.pos] as string)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] as string)) this.pos++;
  }

  private expect(ch: string): void {
    if (this.text[this.pos] !== ch) this.fail(`expected "${ch}"`);
    this.pos++;
  }

  private fail(message: string): never {
    throw new QueryError(`${message} at position ${this.pos}`);
  }
}

export function parseRelaxedJson(text: string): QueryLiteral {
  return new RelaxedJsonParser(text).parseDocument();
}
