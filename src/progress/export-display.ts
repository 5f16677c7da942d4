import { stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { MultiBar } from 'cli-progress';
import type { AppConfig } from '../config.js';
import { printable } from '../errors.js';
import type { ExportProgress } from '../history/export.js';
import { createLogger, type Logger } from '../logger.js';
import { countText, formatCount, formatDuration, logAbove, progressWanted } from './display.js';

/**
 * An export's line: `users.csv  [█████░░░░░]  4,000 of 10,000  1,234 rows/s  5s left  3s elapsed`;
 * without a total (the export knows none), the rows written and their rate only.
 */
export function exportLine(file: string, rows: number, total: number | null, startedAt: number, now: number): string {
  const seconds = (now - startedAt) / 1000;
  // The file is named as the operator typed it: printable, so that a name cannot act on the terminal.
  return `${printable(file)}  ${countText(rows, total, seconds, 'rows')}  ${formatDuration(seconds)} elapsed`;
}

/** The line left once an export is in place: `wrote 12,345 rows (4,096,000 bytes) to users.csv in 3.2 s`. */
export function exportSummary(file: string, rows: number, bytes: number | undefined, seconds: number): string {
  const size = bytes === undefined ? '' : ` (${formatCount(bytes)} bytes)`;
  return `wrote ${formatCount(rows)} rows${size} to ${printable(file)} in ${seconds.toFixed(1)} s\n`;
}

/**
 * The terminal display of an export to a file (`changes`/`snapshot --out`): one line redrawn in
 * place (cli-progress, as `run`'s), then the summary. The export tells it of its rows once a batch
 * (ExportProgress), which only stores the count: the display's own timer redraws, a few times a
 * second, so that the export's loop pays nothing for it.
 */
export class ExportDisplay implements ExportProgress {
  private readonly bars: MultiBar;
  private readonly startedAt = Date.now();
  private rows = 0;
  private total: number | null = null;
  private stopped = false;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly file: string,
  ) {
    this.bars = new MultiBar({
      stream: out,
      format: () => exportLine(this.file, this.rows, this.total, this.startedAt, Date.now()),
      hideCursor: true,
      // The summary takes the line's place (finish); a failed export leaves only its error.
      clearOnComplete: true,
      stopOnComplete: false,
      // writeOutput's own signal handling decides what a signal does; the 'exit' below gives the cursor back.
      gracefulExit: false,
      autopadding: false,
      linewrap: false,
      fps: 4,
    });
    this.bars.create(0, 0);
    // A signal ends the export with process.exit (writeOutput): the terminal's cursor must not stay hidden.
    process.once('exit', this.restore);
  }

  private readonly restore = () => {
    this.stop();
  };

  expect(total: number): void {
    this.total = total;
  }

  written(rows: number): void {
    this.rows = rows;
  }

  /** Where log lines go while the display shows: printed above its line (logAbove). */
  logStream(): Writable {
    return logAbove(this.bars, this.out, () => !this.stopped);
  }

  /** The export is in place: the line gives way to the summary, with the file's size. */
  async finish(): Promise<void> {
    const seconds = (Date.now() - this.startedAt) / 1000;
    // The export is done: a file gone from under it already (moved by another process) must not fail it, only its size go unsaid.
    const size = await stat(this.file).then(
      (s) => s.size,
      () => undefined,
    );
    this.stop();
    this.out.write(exportSummary(this.file, this.rows, size, seconds));
  }

  /**
   * Clears the line and gives the terminal back. A failed export leaves no line: its file is
   * removed, and its one-line error says what happened.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    process.off('exit', this.restore);
    // The log lines still buffered are printed by one last redraw; stop() then clears the line.
    this.bars.update();
    this.bars.stop();
  }
}

/**
 * The display of an export to `file` on `out` (standard error) and a logger that prints above it,
 * or undefined when the export shows none: written to standard output (the display would be mixed
 * into the data), not a terminal (CI logs, cron), or LOG_FORMAT=json.
 */
export function exportProgress(
  config: Pick<AppConfig, 'logLevel' | 'logFormat'>,
  file: string | undefined,
  out: NodeJS.WritableStream & { isTTY?: boolean },
): { display: ExportDisplay; log: Logger } | undefined {
  if (file === undefined || !progressWanted(config.logFormat, out)) return undefined;
  const display = new ExportDisplay(out, file);
  return { display, log: createLogger({ level: config.logLevel, format: 'pretty', destination: display.logStream() }) };
}
