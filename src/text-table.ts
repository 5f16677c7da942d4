import { printable } from './errors.js';

/**
 * A table for a terminal: columns as wide as their widest cell, two spaces apart, the columns
 * in `rightAligned` (numbers) aligned right; one string per line, the header first (with `rule`,
 * a line of dashes under it). Cells are made printable: many hold what CPQ sent (company names,
 * logins, error messages).
 */
export function textTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number> = new Set(),
  options: { rule?: boolean } = {},
): string[] {
  const body = rows.map((r) => r.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...(options.rule ? [line(widths.map((w) => '-'.repeat(w)))] : []), ...body.map(line)];
}
