import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

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
];

export interface LoggerOptions {
  level: string;
  format: 'auto' | 'json' | 'pretty';
  destination?: NodeJS.WritableStream;
}

/** pino JSON to stdout; human-readable lines when stdout is a terminal (or LOG_FORMAT=pretty). */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stdout;
  const human = options.format === 'pretty' || (options.format === 'auto' && (destination as NodeJS.WriteStream).isTTY);
  const base = { level: options.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { name: 'cpq-sync' } };
  if (human) {
    return pino(base, pretty({ destination, colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname,name', sync: true }));
  }
  return pino(base, destination as pino.DestinationStream);
}
