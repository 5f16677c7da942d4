import { DEFAULT_RECORD_LIMIT, EntryContentError, type RecordLimit } from './zip-entry-kind.js';

/*
 * RFC 4180 CSV read as a stream: comma-separated fields, double-quoted fields may hold commas,
 * line breaks and doubled quotes (""); rows end with \n, \r\n or \r. A UTF-8 byte-order mark is
 * dropped and empty lines are skipped. Anything else (a quote inside an unquoted field, text
 * after a closing quote, a quote left open at the end) is an error naming the line: a loose
 * reading could silently shift columns. Written here rather than taken from csv-parse, which
 * needs 4-11x the CPU on a 100,000-user export (bench/RESULTS.md, "CPU of the CSV parser").
 */

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

const enum State {
  /** At the start of a field (or of a row). */
  FieldStart,
  Unquoted,
  Quoted,
  /** Just after a quote inside a quoted field: a doubled quote, or the field's end. */
  QuoteInQuoted,
}

/** Receives each row with the line it starts on (1-based). */
export type RowSink = (cells: string[], line: number) => void;

export class CsvRowsParser {
  private state = State.FieldStart;
  private cells: string[] = [];
  private field: string[] = [];
  private rowChars = 0;
  /** The line being read (1-based) and the line the current row started on. */
  private line = 1;
  private rowLine = 1;
  /** A \r ended the last row: a \n right after it belongs to the same line end. */
  private skipLf = false;
  private started = false;

  constructor(
    private readonly sink: RowSink,
    private readonly limit: RecordLimit = DEFAULT_RECORD_LIMIT,
  ) {}

  write(chunk: string): void {
    let i = 0;
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) i = 1;
    }
    const n = chunk.length;
    let segment = i; // start of the current field's text in this chunk (Unquoted / Quoted)
    while (i < n) {
      const c = chunk.charCodeAt(i);
      switch (this.state) {
        case State.FieldStart:
          if (this.skipLf) {
            this.skipLf = false;
            if (c === LF) {
              i++;
              continue;
            }
          }
          if (c === QUOTE) {
            this.state = State.Quoted;
            segment = ++i;
          } else if (c === COMMA) {
            this.pushCell('');
            i++;
          } else if (c === LF || c === CR) {
            if (this.cells.length > 0) this.pushCell('');
            this.endRow(c);
            i++;
          } else {
            this.state = State.Unquoted;
            segment = i;
          }
          break;
        case State.Unquoted: {
          let j = i;
          let d = 0;
          for (; j < n; j++) {
            d = chunk.charCodeAt(j);
            if (d === COMMA || d === LF || d === CR || d === QUOTE) break;
          }
          this.take(chunk, segment, j);
          if (j === n) {
            i = n;
            break;
          }
          if (d === QUOTE) throw new EntryContentError(`line ${this.line}: a quote inside an unquoted field`);
          this.endField();
          if (d === COMMA) this.state = State.FieldStart;
          else this.endRow(d);
          i = j + 1;
          break;
        }
        case State.Quoted: {
          // A doubled quote within the chunk stays in the field's text, undoubled when taken: one
          // piece per quote cost the field an array slot each, none of them counted against the
          // row's bound (a field of 16 MiB of "" held 8 million slots, and its row was counted empty).
          let quote = chunk.indexOf('"', i);
          let doubled = false;
          while (quote >= 0 && quote + 1 < n && chunk.charCodeAt(quote + 1) === QUOTE) {
            doubled = true;
            quote = chunk.indexOf('"', quote + 2);
          }
          const end = quote < 0 ? n : quote;
          this.countLines(chunk, i, end);
          this.take(chunk, segment, end, doubled);
          if (quote < 0) {
            i = n;
            break;
          }
          this.state = State.QuoteInQuoted;
          i = quote + 1;
          break;
        }
        case State.QuoteInQuoted:
          // A quote doubled across two chunks (the first ended on it).
          if (c === QUOTE) {
            this.field.push('"');
            this.grow(2);
            this.state = State.Quoted;
            segment = ++i;
          } else if (c === COMMA) {
            this.endField();
            this.state = State.FieldStart;
            i++;
          } else if (c === LF || c === CR) {
            this.endField();
            this.endRow(c);
            i++;
          } else {
            throw new EntryContentError(`line ${this.line}: text after the closing quote of a field`);
          }
          break;
      }
    }
  }

  end(): void {
    if (this.state === State.Quoted) throw new EntryContentError(`line ${this.rowLine}: a quoted field is not closed before the end of the entry`);
    if (this.state === State.Unquoted || this.state === State.QuoteInQuoted) this.endField();
    else if (this.cells.length > 0) this.pushCell(''); // the row ended in a comma
    if (this.cells.length > 0) this.emit();
  }

  /** Takes the field's text from `from` to `to` of the chunk, its doubled quotes undoubled when `doubled`. */
  private take(chunk: string, from: number, to: number, doubled = false) {
    if (to <= from) return;
    const text = chunk.slice(from, to);
    // split and join, not replaceAll: V8 keeps replaceAll's result as one piece per replacement
    // (~1 MB for 32,768 quotes undoubled, 32 bytes a character) until it is read.
    this.field.push(doubled ? text.split('""').join('"') : text);
    this.grow(to - from);
  }

  /** Counts a row's characters (separators too, so a row of a million empty fields counts). */
  private grow(chars: number) {
    this.rowChars += chars;
    if (this.rowChars > this.limit.chars) {
      throw new EntryContentError(`line ${this.rowLine}: a row longer than ${this.limit.name} (a quote left open?); refused`);
    }
  }

  private pushCell(text: string) {
    this.cells.push(text);
    this.grow(1);
  }

  private countLines(chunk: string, from: number, to: number) {
    for (let at = chunk.indexOf('\n', from); at >= 0 && at < to; at = chunk.indexOf('\n', at + 1)) this.line++;
  }

  private endField() {
    this.pushCell(this.field.length === 1 ? this.field[0]! : this.field.join(''));
    this.field = [];
  }

  private endRow(terminator: number) {
    if (this.cells.length > 0) this.emit();
    this.line++;
    this.rowLine = this.line;
    this.skipLf = terminator === CR;
    this.state = State.FieldStart;
  }

  private emit() {
    const cells = this.cells;
    this.cells = [];
    this.rowChars = 0;
    this.sink(cells, this.rowLine);
  }
}
