import type { AppConfig } from '../config.js';
import type { Queryable } from '../db/compiled-query.js';
import { countRunChangesByCompany } from '../db/sql/count-run-changes-by-company.js';
import { createLogger, type Logger } from '../logger.js';
import { ProgressDisplay, progressWanted } from './display.js';
import { formatSummary, type RunTotals } from './summary.js';

export { ProgressDisplay, formatDuration, progressWanted, streamLine } from './display.js';
export { ExportDisplay, exportLine, exportProgress, exportSummary } from './export-display.js';
export { formatSummary } from './summary.js';

/** The log message of each page read: a line per page would scroll the display away, so it goes to debug while it shows. */
const PAGE_MESSAGES = ['page read'];

/**
 * The progress display of `run` on `out` and the logger that prints above it (human-readable,
 * page lines at debug), or undefined when `run` logs as always: not a terminal, or LOG_FORMAT=json.
 */
export function terminalProgress(
  config: Pick<AppConfig, 'logLevel' | 'logFormat'>,
  out: NodeJS.WritableStream & { isTTY?: boolean },
): { display: ProgressDisplay; log: Logger } | undefined {
  if (!progressWanted(config.logFormat, out)) return undefined;
  const display = new ProgressDisplay(out);
  const log = createLogger({ level: config.logLevel, format: 'pretty', destination: display.logStream(), demote: PAGE_MESSAGES });
  return { display, log };
}

/** Stops the display and prints the per-company summary of a committed run. */
export async function printSummary(
  on: Queryable,
  run: RunTotals & { runId: string; site?: string },
  display: ProgressDisplay,
  out: NodeJS.WritableStream,
): Promise<void> {
  display.stop();
  // Several sites: a table each, under its name.
  const heading = run.site !== undefined && display.sites().size > 1 ? `site ${run.site}\n` : '';
  out.write(heading + formatSummary(run, await countRunChangesByCompany(on, run.runId), display.streamSeconds(run.site)));
}
