import { Writable } from 'node:stream';
import { MultiBar, type Options, type Params, type SingleBar } from 'cli-progress';
import type { StreamReport } from '../db/schema.js';
import { printable } from '../errors.js';
import type { ProgressSink } from '../sync/stream-progress.js';

/** Whether `run` shows the progress display: on a terminal, unless the logs are to be JSON (LOG_FORMAT=json). */
export function progressWanted(logFormat: 'auto' | 'json' | 'pretty', out: { isTTY?: boolean }): boolean {
  return logFormat !== 'json' && out.isTTY === true;
}

const BAR_WIDTH = 24;
/** A count as `1,234`. */
export const formatCount = (n: number) => Math.round(n).toLocaleString('en-US');

/** Seconds as `42s`, `3m 05s`, `1h 02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A stream as the display knows it: its site (when told), its line's label, its report as last told,
 * when it started, when its last page came, and whether its read ended.
 */
interface Shown {
  site: string | undefined;
  label: string;
  report: Readonly<StreamReport>;
  startedAt: number;
  lastPageAt: number;
  ended: boolean;
}

/** The most lines the display draws, whatever the terminal's height: a run of 800 companies drew 800, scrolling, each redrawn. */
export const MAX_LINES = 20;
/** Rows of the terminal left to the log lines above the display and the prompt. */
const ROWS_SPARED = 4;

/**
 * How many lines the display may draw on a terminal of `rows`: at least a summary, a stream and
 * `+K more`; MAX_LINES when the terminal tells no height (0: a pseudo-terminal never sized).
 */
export function linesFor(rows: number | undefined): number {
  return Math.max(3, Math.min(MAX_LINES, rows === undefined || rows <= 0 ? MAX_LINES : rows - ROWS_SPARED));
}

/**
 * How far a count is: `[█████░░░░░]  4,000 of 10,000  1,234 users/s  5s left`, `done` when all
 * came; without a total (or none yet), no bar, only the count: `3,000 users  1,500 users/s`.
 */
export function countText(done: number, total: number | null, seconds: number, unit: string): string {
  const rate = done / Math.max(0.001, seconds);
  if (total === null || total <= 0) return `${formatCount(done)} ${unit}  ${formatCount(rate)} ${unit}/s`;
  const fraction = Math.min(1, done / total);
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = `[${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}]`;
  const left = done >= total ? 'done' : rate > 0 ? `${formatDuration((total - done) / rate)} left` : '';
  return `${bar}  ${formatCount(done)} of ${formatCount(total)}  ${formatCount(rate)} ${unit}/s  ${left}`.trimEnd();
}

/**
 * One stream's line: `companies/_host  [█████░░░░░]  4,000 of 10,000  1,234 users/s  5s left`.
 * Without totalResults (a zip export, a site that does not send it) there is no bar, only the count.
 */
export function streamLine(report: Readonly<StreamReport>, startedAt: number, now: number, nameWidth: number, label = report.stream): string {
  // A stream is named after its company, as CPQ spells it: printable, so it cannot act on the terminal.
  return `${printable(label).padEnd(nameWidth)}  ${countText(report.received, report.totalResults, (now - startedAt) / 1000, 'users')}`;
}

/**
 * Where log lines go while a display shows (`showing`): printed above its lines by the next
 * redraw; otherwise straight to `out`. Each write must be whole lines (pino-pretty writes one
 * entry at a time).
 */
export function logAbove(bars: MultiBar, out: NodeJS.WritableStream, showing: () => boolean): Writable {
  return new Writable({
    write: (chunk: Buffer | string, _encoding, done) => {
      const text = chunk.toString();
      if (!showing()) out.write(text);
      else bars.log(text.endsWith('\n') ? text : `${text}\n`);
      done();
    },
  });
}

/**
 * The terminal display of `run`, redrawn in place (cli-progress), with log lines printed above it.
 * A few streams show a line each. More than fit in `linesFor(rows)` lines show, in that many: one
 * line for the streams whose read ended (`412 streams done, 1,203,455 users`), a line for each
 * other stream (reading, or failed: a failed stream is never told ended) in the order they began,
 * and `+K more in progress` for those past the last line. The run tells it of each page and each
 * end through the ProgressSink.
 */
export class ProgressDisplay implements ProgressSink {
  private readonly bars: MultiBar;
  /** By site and stream name (several sites may each have a `companies/_host`). */
  private readonly shown = new Map<string, Shown>();
  /** The streams not told ended, in the order they began (a Map keeps it): the first lines of a folded display. */
  private readonly running = new Map<string, Shown>();
  private endedStreams = 0;
  private endedUsers = 0;
  /** The lines drawn (cli-progress bars, whose format draws `frame[index]`): as many as the display shows. */
  private readonly lines: SingleBar[] = [];
  /** How many lines the display may draw (linesFor), as of the last stream begun or ended. */
  private limit = MAX_LINES;
  /** The text of each line, worked out once a frame (O(lines), not O(streams): a frame is drawn 10 times a second). */
  private frame: string[] = [];
  /**
   * The sites of the streams shown (undefined: told without a site) and the widest label, kept as
   * streams are added: each line of each frame reads them, and working them out from every stream
   * there cost O(streams²) a line, O(streams³) a frame (a run of 800 companies took 13 times as long).
   */
  private readonly siteSet = new Set<string | undefined>();
  private widest = 0;
  private stopped = false;

  constructor(private readonly out: NodeJS.WritableStream & { rows?: number }) {
    const format = (_options: Options, _params: Params, payload: { index: number }) => this.frame[payload.index] ?? '';
    this.bars = new MultiBar({
      stream: out,
      format,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      // The run's own signal handling (ShutdownSignals) decides what a signal does; stop() is called after.
      gracefulExit: false,
      autopadding: false,
      linewrap: false,
      // Every line each frame, its text changed or not (at most MAX_LINES): log lines printed above
      // write over the rows the lines were on (cli-progress clears only the first), and the line of
      // the streams ended does not change with the time, so it would not be drawn again below them.
      forceRedraw: true,
      fps: 10,
    });
    // Each frame (and the redraw of a line added or taken off) draws the state as it is then.
    this.bars.on('redraw-pre', () => this.draw());
    // A forced exit (a second signal, SHUTDOWN_TIMEOUT) must not leave the terminal's cursor hidden.
    process.once('exit', this.restore);
    // A window made smaller keeps no display taller than it: the lines fit again at once, not at
    // the next stream begun or ended (review IF).
    out.on('resize', this.resized);
  }

  private readonly resized = () => {
    if (!this.stopped) this.fit();
  };

  private readonly restore = () => {
    this.stop();
  };

  /** The sites the display has shown streams of. */
  sites(): Set<string | undefined> {
    return new Set(this.siteSet);
  }

  /** A stream's name, after its site's when the display shows more than one site. */
  private label(site: string | undefined, stream: string): string {
    return this.siteSet.size > 1 && site !== undefined ? `${site}: ${stream}` : stream;
  }

  /** Sets a stream's label, and widens the lines to it. */
  private relabel(s: Shown): void {
    s.label = this.label(s.site, s.report.stream);
    this.widest = Math.max(this.widest, printable(s.label).length);
  }

  update(report: Readonly<StreamReport>, startedAt: number): void {
    this.show(undefined, report, startedAt);
  }

  ended(report: Readonly<StreamReport>): void {
    this.end(undefined, report);
  }

  /** The sink of one site's run: its lines are told apart from other sites' (ProgressSink.forSite). */
  forSite(site: string): ProgressSink {
    return { update: (report, startedAt) => this.show(site, report, startedAt), ended: (report) => this.end(site, report) };
  }

  private show(site: string | undefined, report: Readonly<StreamReport>, startedAt: number): void {
    if (this.stopped) return;
    const now = Date.now();
    const key = `${site ?? ''}\n${report.stream}`;
    const known = this.shown.get(key);
    if (known) {
      known.report = report;
      known.lastPageAt = now;
      return;
    }
    const added: Shown = { site, label: report.stream, report, startedAt, lastPageAt: now, ended: false };
    this.shown.set(key, added);
    this.running.set(key, added);
    const multiSite = this.siteSet.size > 1;
    this.siteSet.add(site);
    // A second site puts each label after its site: all labels change, once (sites are never removed).
    if (!multiSite && this.siteSet.size > 1) for (const s of this.shown.values()) this.relabel(s);
    else this.relabel(added);
    this.fit();
  }

  /** A stream's read ended: folded into the line of those ended, once the streams no longer fit a line each. */
  private end(site: string | undefined, report: Readonly<StreamReport>): void {
    if (this.stopped) return;
    const key = `${site ?? ''}\n${report.stream}`;
    const s = this.shown.get(key);
    if (!s || s.ended) return;
    s.report = report;
    s.ended = true;
    this.running.delete(key);
    this.endedStreams++;
    this.endedUsers += report.received;
    this.fit();
  }

  /**
   * What the display shows: every stream a line when they fit; else the line of the streams
   * ended (when any), the first `reading` streams not ended, and how many more there are.
   */
  private layout(): { folded: boolean; summary: boolean; reading: number; more: number } {
    if (this.shown.size <= this.limit) return { folded: false, summary: false, reading: this.shown.size, more: 0 };
    const summary = this.endedStreams > 0;
    const room = this.limit - (summary ? 1 : 0);
    const reading = this.running.size <= room ? this.running.size : room - 1;
    return { folded: true, summary, reading, more: this.running.size - reading };
  }

  /** Adds or takes off lines (the last ones: cli-progress redraws a line only when its text changed) to those the display shows. */
  private fit(): void {
    this.limit = linesFor(this.out.rows);
    const { summary, reading, more } = this.layout();
    const count = (summary ? 1 : 0) + reading + (more > 0 ? 1 : 0);
    while (this.lines.length < count) this.lines.push(this.bars.create(0, 0, { index: this.lines.length }));
    while (this.lines.length > count) this.bars.remove(this.lines.pop()!);
  }

  /** Works out the text of each line for the frame being drawn. */
  private draw(): void {
    const now = Date.now();
    const { folded, summary, reading, more } = this.layout();
    const frame: string[] = [];
    if (summary) frame.push(`${formatCount(this.endedStreams)} stream${this.endedStreams === 1 ? '' : 's'} done, ${formatCount(this.endedUsers)} users`);
    // Only the streams drawn are read: stop at the last line.
    for (const s of (folded ? this.running : this.shown).values()) {
      if (frame.length >= (summary ? 1 : 0) + reading) break;
      frame.push(streamLine(s.report, s.startedAt, now, this.widest, s.label));
    }
    if (more > 0) frame.push(`+${formatCount(more)} more in progress`);
    this.frame = frame;
  }

  /** Seconds from each stream's start to its last page, by stream name: of `site`'s streams, or of those told without a site. */
  streamSeconds(site?: string): Map<string, number> {
    return new Map(
      [...this.shown.values()].filter((s) => s.site === site || s.site === undefined).map((s) => [s.report.stream, (s.lastPageAt - s.startedAt) / 1000]),
    );
  }

  /** Where log lines go while the display shows: printed above the stream lines (logAbove). */
  logStream(): Writable {
    return logAbove(this.bars, this.out, () => !this.stopped && this.shown.size > 0);
  }

  /** Draws the last state of every line and gives the terminal back. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    process.off('exit', this.restore);
    this.out.off('resize', this.resized);
    // stop() draws the lines but not the log lines still buffered: one last redraw prints those (and works out the lines' last state).
    if (this.shown.size > 0) this.bars.update();
    this.bars.stop();
  }
}
