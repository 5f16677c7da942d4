import type { CompanyRunCounts } from '../db/sql/count-run-changes-by-company.js';
import type { StreamReport } from '../db/schema.js';
import { textTable } from '../text-table.js';

/** What the summary needs of a run: its streams and totals (a RunResult). */
export interface RunTotals {
  streams: readonly StreamReport[];
  inserted: number;
  updated: number;
  deleted: number;
  restored: number;
  unchanged: number;
  seconds: number;
}

const COLUMNS = ['company', 'mode', 'read', 'inserted', 'updated', 'deleted', 'restored', 'unchanged', 'seconds'] as const;

/**
 * The table `run` prints in a terminal after a successful run: per company, its read (mode, users
 * received) and what the run did (from the change log, `counts`), and the seconds from the start
 * of its read to its last page (`streamSeconds`, by stream name); then the run's totals, whose
 * seconds run to the commit. Integration users are counted under their company (`_host`); their
 * feed's read shows in the total.
 */
export function formatSummary(run: RunTotals, counts: readonly CompanyRunCounts[], streamSeconds: ReadonlyMap<string, number>): string {
  const byCompany = new Map(counts.map((c) => [c.company, c]));
  const companies = run.streams.filter((s) => s.stream.startsWith('companies/'));
  const rows: string[][] = companies.map((s) => {
    const company = s.stream.slice('companies/'.length);
    const c = byCompany.get(company);
    const seconds = streamSeconds.get(s.stream);
    return [
      company,
      s.mode,
      String(s.received),
      ...[c?.inserted, c?.updated, c?.deleted, c?.restored, c?.unchanged].map((n) => String(n ?? 0)),
      seconds === undefined ? '' : seconds.toFixed(1),
    ];
  });
  const read = run.streams.reduce((n, s) => n + s.received, 0);
  rows.push(['total', '', String(read), ...[run.inserted, run.updated, run.deleted, run.restored, run.unchanged].map(String), run.seconds.toFixed(1)]);
  // Names and modes to the left, numbers to the right.
  const numbers = new Set(COLUMNS.map((_, i) => i).filter((i) => i >= 2));
  return `${textTable(COLUMNS, rows, numbers).join('\n')}\n`;
}
