import { parseExactJson } from './json.js';
import { EntryContentError, MAX_RECORD_CHARS, type RecordSink } from './zip-entry-kind.js';

/**
 * A `.jsonl` / `.ndjson` entry read as a stream: one user per line, each line parsed by
 * parseExactJson like a JSON response. Blank lines are skipped; `\r\n` line ends are accepted.
 */
export class JsonLinesParser {
  private parts: string[] = [];
  private partLength = 0;
  private line = 0;
  private started = false;

  constructor(private readonly sink: RecordSink) {}

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
          this.checkSize();
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

  private checkSize() {
    if (this.partLength > MAX_RECORD_CHARS) {
      throw new EntryContentError(`line ${this.line + 1} is longer than ${MAX_RECORD_CHARS / 1024 / 1024} MiB; refused`);
    }
  }

  private record(line: string) {
    if (line.length > MAX_RECORD_CHARS) this.checkSize();
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (text.trim() === '') return;
    let record: unknown;
    try {
      record = parseExactJson(text);
    } catch (err) {
      throw new EntryContentError(`line ${this.line} is not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
    }
    this.sink(record, `line ${this.line}`);
  }
}
