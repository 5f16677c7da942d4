/*
 * The date-time form the sync stores: `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC, years 0001-9999, and
 * `YYYY-MM-DDTHH:MM:SS.mmmuuuZ` when the time has microseconds (Postgres keeps them; CPQ sends
 * milliseconds, but a site that sends more is stored exactly, not rounded). Normalize makes every
 * date-time one of the two; src/db/copy.ts writes them into timestamp columns; exports print the
 * same two forms (src/db/as-text.ts).
 */

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether the proleptic Gregorian calendar has this day (V8's Date rolls 2025-02-31 over to March 3rd instead). */
export function isCalendarDay(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0);
}

/** Where the canonical form `2025-09-26T12:17:59.000Z` has other characters than digits (Z: at its end). */
const TIMESTAMP_SEPARATORS: readonly (readonly [number, number])[] = [
  [4, 0x2d], // -
  [7, 0x2d],
  [10, 0x54], // T
  [13, 0x3a], // :
  [16, 0x3a],
  [19, 0x2e], // .
];
const Z = 0x5a;
/** Lengths of the two canonical forms: milliseconds, and microseconds (three more digits, not 000). */
const MS_FORM = 24;
const US_FORM = 27;

/** The number the digits of `text` from `start` to `end` spell, or NaN where one is not a digit. */
function digits(text: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return Number.NaN;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Unix milliseconds (whole: subMillisecond has the microseconds past them) of a date-time in one
 * of the two forms the sync writes into timestamp columns (above); undefined for anything else, a
 * day the calendar lacks included. Read by hand: a regex and Date.parse for each
 * of a user's dates cost more than the rest of its row's encoding.
 */
export function canonicalTimestampMs(text: string): number | undefined {
  const length = text.length;
  if ((length !== MS_FORM && length !== US_FORM) || text.charCodeAt(length - 1) !== Z) return undefined;
  for (const [at, code] of TIMESTAMP_SEPARATORS) if (text.charCodeAt(at) !== code) return undefined;
  // The microsecond form only when there are microseconds: one text per instant.
  if (length === US_FORM && !(subMillisecond(text) > 0)) return undefined;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 7);
  const day = digits(text, 8, 10);
  const hour = digits(text, 11, 13);
  const minute = digits(text, 14, 16);
  const second = digits(text, 17, 19);
  const millisecond = digits(text, 20, 23);
  // NaN fails every comparison: a non-digit anywhere ends here.
  if (!(year >= 1 && hour <= 23 && minute <= 59 && second <= 59 && millisecond >= 0)) return undefined;
  if (!isCalendarDay(year, month, day)) return undefined;
  // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const days = era * 146_097 + yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear - 719_468;
  return days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + millisecond;
}

/** The microseconds past the millisecond of a canonical date-time (0 for the millisecond form). */
export function subMillisecond(text: string): number {
  return text.length === US_FORM ? digits(text, 23, 26) : 0;
}

/** Whether canonical date-time `a` is later than `b` (the two forms compare by instant, not as text). */
export function laterTimestamp(a: string, b: string): boolean {
  if (a.length === b.length) return a > b;
  const ms = canonicalTimestampMs(a)! - canonicalTimestampMs(b)!;
  return ms > 0 || (ms === 0 && subMillisecond(a) > subMillisecond(b));
}

/** A UTC designator or offset at the end of a date-time. */
const ZONE_SUFFIX = /(Z|[+-]\d{2}(:?\d{2})?)$/i;
/** An offset in whole hours (`+05`), which ISO-8601 allows and V8's Date.parse does not read. */
const HOURS_OFFSET = /[+-]\d{2}$/;

/**
 * An ISO-8601 date-time (a date, `T`, a time) with its zone written so that Date.parse reads it
 * as meant: none is UTC, as CPQ documents its times (Date would read it in the zone of the
 * machine running the sync); `±hh` is `±hh:00`. The one rule for zones of a dateModified and of
 * `--since` / `--as-of`.
 */
export function withExplicitZone(dateTime: string): string {
  return !ZONE_SUFFIX.test(dateTime) ? `${dateTime}Z` : HOURS_OFFSET.test(dateTime) ? `${dateTime}:00` : dateTime;
}

/** The fraction of a second, after the seconds: its digits past the millisecond are read by hand (Date keeps milliseconds). */
export const SECOND_FRACTION = /:\d{2}\.(\d+)/;

/**
 * Microseconds since 1970 of a date-time CPQ sent (ISO-8601; none for a zone is UTC, as
 * withExplicitZone reads it), to tell which of two is later or whether they are one instant;
 * undefined when it is none. Not a value to store: the normalizer's timestamp is.
 */
export function instantMicros(dateTime: string): number | undefined {
  const ms = Date.parse(withExplicitZone(dateTime));
  if (Number.isNaN(ms)) return undefined;
  return ms * 1000 + Number((SECOND_FRACTION.exec(dateTime)?.[1] ?? '').slice(3, 6).padEnd(3, '0'));
}

const INSTANT_ARGUMENT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?))?$/i;

/**
 * An instant as given on the command line (`--since`, `--as-of`): an ISO date or date-time. One
 * without a zone is UTC, as a dateModified without one is: read in the machine's zone, the same
 * command would answer differently with the TZ of whoever runs it. Undefined for anything else,
 * a day the calendar lacks and digits finer than a millisecond included.
 */
export function instantArgument(text: string): Date | undefined {
  // A Date holds milliseconds: finer digits (a time copied from SQL, which prints microseconds)
  // were dropped without a word, and `--since` took in a run that committed before the time given.
  if (/\.\d{3}\d*[1-9]/.test(text.trim())) return undefined;
  const m = INSTANT_ARGUMENT.exec(text.trim());
  if (!m || !isCalendarDay(Number(m[1]), Number(m[2]), Number(m[3]))) return undefined;
  const time = new Date(withExplicitZone(`${m[1]}-${m[2]}-${m[3]}T${m[4] ?? '00:00'}`));
  return Number.isNaN(time.getTime()) ? undefined : time;
}
