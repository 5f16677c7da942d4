import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { printable, printableInJson } from './errors.js';
import { requireWhenUsed } from './require-when-used.js';

export type { Logger };

/** Paths pino blanks wherever they appear in a log object; credentials must never be logged, this is the safety net. */
export const REDACT_PATHS = [
  'password',
  'token',
  'authorization',
  'clientSecret',
  'secret',
  '*.password',
  '*.token',
  '*.authorization',
  '*.clientSecret',
  '*.secret',
  'headers.authorization',
  '*.headers.authorization',
  'config.cpq.auth',
  'cpq.auth',
  'auth',
  // A site of CPQ_SITES_FILE, alone or in the configuration's list.
  'site.cpq.auth',
  'sites[*].cpq.auth',
  'config.sites[*].cpq.auth',
];

export interface LoggerOptions {
  level: string;
  format: 'auto' | 'json' | 'pretty';
  destination?: NodeJS.WritableStream;
  /** Messages logged at info that go to debug instead (the page lines while `run` shows its progress display). */
  demote?: readonly string[];
}

/** pino JSON to stdout; human-readable lines when stdout is a terminal (or LOG_FORMAT=pretty). */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stdout;
  const human = options.format === 'pretty' || (options.format === 'auto' && (destination as NodeJS.WriteStream).isTTY);
  const demoted = options.demote ?? [];
  const base: pino.LoggerOptions = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { name: 'cpq-sync' },
    ...(demoted.length > 0 || human
      ? {
          hooks: {
            logMethod(this: Logger, given: Parameters<pino.LogFn>, method: pino.LogFn, level: number) {
              // A terminal's message (and the strings it interpolates) through printable: pino-pretty
              // drops a message's controls but keeps its line breaks (a CPQ name holding one forged
              // a log line) and the characters that reorder text (reviews HA, HB).
              const args = human ? (given.map((a: unknown) => (typeof a === 'string' ? printable(a) : a)) as typeof given) : given;
              if (level === this.levels.values.info && args.some((a: unknown) => typeof a === 'string' && demoted.includes(a))) {
                // Logged again through debug (which this hook lets through), or not at all below that level.
                this.debug(...args);
                return;
              }
              method.apply(this, args);
            },
          },
        }
      : {}),
  };
  if (human) {
    const pretty = requireWhenUsed('pino-pretty') as typeof PinoPretty;
    // pino-pretty prints a line's fields as JSON, which leaves DEL, the C1 controls (U+009B is CSI
    // to some terminals) and the characters that reorder text as they are: CPQ's text among them
    // (a company name in a warning) must not act on the terminal, or show other text than it is.
    // (Not a child's bindings: pino formats those as given. Ours are a site and a run id.)
    const terminal = { ...base, formatters: { log: (fields: Record<string, unknown>) => printableFields(fields) as Record<string, unknown> } };
    return pino(terminal, pretty({ destination, colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname,name', sync: true }));
  }
  return pino(base, destination as pino.DestinationStream);
}

/** `value` with what JSON leaves in its strings (in arrays, plain objects and errors too) escaped (printableInJson). */
function printableFields(value: unknown): unknown {
  if (typeof value === 'string') return printableInJson(value);
  // pino serializes an Error after this hook, its message and stack as they are.
  if (value instanceof Error) return { type: value.name, message: printableInJson(value.message), stack: printableInJson(value.stack ?? '') };
  if (Array.isArray(value)) return value.map(printableFields);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [printableFields(k) as string, printableFields(v)]));
  }
  return value;
}
