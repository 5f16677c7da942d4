/**
 * A summary of a V8 CPU profile (a .cpuprofile file, as `node --cpu-prof` writes it): the
 * functions that took the most self time, each with its share of the busy samples.
 *
 * Busy samples are all samples but "(idle)" (the event loop waiting for I/O): the shares then
 * add up to the thread's time at work, not to its wall time. V8 samples on a wall-clock interval,
 * so the time between samples (the self ms) also holds time the thread waited for a core on a
 * loaded machine or blocked in a system call: busy ms can exceed the thread's CPU time, and the
 * shares are what to compare between runs. "(garbage collector)" and "(program)" (V8 and Node's
 * native code outside any JavaScript function) stay as lines of their own. A function is one source position (name, file, line, column), wherever in the call
 * tree it ran. Positions in the repo's compiled files are given in their TypeScript source when
 * the compiled file has its source map beside it (dist/cpq/json.js -> src/cpq/json.ts), so the
 * lines point at what to edit.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  /** Zero-based, -1 for V8's own entries such as "(program)". */
  lineNumber: number;
  columnNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds from the previous sample (from startTime for the first). */
  timeDeltas: number[];
}

export interface ProfileEntry {
  /** Share of the busy samples, 0 to 1. */
  share: number;
  samples: number;
  /** Self time in ms: each sample counts until the next one (the ranking is by samples). */
  selfMs: number;
  name: string;
  /** file:line relative to `root` (or a node: module, or a URL outside it); '' for V8's own entries. */
  location: string;
}

export interface ProfileSummary {
  /** Samples outside "(idle)". */
  busySamples: number;
  busyMs: number;
  idleSamples: number;
  /** The top functions by self time, largest first. */
  entries: ProfileEntry[];
  /** The entries as aligned text, with a header line. */
  lines: string[];
}

function isProfile(value: unknown): value is CpuProfile {
  const p = value as Partial<CpuProfile> | null;
  return (
    typeof p === 'object' &&
    p !== null &&
    Array.isArray(p.nodes) &&
    Array.isArray(p.samples) &&
    Array.isArray(p.timeDeltas) &&
    p.samples.length === p.timeDeltas.length &&
    typeof p.endTime === 'number'
  );
}

/** Source maps of the compiled files, read once each (null: none, or not readable). */
class SourcePositions {
  readonly #maps = new Map<string, SourceMap | null>();

  constructor(private readonly root: string) {}

  /** file:line (1-based) for a zero-based position in a script, relative to the root where it is under it. */
  locate(url: string, line: number, column: number): string {
    if (url === '') return '';
    if (!url.startsWith('file:')) return `${url}:${line + 1}`;
    const file = fileURLToPath(url);
    const mapped = this.#original(file, line, column);
    if (mapped) return `${this.#relative(mapped.file)}:${mapped.line + 1}`;
    return `${this.#relative(file)}:${line + 1}`;
  }

  #relative(file: string): string {
    const rel = relative(this.root, file);
    return rel.startsWith('..') || isAbsolute(rel) ? file : rel;
  }

  #original(file: string, line: number, column: number): { file: string; line: number } | undefined {
    // Only the repo's own compiled files: a dependency's map points at sources it does not ship.
    if (file.split(sep).includes('node_modules')) return undefined;
    let map = this.#maps.get(file);
    if (map === undefined) {
      map = null;
      try {
        if (existsSync(`${file}.map`)) map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as SourceMapPayload);
      } catch {
        // an unreadable map: the compiled position is still a position
      }
      this.#maps.set(file, map);
    }
    if (!map) return undefined;
    const entry = map.findEntry(line, column);
    if (!('originalSource' in entry)) return undefined;
    const source = entry.originalSource.startsWith('file:') ? fileURLToPath(entry.originalSource) : resolve(dirname(file), entry.originalSource);
    return { file: source, line: entry.originalLine };
  }
}

/**
 * Reads a .cpuprofile and returns its `top` functions by self time. `root` is the directory
 * locations are given relative to (the repo).
 */
export async function summarizeProfile(path: string, options: { root: string; top?: number }): Promise<ProfileSummary> {
  let profile: unknown;
  try {
    profile = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`CPU profile ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!isProfile(profile)) throw new Error(`CPU profile ${path}: not a V8 CPU profile (nodes, samples, timeDeltas)`);
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const positions = new SourcePositions(options.root);

  // Self time per function: a sample lasts until the next one (the last until endTime).
  const byFunction = new Map<string, { frame: CallFrame; samples: number; micros: number }>();
  let at = profile.startTime;
  const times = profile.timeDeltas.map((delta) => (at += delta));
  let idleSamples = 0;
  let busySamples = 0;
  let busyMicros = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = frames.get(profile.samples[i]!);
    if (!frame) throw new Error(`CPU profile ${path}: sample ${i} names node ${profile.samples[i]}, which it does not have`);
    const micros = Math.max(0, (times[i + 1] ?? profile.endTime) - times[i]!);
    if (frame.functionName === '(idle)') {
      idleSamples++;
      continue;
    }
    busySamples++;
    busyMicros += micros;
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}`;
    const seen = byFunction.get(key);
    if (seen) {
      seen.samples++;
      seen.micros += micros;
    } else byFunction.set(key, { frame, samples: 1, micros });
  }

  const entries: ProfileEntry[] = [...byFunction.values()]
    .sort((a, b) => b.samples - a.samples || b.micros - a.micros)
    .slice(0, options.top ?? 15)
    .map(({ frame, samples, micros }) => ({
      share: busySamples === 0 ? 0 : samples / busySamples,
      samples,
      selfMs: micros / 1000,
      name: frame.functionName === '' ? '(anonymous)' : frame.functionName,
      location: positions.locate(frame.url, frame.lineNumber, frame.columnNumber),
    }));

  const rows = entries.map((e) => [`${(100 * e.share).toFixed(1)}%`, e.selfMs.toFixed(0), e.name, e.location]);
  const header = ['busy', 'self ms', 'function', 'file:line'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // Numbers right-aligned, names and places left-aligned, no trailing spaces.
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return { busySamples, busyMs: busyMicros / 1000, idleSamples, entries, lines: [line(header), ...rows.map(line)] };
}
