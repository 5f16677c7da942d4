import { parseExactRecord } from '../exact-json.js';
import { DEFAULT_RECORD_LIMIT, EntryContentError, notValidJson, type ItemTextSink, type RecordLimit, type RecordSink } from './zip-entry-kind.js';

/**
 * A `.jsonl` / `.ndjson` entry read as a stream: one user per line, each line parsed by
 * parseExactRecord like an item of a JSON response. Blank lines are skipped; `\r\n` line ends are accepted.
 */
export class JsonLinesParser {
  private parts: string[] = [];
  private partLength = 0;
  private line = 0;
  private started = false;

  constructor(
    private readonly sink: RecordSink,
    private readonly limit: RecordLimit = DEFAULT_RECORD_LIMIT,
    /** Receives each line's text instead of parsed, as JsonItemsParser's `itemText` option: the sink then gets nothing. */
    private readonly options: { itemText?: ItemTextSink } = {},
  ) {}

  write(chunk: string): void {
    let start = 0;
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) start = 1;
    }
    for (;;) {
      const newline = chunk.indexOf('\n', start);
      if (newline < 0) {
        if (start < chunk.length) {
          this.parts.push(chunk.slice(start));
          this.partLength += chunk.length - start;
          this.checkSize(this.partLength, this.line + 1);
        }
        return;
      }
      const piece = chunk.slice(start, newline);
      const text = this.parts.length === 0 ? piece : this.parts.join('') + piece;
      this.parts = [];
      this.partLength = 0;
      this.line++;
      this.record(text);
      start = newline + 1;
    }
  }

  end(): void {
    if (this.parts.length === 0) return;
    const text = this.parts.join('');
    this.parts = [];
    this.line++;
    this.record(text);
  }

  private checkSize(length: number, line: number) {
    if (length > this.limit.chars) {
      throw new EntryContentError(`line ${line} is longer than ${this.limit.name}; refused`);
    }
  }

  private record(line: string) {
    this.checkSize(line.length, this.line);
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (text.trim() === '') return;
    const where = `line ${this.line}`;
    if (this.options.itemText) {
      this.options.itemText(text, where);
      return;
    }
    let record: ReturnType<typeof parseExactRecord>;
    try {
      record = parseExactRecord(text);
    } catch (err) {
      throw notValidJson(where, err);
    }
    this.sink(record.value, where, record.storedAsSent);
  }
}
