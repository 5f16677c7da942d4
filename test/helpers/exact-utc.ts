/**
 * The instant an ISO-8601 date-time names, as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` (UTC, six digits of a
 * second): what a timestamptz column holds, read back with to_char's `US`. Computed apart from the
 * sync's own parsing (src/normalize/user-record.ts), for the models tests compare the database to.
 * Forms: date `T` hours and minutes, optional seconds and fraction (at most six significant
 * digits), and `Z`, `±hh`, `±hhmm` or `±hh:mm` (none: UTC).
 */
export function exactUtc(text: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text);
  if (!m) throw new Error(`exactUtc: not a date-time this helper reads: ${text}`);
  const [, y, mo, d, h, mi, s = '0', fraction = '', zone = 'Z'] = m;
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== 'Z') {
    const hhmm = zone.slice(1).replace(':', '');
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(2) || '0'));
  }
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi) - offsetMinutes, Number(s), 0);
  return `${date.toISOString().slice(0, 19)}.${fraction.padEnd(6, '0').slice(0, 6)}Z`;
}
