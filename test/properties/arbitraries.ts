import fc from 'fast-check';
import { RawJson } from '../../src/simulator/index.js';
import { ALIASES, MAPPED_FIELD_KEYS } from '../../src/cpq/user-fields.js';
import { USER_FIELDS, type UserField } from '../../src/normalize/user-fields.js';

/*
 * Arbitrary CPQ users, for the property tests. A generated value is JSON as CPQ could send it:
 * numbers are RawJson literals (0.1234567890123456789, 1E+400, -0 and integers past int64 cannot
 * survive a JavaScript double), and `wireText` writes a value as the exact JSON text sent, built
 * here rather than by the code under test. Documented fields come under every spelling CPQ uses
 * (canonical, any case, the known aliases), custom fields hold any JSON shape.
 */

/** A JSON value: numbers only as RawJson literals. */
export type Json = null | boolean | string | RawJson | Json[] | { [key: string]: Json };

export function num(literal: string): RawJson {
  return new RawJson(literal);
}

/** The exact JSON text of a generated value. */
export function wireText(value: Json): string {
  if (value instanceof RawJson) return value.text;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(wireText).join(',')}]`;
  return `{${Object.entries(value)
    .map(([key, item]) => `${JSON.stringify(key)}:${wireText(item)}`)
    .join(',')}}`;
}

export const NUM_RUNS_FROM_ENV = Number(process.env.FC_NUM_RUNS ?? '') || undefined;

/**
 * numRuns for CI, or FC_NUM_RUNS (npm run test:deep); fast-check prints seed and path of any
 * failure, and FC_SEED=<seed> FC_PATH=<path> replays it.
 */
export function runs(ci: number, testTimeoutMs: number): fc.Parameters<unknown> {
  const replay = process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true };
  // Stop (shrinking included) before vitest's timeout would, so that a failure is still reported
  // with its seed. A deep run (FC_NUM_RUNS) stopped so fails: it would pass with fewer cases than
  // it asked for, in silence.
  const timeLimit = fc.interruptAfterTimeLimit(testTimeoutMs - 20_000, { failOnInterrupt: NUM_RUNS_FROM_ENV !== undefined });
  return { numRuns: NUM_RUNS_FROM_ENV ?? ci, plugins: [timeLimit], ...replay };
}

/**
 * fc.commands' settings of a model-based property: `ci` commands at most in CI; FC_MAX_COMMANDS
 * for a deeper search (longer sequences, drawn at the largest size); FC_REPLAY_PATH replays a
 * failure's sequence (printed as replayPath with its seed and path).
 */
export function commandSettings(ci: number): fc.CommandsContraints {
  const max = process.env.FC_MAX_COMMANDS;
  const replayPath = process.env.FC_REPLAY_PATH;
  return { ...(max ? { maxCommands: Number(max), size: 'max' } : { maxCommands: ci }), ...(replayPath ? { replayPath } : {}) };
}

/** A property's vitest timeout: room for its CI cases and for shrinking a failure; an hour under FC_NUM_RUNS. */
export function propertyTimeout(ciMs: number): number {
  return NUM_RUNS_FROM_ENV === undefined ? ciMs : 3_600_000;
}

// ------------------------------------------------------------------ scalars

/** Text of any Unicode: astral planes, combining marks, empty; never NUL or a lone surrogate (Postgres stores neither). */
export const anyText: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        'e\u0301',
        '\u{1F600}\u{1F3FD}',
        '\u{10FFFF}',
        'a"b\\c/\n\t',
        '\u2028\u2029',
        'Zoë',
        'ｶﾞ',
        '\ufeff',
        '\u00a0',
        '\u0085',
        '\ufffe\uffff',
        '\u200b',
        'Zoe\u0308',
        '\u212a',
        '\u0130',
        '\r\n',
        '\u001b[31m',
      ),
    },
  )
  .map((s) => s.replaceAll('\u0000', ''));

/**
 * Text that makes a name of `prefixLength` units (`u3`, `c_`) run past the 100 UTF-16 units errors
 * show of it (shownName, src/exact-json.ts): often with a surrogate pair across the cut (units 100
 * and 101) or beside it, with control characters, line breaks and quotes among the units before;
 * else simply long, of any text.
 */
export function pastTheCut(prefixLength: number): fc.Arbitrary<string> {
  const unit = fc.constantFrom('a', 'Z', '7', 'é', 'ｶ', ' ', '\n', '\r', '\t', '\u0001', '\u001f', '\u007f', '\u2028', '"', '\\', '.', '[');
  const pair = fc.constantFrom('\u{1F600}', '\u{10FFFF}', '\u{1D11E}', '\u{20000}');
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        // The pair starts at unit 99 (0-based: it would be cut in half), or one unit before or after.
        .tuple(
          fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1) }),
          fc.array(unit, { minLength: 100, maxLength: 100 }),
          pair,
          anyText,
        )
        .map(([shift, units, astral, tail]) => units.slice(0, 99 + shift - prefixLength).join('') + astral + tail),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 95, maxLength: 140 }).map((s) => s.replaceAll('\u0000', '')) },
  );
}

// eslint-disable-next-line @typescript-eslint/no-misused-spread -- ASCII digits: one code point each
const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });

/** Any JSON number literal: any length, fraction, exponent, sign; the notorious ones often. */
export const numberLiteral: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.boolean(),
        fc.oneof(
          fc.constant('0'),
          // eslint-disable-next-line @typescript-eslint/no-misused-spread -- ASCII digits: one code point each
          fc.tuple(fc.constantFrom(...'123456789'), digits(0, 30)).map(([a, b]) => a + b),
        ),
        fc.option(digits(1, 25), { nil: undefined }),
        fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3)), { nil: undefined }),
      )
      .map(
        ([negative, whole, fraction, exponent]) =>
          `${negative ? '-' : ''}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent ? exponent.join('') : ''}`,
      ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '0.30000000000000004',
      '0.1234567890123456789',
      '1E+400',
      '1e-400',
      '-0',
      '-0.0',
      '0',
      '9223372036854775807',
      '9223372036854775808',
      '-9223372036854775809',
      '181556695830934950',
      '123456789012345678901234567890',
      '1.0',
      '2.50',
      '5e-324',
      '1.7976931348623157e309',
    ),
  },
  { weight: 1, arbitrary: fc.integer().map(String) },
  // Long literals on purpose: size bias keeps the generic ones short.
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom('', '-'), digits(1, 3), digits(15, 40), fc.constantFrom('', 'e7', 'E-12'))
      .map(([sign, whole, fraction, exponent]) => `${sign}${whole.replace(/^0+(?=\d)/, '')}.${fraction}${exponent}`),
  },
  {
    weight: 1,
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- ASCII digits: one code point each
    arbitrary: fc.tuple(fc.constantFrom('', '-'), fc.constantFrom(...'123456789'), digits(18, 40)).map(([sign, first, rest]) => `${sign}${first}${rest}`),
  },
);

/** Custom fields: any JSON shape (nested objects and arrays), keys and texts of any Unicode. */
export const anyJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'json' },
    { weight: 3, arbitrary: anyText },
    { weight: 3, arbitrary: numberLiteral.map(num) },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.array(tie('value'), { maxLength: 4, depthIdentifier: 'json' }) },
    { weight: 1, arbitrary: fc.dictionary(anyText, tie('value'), { maxKeys: 4, depthIdentifier: 'json' }) },
  ),
})).value;

/**
 * Letters outside ASCII that a case mapping takes to or from an ASCII one: toLowerCase folds the
 * Kelvin sign to k, a UTF-8 locale's lower() folds İ to i, and ı and ſ upper-case to I and S.
 */
const LOOKALIKES: Readonly<Record<string, readonly string[]>> = { k: ['\u212a'], i: ['\u0130', '\u0131'], s: ['\u017f'] };

/**
 * A field name the mapping reads with one letter in a lookalike ("lin\u212as", "\u0130d"): a custom
 * field, since field names match in ASCII case only, in the normalizer and in the merge's SQL alike
 * (review GR: they folded such keys differently, and a change of the field was lost).
 */
export const lookalikeKey: fc.Arbitrary<string> = fc.constantFrom(
  ...MAPPED_FIELD_KEYS.flatMap((name) =>
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- field names are ASCII: one code point each
    [...name].flatMap((letter, at) => (LOOKALIKES[letter] ?? []).map((other) => `${name.slice(0, at)}${other}${name.slice(at + 1)}`)),
  ),
);

// ------------------------------------------------------------------ keys said twice

/**
 * What a value sent with keys said twice means (README: a key written twice counts as its last
 * copy, as JSON.parse and jsonb read it): the text is a RawJson, so the simulator sends it as it is.
 */
const MEANINGS = new WeakMap<RawJson, Json>();

/** An earlier copy of a key: any value, or one the rules refuse or Postgres cannot store, were it the copy read. */
export const earlierCopy: fc.Arbitrary<Json> = fc.oneof(
  { weight: 2, arbitrary: anyJson },
  { weight: 1, arbitrary: fc.constantFrom<Json>('\u0000', 'a\ud800', num('1e999999'), null, {}, [num('1')], true, 'x') },
);

/** An object with some of its keys said first with another value (and one key it then leaves out said, too: a later copy wins over nothing). */
const repeatedObject: fc.Arbitrary<Json> = fc
  .tuple(fc.dictionary(anyText, anyJson, { minKeys: 1, maxKeys: 3 }), fc.array(fc.tuple(fc.nat(), earlierCopy), { minLength: 1, maxLength: 3 }))
  .map(([object, copies]) => {
    const keys = Object.keys(object);
    const earlier = copies.map(([k, value]) => `${JSON.stringify(keys[k % keys.length]!)}:${wireText(value)}`);
    const text = `{${[...earlier, ...Object.entries(object).map(([k, v]) => `${JSON.stringify(k)}:${wireText(v)}`)].join(',')}}`;
    const raw = new RawJson(text);
    MEANINGS.set(raw, object);
    return raw;
  });

/** A custom field's value: any JSON, at times an object saying keys twice, alone or inside an array or another object. */
export const customJson: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: anyJson },
  { weight: 1, arbitrary: repeatedObject },
  { weight: 1, arbitrary: fc.tuple(anyJson, repeatedObject).map(([other, repeated]): Json => [other, repeated]) },
  { weight: 1, arbitrary: fc.tuple(anyText, repeatedObject).map(([key, repeated]): Json => ({ [key]: repeated })) },
);

/** A value as read: every object that says a key twice as its last copies (the reference model's reading). */
export function lastCopy(value: Json): Json {
  if (value instanceof RawJson) return MEANINGS.has(value) ? lastCopy(MEANINGS.get(value)!) : value;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(lastCopy);
  const out: { [key: string]: Json } = {};
  for (const [key, item] of Object.entries(value))
    Object.defineProperty(out, key, { value: lastCopy(item), enumerable: true, writable: true, configurable: true });
  return out;
}

// ------------------------------------------------------------------ documented fields

/**
 * A fraction of a second as ISO-8601 writes it: none, or one to nine digits whose digits past the
 * sixth are zeros (all that Postgres can store exactly; finer ones are refused, see valueFor).
 */
const secondFraction: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 0, max: 999 }).map((n) => `.${String(n).padStart(3, '0')}`),
  fc.integer({ min: 0, max: 999_999 }).map((n) => `.${String(n).padStart(6, '0')}`),
  fc
    .tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 999_999 }), fc.integer({ min: 0, max: 3 }))
    .map(([width, n, zeros]) => `.${String(n).padStart(6, '0').slice(0, width)}${'0'.repeat(zeros)}`),
);

/**
 * An ISO-8601 date-time in each form CPQ could send: seconds or none, a fraction of a second or
 * none, Z (either case), an offset (±hh, ±hhmm, ±hh:mm) or no zone at all (UTC, as CPQ documents
 * its times); and days at the edges of what Postgres and the calendar allow.
 */
export const isoDateTime: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(
        fc.date({ min: new Date('1971-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }),
        secondFraction,
        fc.boolean(),
        fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom('Z', 'z', '') },
          {
            weight: 2,
            arbitrary: fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 14 }), fc.constantFrom(0, 30, 45), fc.constantFrom('', ':', 'hours only')),
          },
        ),
      )
      .map(([date, fraction, withSeconds, zone]) => {
        // A time without seconds has no fraction either.
        const clock = (local: string) => (withSeconds || fraction !== '' ? `${local.slice(0, 19)}${fraction}` : local.slice(0, 16));
        if (typeof zone === 'string') return `${clock(date.toISOString())}${zone}`;
        const [sign, hours, withMinutes, style] = zone;
        const minutes = style === 'hours only' ? 0 : withMinutes;
        const offsetMinutes = (sign === '-' ? -1 : 1) * (hours * 60 + minutes);
        const local = new Date(date.getTime() + offsetMinutes * 60_000).toISOString(); // the wall-clock time at that offset
        const hh = String(hours).padStart(2, '0');
        const zoneText = style === 'hours only' ? `${sign}${hh}` : `${sign}${hh}${style}${String(minutes).padStart(2, '0')}`;
        return `${clock(local)}${zoneText}`;
      }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '0001-01-01T00:00:00Z',
      '9999-12-31T23:59:59.999999Z',
      '1969-12-31T23:59:59.999999Z',
      '1900-01-01T00:00:00-00:00',
      '2024-02-29T12:00:00+14:00',
      '2025-06-30T24:00:00Z',
      '2000-01-01T00:00:00.000000000+00',
      // 24:00 is the end of a day (ISO-8601): the next day's midnight, here across a year at an offset.
      '2025-12-31T24:00+01:00',
      '2024-02-29T24:00:00.000000-14:00',
    ),
  },
);

/** Whole numbers written otherwise than as digits alone: 12 as 12.0, 1.2E1, 1200e-2, "12" with spaces... */
function wholeNotation(n: bigint): fc.Arbitrary<string> {
  const sign = n < 0n ? '-' : '';
  const d = (n < 0n ? -n : n).toString();
  const mantissa = d.length > 1 ? `${d[0]}.${d.slice(1)}` : d;
  return fc.constantFrom(
    `${sign}${d}.0`,
    `${sign}${d}.000`,
    `${sign}${d}e0`,
    `${sign}${d}E+0`,
    `${sign}${d === '0' ? '0' : `${d}00`}e-2`,
    `${sign}${mantissa}E${d.length - 1}`,
    `${sign}${mantissa}e+${d.length - 1}`,
    `${sign}${d === '0' ? '0.000E-3' : `0.${d}e${d.length}`}`,
  );
}

/** A JSON number literal for a whole number in [min, max], in any notation; the zeros of every sign and form often. */
function wholeLiteral(min: bigint, max: bigint): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.bigInt({ min, max }).chain(wholeNotation) },
    { weight: 1, arbitrary: fc.constantFrom('-0', '-0.0', '0e5', '0.0', '-0E-7') },
  );
}

/** A value no whole-number column takes: a fraction, a number past the column, or text that is no integer. */
function notWhole(min: bigint, max: bigint): fc.Arbitrary<Json> {
  return fc.oneof(
    fc.constantFrom('1.5', '1e-1', '-0.000001', '12.30000000000000000001').map(num),
    fc.oneof(fc.constant(max + 1n), fc.constant(min - 1n), fc.bigInt({ min: max + 1n, max: max * 4n })).chain((n) => wholeNotation(n).map(num)),
    fc.constantFrom<Json>('1e2', '+5', '0x10', '1,000', '\uff11\uff12', '12abc', true, {}, [num('1')]),
  );
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const int64Text = fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map(String);

/** A documented field's value, and whether it breaks the documented rule (the record is refused). */
export interface FieldValue {
  value: Json;
  /** The field the run's error names: the canonical name, a part (`status.value`), or `key` for the key the value is sent under. */
  refused?: string;
}

/**
 * A number jsonb gives back in another spelling (1E2 as 100, -0 as 0, 1.5e-3 as 0.0015): where text
 * belongs it is stored as written, and a run that takes it from the stored record must keep that
 * spelling (src/normalize/stored-spellings.ts).
 */
const respelledNumber: fc.Arbitrary<Json> = fc
  .oneof(
    fc.constantFrom('1E2', '-0', '-0.0', '1.5e-3', '1.50E1', '2e+0', '100E-2'),
    numberLiteral.filter((l) => /[eE]/.test(l)),
  )
  .map(num);

/** Text as a text column takes it: any string, or a number (stored as written) or true/false. */
const textValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 10, arbitrary: anyText },
  { weight: 1, arbitrary: numberLiteral.map(num) },
  { weight: 1, arbitrary: respelledNumber },
  { weight: 1, arbitrary: fc.boolean() },
);

/** A string Postgres cannot store, as CPQ can send it in JSON (`\u0000`, a lone `\ud800`). */
const unstorableText: fc.Arbitrary<string> = fc
  .tuple(anyText, fc.constantFrom('\u0000', '\ud800', '\udfff', 'a\udc00b', '\u0000\ud800'), anyText)
  .map(([a, bad, b]) => a + bad + b);

/** Whether a string holds an unpaired UTF-16 surrogate. */
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A field's value as CPQ may send it, by the documented rules (valueFor's values all load). */
function valueFor(spec: UserField): fc.Arbitrary<FieldValue> {
  const ok = (a: fc.Arbitrary<Json>) => a.map((value) => ({ value }));
  const nullish = ok(fc.constant(null));
  switch (spec.kind) {
    case 'text':
      return fc.oneof({ weight: 8, arbitrary: ok(textValue) }, { weight: 1, arbitrary: nullish });
    case 'boolean':
      return fc.oneof(
        { weight: 6, arbitrary: ok(fc.boolean()) },
        { weight: 1, arbitrary: ok(fc.constantFrom('true', 'false')) },
        { weight: 1, arbitrary: nullish },
      );
    case 'bigint':
      return fc.oneof(
        { weight: 6, arbitrary: ok(int64Text.map(num)) },
        { weight: 2, arbitrary: ok(wholeLiteral(INT64_MIN, INT64_MAX).map(num)) },
        {
          weight: 1,
          arbitrary: ok(
            fc.oneof(
              int64Text,
              int64Text.map((t) => ` ${t}\t`),
              fc.constantFrom('', '-0', '007'),
            ),
          ),
        },
        { weight: 1, arbitrary: nullish },
      );
    case 'timestamp':
      return fc.oneof({ weight: 8, arbitrary: ok(isoDateTime) }, { weight: 1, arbitrary: ok(fc.constantFrom(null, '')) });
    case 'choiceText':
    case 'choiceInt': {
      const value: fc.Arbitrary<Json> =
        spec.kind === 'choiceText'
          ? textValue
          : fc.oneof({ weight: 4, arbitrary: fc.integer().map((n) => num(String(n))) }, { weight: 1, arbitrary: wholeLiteral(INT32_MIN, INT32_MAX).map(num) });
      return fc.oneof(
        { weight: 6, arbitrary: ok(fc.record({ value, displayValue: fc.oneof(textValue, fc.constant(null)) }, { requiredKeys: ['value'] })) },
        { weight: 1, arbitrary: ok(value) },
        { weight: 1, arbitrary: nullish },
      );
    }
  }
}

/** A value of a field that breaks the documented rules, and the field the run's error must name. */
function brokenValueFor(spec: UserField): fc.Arbitrary<FieldValue> {
  const refused = (a: fc.Arbitrary<Json>, field = spec.field) => a.map((value) => ({ value, refused: field }));
  // A NUL fails the reader (by the field's name); a lone surrogate the check of raw (by the key it is sent under).
  const unstorable = (field: string, key: string) =>
    unstorableText.map((value): FieldValue => ({ value, refused: value.includes('\u0000') || !LONE_SURROGATE.test(value) ? field : key }));
  switch (spec.kind) {
    case 'text':
      return fc.oneof(refused(fc.constantFrom<Json>({}, [], { value: 'x' }, ['a'])), unstorable(spec.field, 'key'));
    case 'boolean':
      return refused(fc.constantFrom<Json>('TRUE', 'yes', '', num('1'), num('0'), {}, []));
    case 'bigint':
      return refused(notWhole(INT64_MIN, INT64_MAX));
    case 'timestamp':
      return refused(
        fc.oneof(
          // Finer than microseconds, not zeros: refused rather than rounded.
          fc.integer({ min: 1, max: 9 }).map((n) => `2025-01-01T00:00:00.123456${n}Z`),
          fc.constantFrom<Json>(
            '2025-02-30T00:00:00Z',
            '1900-02-29T00:00:00Z',
            '2025-01-01',
            '2025-01-01T10:00:60Z',
            // A leap second, and 24:00 past its midnight: no instant Postgres or the calendar has.
            '2016-12-31T23:59:60Z',
            '2025-01-01T24:00:00.001Z',
            '2025-01-01T24:00:01Z',
            '2025-01-01 10:00:00Z',
            '0000-01-01T00:00:00Z',
            '9999-12-31T23:59:59-01:00',
            'yesterday',
            num('1735689600000'),
            {},
          ),
        ),
      );
    case 'choiceText':
    case 'choiceInt': {
      const part = `${spec.field}.value`;
      const bad: fc.Arbitrary<FieldValue> =
        spec.kind === 'choiceInt'
          ? refused(notWhole(INT32_MIN, INT32_MAX), part)
          : fc.oneof(refused(fc.constantFrom<Json>({}, ['a']), part), unstorable(part, 'key.value'));
      // Bare, the value is the field itself: a lone surrogate is then named by the key alone. An
      // object is never sent bare: it would be the {value, displayValue} object, without a value.
      const isObject = (v: Json) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RawJson);
      return fc
        .tuple(bad, fc.boolean())
        .map(([v, bare]) =>
          bare && !isObject(v.value)
            ? { ...v, refused: v.refused === 'key.value' ? 'key' : v.refused }
            : { ...v, value: { value: v.value, displayValue: 'x' } },
        );
    }
  }
}

/** A field's fixed spellings: the canonical one, the mapping's aliases as CPQ writes them (src/cpq/user-fields.ts), all lower case. */
function spellingsOf(field: string): string[] {
  const aliases = Object.keys(ALIASES).filter((alias) => ALIASES[alias] === field);
  return [...new Set([field, ...aliases, field.toLowerCase()])];
}

/** The spellings CPQ uses for a field: the fixed ones, and case drift. */
function spellingOf(field: string): fc.Arbitrary<string> {
  const fixed = spellingsOf(field);
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant(field) },
    { weight: 2, arbitrary: fc.constantFrom(...fixed) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.boolean(), { minLength: field.length, maxLength: field.length })
        // eslint-disable-next-line @typescript-eslint/no-misused-spread -- field names are ASCII identifiers, so code points match field.length above
        .map((up) => [...field].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join('')),
    },
  );
}

// ------------------------------------------------------------------ users

export interface GroupDef {
  variableName: string;
  label: Json;
  type: Json;
}

/**
 * A group or permission name past the 100 UTF-16 units errors show of a name (pastTheCut), never
 * blank: such a name is a key (cpq.groups, a membership, a permission), a column and a diff's entry,
 * stored and compared whole.
 */
const longName: fc.Arbitrary<string> = pastTheCut(0).filter((s) => s.trim() !== '');

/** A group's label or a permission's name: any text, a long name, a number jsonb respells, or null. */
const describingText: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: anyText },
  { weight: 1, arbitrary: longName },
  { weight: 1, arbitrary: respelledNumber },
  { weight: 1, arbitrary: fc.constant(null) },
);

/** A few group definitions per case: the same variableName always has the same label and type. */
export const groupPool: fc.Arbitrary<GroupDef[]> = fc
  .uniqueArray(
    fc.record({
      variableName: fc.oneof(
        { weight: 3, arbitrary: fc.stringMatching(/^[a-z][A-Za-z0-9_]{0,10}$/) },
        { weight: 3, arbitrary: anyText.filter((s) => s.trim() !== '') },
        { weight: 1, arbitrary: longName },
      ),
      label: describingText,
      type: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom<Json>('Administrator', 'Sales', 'Partner') },
        { weight: 1, arbitrary: respelledNumber },
        { weight: 1, arbitrary: fc.constant(null) },
      ),
    }),
    { minLength: 1, maxLength: 4, selector: (g) => g.variableName },
  )
  .chain((groups) => {
    // At times a twin of a long name, the same up to the cut and past it, then one unit more: two
    // groups, which a name cut where it is a key would make one.
    const long = groups.find((g) => g.variableName.length > 100);
    if (long === undefined) return fc.constant(groups);
    const twin = `${long.variableName}2`;
    return fc.boolean().map((add) => (add && !groups.some((g) => g.variableName === twin) ? [...groups, { ...long, variableName: twin }] : groups));
  });

/**
 * A permission's type or variable name: the usual few, pieces that read as one another once
 * joined by a separator (`a\u0001b` + `c` against `a` + `b\u0001c`: a key made so lost one), any
 * text, or a long name.
 */
const permissionKeyPart = (usual: readonly string[]) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...usual) },
    { weight: 1, arbitrary: fc.constantFrom('a', 'b', 'c', 'a\u0001b', 'b\u0001c', 'a:b', 'b:c') },
    { weight: 1, arbitrary: anyText.filter((s) => s.trim() !== '') },
    { weight: 1, arbitrary: longName },
  );

const permissionItem = fc.record({
  type: permissionKeyPart(['productFamily', 'dataTableFolder', 'supportedProductFamily']),
  variableName: permissionKeyPart(['laptops', 'servers', 'pricing', 'Ωmega']),
  name: describingText,
  // "true" and "false" as a boolean field takes them (valueFor).
  hasAccess: fc.oneof(
    { weight: 4, arbitrary: fc.boolean() },
    { weight: 2, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom('true', 'false') },
  ),
});

/** A relation as sent: missing, null, without items, with items null or empty, or items with duplicated entries. */
export type Relation<T> = { kind: 'missing' } | { kind: 'null' } | { kind: 'noItems' } | { kind: 'itemsNull' } | { kind: 'items'; items: T[] };

function relation<T>(item: fc.Arbitrary<T>): fc.Arbitrary<Relation<T>> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom<Relation<T>>({ kind: 'missing' }, { kind: 'null' }, { kind: 'noItems' }, { kind: 'itemsNull' }) },
    { weight: 1, arbitrary: fc.constant<Relation<T>>({ kind: 'items', items: [] }) },
    {
      weight: 4,
      arbitrary: fc
        .array(item, { maxLength: 4 })
        .chain((items) =>
          fc
            .array(fc.nat(), { maxLength: 2 })
            .map((dups) => ({ kind: 'items' as const, items: items.length === 0 ? items : [...items, ...dups.map((d) => items[d % items.length]!)] })),
        ),
    },
  );
}

export function relationJson<T>(r: Relation<T>, toJson: (item: T) => Json): Json | undefined {
  switch (r.kind) {
    case 'missing':
      return undefined;
    case 'null':
      return null;
    case 'noItems':
      return {};
    case 'itemsNull':
      return { items: null };
    case 'items':
      return { items: r.items.map(toJson) };
  }
}

export interface PermissionItem {
  type: string;
  variableName: string;
  name: Json;
  hasAccess: Json;
}

/**
 * A user's permissions; at times, beside one with a long variableName, its twin, the same name one
 * unit longer: two permissions, which a key of names cut where errors cut them would make one.
 */
const permissionRelation: fc.Arbitrary<Relation<PermissionItem>> = relation(permissionItem).chain((r) => {
  const long = r.kind === 'items' ? r.items.find((p) => p.variableName.length > 100) : undefined;
  if (r.kind !== 'items' || long === undefined) return fc.constant(r);
  const twin = { ...long, variableName: `${long.variableName}2` };
  const taken = r.items.some((p) => p.type === twin.type && p.variableName === twin.variableName);
  return fc.boolean().map((add) => (add && !taken ? { kind: 'items' as const, items: [...r.items, twin] } : r));
});

/** One documented field as sent: its canonical name, the key it is sent under, its value. */
export interface SentField {
  field: string;
  key: string;
  value: Json;
  refused?: string;
}

/**
 * How the items of a user's groups or permissions are written (JSON reads only, as `repeats`; a
 * CSV export says no item's keys): each part under a key in any case (`VariableName`, `hasaccess`:
 * CPQ's field names drift in case, as lastname and lastName), and keys no column holds after the
 * parts (links, or whatever a site adds, `__proto__` too), which raw keeps.
 */
export interface ItemForm {
  /** Per part (canonical name), the key it is sent under. */
  keys: Record<string, string>;
  extras: [key: string, value: Json][];
}

/** A part's key in any case: the canonical name most often. */
const partKey = (part: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(part) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.boolean(), { minLength: part.length, maxLength: part.length })
        // eslint-disable-next-line @typescript-eslint/no-misused-spread -- part names are ASCII identifiers, so code points match part.length above
        .map((up) => [...part].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join('')),
    },
  );

/** An item form of these parts: their keys' case, and up to two extras named as no part is in any case. */
function itemForm(parts: readonly string[]): fc.Arbitrary<ItemForm> {
  const lower = new Set(parts.map((p) => p.toLowerCase()));
  const extraKey = fc
    .oneof(
      { weight: 2, arbitrary: fc.constantFrom('links', 'displayOrder', 'name', 'label', 'value', 'id', '__proto__', 'constructor', 'toString') },
      { weight: 1, arbitrary: anyText },
    )
    .filter((k) => !lower.has(k.toLowerCase()));
  const extraValue = fc.oneof(
    { weight: 1, arbitrary: fc.constant<Json>([{ rel: 'self', href: 'https://cpq.example/rest/v19/groups/x' }]) },
    { weight: 3, arbitrary: anyJson },
  );
  return fc.record({
    keys: fc.tuple(...parts.map(partKey)).map((keys) => Object.fromEntries(parts.map((p, i) => [p, keys[i]!]))),
    extras: fc.uniqueArray(fc.tuple(extraKey, extraValue), { maxLength: 2, selector: ([k]) => k.toLowerCase() }),
  });
}

/** About one user's groups, or permissions, in four written in another form. */
const itemForms = fc.record({
  groups: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: itemForm(['variableName', 'label', 'type']) }),
  accessPermissions: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: itemForm(['type', 'variableName', 'name', 'hasAccess']) },
  ),
});

/** An item as sent in `form`: its parts under the form's keys, then the form's extras (as exact text: a key "__proto__" is a key like any other). */
export function itemInForm(parts: Record<string, Json>, form: ItemForm | undefined): Json {
  if (form === undefined) return parts;
  const entries: [string, Json][] = [...Object.entries(parts).map(([part, value]): [string, Json] => [form.keys[part] ?? part, value]), ...form.extras];
  return new RawJson(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${wireText(v)}`).join(',')}}`);
}

export interface GeneratedUser {
  login: string;
  /** Integration users only: `company` as the v19 feed sends it. */
  company?: { name: string; loginName: string };
  /**
   * Integration users only: `company` sent in a shape that names no company (a string, a number, a
   * list, no or a blank loginName), which fails the run naming the record and this field.
   */
  brokenCompany?: { value: Json; refused: string };
  /** Documented fields in the order sent (a second spelling of a field may follow as another entry). */
  fields: SentField[];
  custom: [key: string, value: Json][];
  /** The custom field (as errors show its path) whose text Postgres cannot store: the run is refused naming it. */
  customRefused?: string;
  groups: Relation<number>;
  accessPermissions: Relation<PermissionItem>;
  /**
   * Keys of the record (as sent: login, company, a field's spelling, a custom field's name) said
   * twice, first with `earlier`, then with the value above, which counts (README: the last copy).
   */
  repeats?: { key: string; earlier: Json }[];
  /** A key every group item, or every permission item, says twice: first with `earlier`, then with its own value. */
  itemRepeats?: { groups?: { key: string; earlier: Json }; accessPermissions?: { key: string; earlier: Json } };
  /** The `items` of the user's groups, or of its permissions, said first with `earlier`, then with the list, which counts. */
  listRepeats?: { groups?: Json; accessPermissions?: Json };
  /** How the user's group items, or permission items, are written, when not as the documented keys alone. */
  itemForms?: { groups?: ItemForm; accessPermissions?: ItemForm };
}

/** Documented fields a company user can carry (v16 records carry no partyId/partyNumber; oauthClientId makes an integration user). */
const COMPANY_FIELDS = USER_FIELDS.filter((spec) => !['partyId', 'partyNumber', 'oauthClientId'].includes(spec.field));

function sentField(spec: UserField): fc.Arbitrary<SentField> {
  return fc
    .tuple(spellingOf(spec.field), valueFor(spec))
    .map(([key, v]) => ({ field: spec.field, key, value: v.value, ...(v.refused ? { refused: v.refused } : {}) }));
}

/**
 * A name as the run's errors show it (shownName, src/exact-json.ts): at most 100 UTF-16 units
 * (99 when the 100th begins a surrogate pair: a pair is never cut in half), control characters
 * (C0, DEL, C1), the characters that reorder text on a terminal (U+061C, U+200E/F, U+2028/9,
 * U+202A-E, U+2066-9) and unpaired surrogates as \u escapes.
 */
export function shownInError(text: string): string {
  const splitsPair = /^[\ud800-\udbff][\udc00-\udfff]$/.test(text.slice(99, 101));
  const cut = text.length > 100 ? `${text.slice(0, splitsPair ? 99 : 100)}…` : text;
  return cut.replace(
    // eslint-disable-next-line no-control-regex -- control characters are what errors escape
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** What breaks a record: one documented field's value, or a custom field holding (or named with) text, or holding a number, Postgres cannot store. */
type Break = { kind: 'field'; spec: UserField; broken: FieldValue } | { kind: 'custom'; key: string; value: Json; refused: string };

/**
 * A break of a record; with `repeats`, also a custom field whose object says a key twice, a value
 * that can be stored first and the last, which counts, one Postgres cannot store.
 */
function recordBreak(repeats: boolean): fc.Arbitrary<Break> {
  const lastCopyBad: fc.Arbitrary<Break> = fc.tuple(anyText, anyText, anyJson, unstorableText).map(([name, inner, first, bad]): Break => {
    const raw = new RawJson(`{${JSON.stringify(inner)}:${wireText(first)},${JSON.stringify(inner)}:${JSON.stringify(bad)}}`);
    MEANINGS.set(raw, { [inner]: bad });
    const key = `c_${name}`;
    return { kind: 'custom', key, value: raw, refused: shownInError(`${key}.${inner}`) };
  });
  return repeats ? fc.oneof({ weight: 4, arbitrary: anyBreak }, { weight: 1, arbitrary: lastCopyBad }) : anyBreak;
}

const anyBreak: fc.Arbitrary<Break> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(...COMPANY_FIELDS).chain((spec) => brokenValueFor(spec).map((broken): Break => ({ kind: 'field', spec, broken }))),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.oneof(anyText, pastTheCut(2)), unstorableText, anyJson, fc.constantFrom('value', 'name', 'long name', 'nested', 'number'))
      .map(([text, bad, other, where]): Break => {
        // A long name: what Postgres cannot store in it may fall before the cut errors make of it or after.
        const key = where === 'name' ? `c_${bad}` : where === 'long name' ? `c_${text}${bad}` : `c_${text}`;
        // A number Postgres numeric cannot hold (more than 131072 digits before the point, 16383
        // after), or one it holds but writes out 16000 times longer than sent (MAX_WRITTEN_OUT_GROWTH).
        const value =
          where === 'value'
            ? bad
            : where === 'name' || where === 'long name'
              ? other
              : where === 'number'
                ? num(['1e999999', '-1.5E-99999', '1e131071'][text.length % 3]!)
                : [null, bad];
        return { kind: 'custom', key, value, refused: shownInError(where === 'nested' ? `${key}[1]` : key) };
      }),
  },
);

/** The user with its record broken so: every entry of the field takes the value (or the field is added), or the custom field is set. */
function withBreak<U extends { fields: SentField[]; custom: [string, Json][] }>(user: U, b: Break): U {
  if (b.kind === 'custom') return { ...user, custom: [...user.custom.filter(([k]) => k !== b.key), [b.key, b.value]] };
  const { spec, broken } = b;
  const named = (key: string) => broken.refused!.replace(/^key/, key);
  const fields = user.fields.some((f) => f.field === spec.field)
    ? user.fields.map((f) => (f.field === spec.field ? { ...f, value: broken.value, refused: named(f.key) } : f))
    : [...user.fields, { field: spec.field, key: spec.field, value: broken.value, refused: named(spec.field) }];
  return { ...user, fields };
}

/**
 * Keys that say who a user is, when it changed and which company it is of, read by the product for
 * identity, cursor and company (and by the simulator, to filter, sort and tell integration users).
 */
const IDENTITY_FIELDS = new Set(['login', 'dateModified', 'dateAdded', 'partyNumber', 'oauthClientId', 'company']);

/**
 * An earlier copy of an identity key of user `index`: often one that reads as another user's login,
 * partyNumber or OAuth client, another time or the other company (taken for the copy that counts, it
 * would merge, misplace or mis-date the user), else any earlier copy (another type, unstorable...).
 */
function identityEarlierCopy(field: string, index: number): fc.Arbitrary<Json> {
  const other = index + 1;
  const likely: fc.Arbitrary<Json> =
    field === 'login'
      ? fc.constantFrom<Json>(`u${other}`, `U${index}`, `u${index}x`, '', ' ')
      : field === 'partyNumber'
        ? fc.constantFrom<Json>(`PN${other}`, `PN${index}/x`, '', num(String(index)))
        : field === 'oauthClientId'
          ? fc.constantFrom<Json>(`oc${other}`, '', null)
          : field === 'company'
            ? fc.constantFrom<Json>({ name: 'other', loginName: 'partner1' }, { name: 'host', loginName: '_host' }, { loginName: 'nobody' }, 'partner1', {})
            : isoDateTime;
  return fc.oneof({ weight: 2, arbitrary: likely }, { weight: 1, arbitrary: earlierCopy });
}

/**
 * The user with some of its identity keys present (`login`, and of `fields` those it carries) said
 * twice or three times, about one user in three; the copies it already says twice are kept.
 */
function withIdentityRepeats(user: GeneratedUser, index: number, fields: readonly string[]): fc.Arbitrary<GeneratedUser> {
  const keys = [
    ...(fields.includes('login') ? ['login'] : []),
    ...user.fields.filter((f) => fields.includes(f.field)).map((f) => f.key),
    ...(fields.includes('company') && (user.company || user.brokenCompany) ? ['company'] : []),
  ];
  const fieldOf = (key: string) => (key === 'login' || key === 'company' ? key : user.fields.find((f) => f.key === key)!.field);
  if (keys.length === 0) return fc.constant(user);
  return fc
    .oneof({ weight: 2, arbitrary: fc.constant<string[]>([]) }, { weight: 1, arbitrary: fc.subarray(keys, { minLength: 1 }) })
    .chain((chosen) =>
      fc.tuple(
        ...chosen.map((key) =>
          fc.array(identityEarlierCopy(fieldOf(key), index), { minLength: 1, maxLength: 2 }).map((copies) => copies.map((earlier) => ({ key, earlier }))),
        ),
      ),
    )
    .map((said) => {
      const repeats = [...(user.repeats ?? []), ...said.flat()];
      return repeats.length === 0 ? user : { ...user, repeats };
    });
}

/**
 * An earlier copy of a user's `groups` or `accessPermissions`, or of the `items` in it: often a list
 * that reads as memberships or permissions the user does not have (taken for the copy that counts,
 * it would add, drop or keep them), or one saying nothing of it; else any earlier copy.
 */
const earlierList: fc.Arbitrary<Json> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom<Json>(
      [],
      null,
      [{ variableName: 'earlierGroup', label: 'Earlier', type: 'Sales' }],
      [{ type: 'Earlier', variableName: 'earlierPermission', name: 'Earlier', hasAccess: true }],
    ),
  },
  { weight: 1, arbitrary: earlierCopy },
);
const earlierRelation: fc.Arbitrary<Json> = fc.oneof(
  { weight: 2, arbitrary: earlierList.map((items): Json => ({ items })) },
  { weight: 1, arbitrary: fc.constantFrom<Json>(null, {}, { items: [], hasMore: true }) },
  { weight: 1, arbitrary: earlierCopy },
);

/** Keys of the record (and of its group and permission lists and items) said twice, chosen among the keys it ends up with. */
const repeatChoices = fc.record({
  record: fc.oneof(fc.constant<[number, Json][]>([]), fc.array(fc.tuple(fc.nat(), earlierCopy), { minLength: 1, maxLength: 3 })),
  relations: fc.oneof(
    { weight: 3, arbitrary: fc.constant<['groups' | 'accessPermissions', Json][]>([]) },
    {
      weight: 1,
      arbitrary: fc.array(fc.tuple(fc.constantFrom('groups' as const, 'accessPermissions' as const), earlierRelation), { minLength: 1, maxLength: 2 }),
    },
  ),
  // About one list in four (fc.option's freq is the odds of none, so it would give three in four).
  lists: fc.record({
    groups: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: earlierList }),
    accessPermissions: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: earlierList }),
  }),
  groups: fc.option(fc.tuple(fc.constantFrom('variableName', 'label', 'type'), earlierCopy), { freq: 2, nil: undefined }),
  accessPermissions: fc.option(fc.tuple(fc.constantFrom('type', 'variableName', 'name', 'hasAccess'), earlierCopy), { freq: 2, nil: undefined }),
});

/** The user with some keys said twice (`repeats`, `listRepeats`, `itemRepeats`) as `choices` picks them. */
function withRepeats(user: GeneratedUser, choices: typeof repeatChoices extends fc.Arbitrary<infer C> ? C : never): GeneratedUser {
  const keys = [...user.fields.filter((f) => !IDENTITY_FIELDS.has(f.field)).map((f) => f.key), ...user.custom.map(([k]) => k)];
  const repeats = keys.length === 0 ? [] : choices.record.map(([k, earlier]) => ({ key: keys[k % keys.length]!, earlier }));
  // A relation the record carries may be said twice, and the items of one sent with items said twice.
  for (const [key, earlier] of choices.relations) if (user[key].kind !== 'missing') repeats.push({ key, earlier });
  const list = (relation: 'groups' | 'accessPermissions') => (user[relation].kind === 'items' ? choices.lists[relation] : undefined);
  const listRepeats = { groups: list('groups'), accessPermissions: list('accessPermissions') };
  const item = (c: [string, Json] | undefined) => (c === undefined ? undefined : { key: c[0], earlier: c[1] });
  const itemRepeats = { groups: item(choices.groups), accessPermissions: item(choices.accessPermissions) };
  return {
    ...user,
    ...(repeats.length > 0 ? { repeats } : {}),
    ...(listRepeats.groups !== undefined || listRepeats.accessPermissions !== undefined ? { listRepeats } : {}),
    ...(itemRepeats.groups || itemRepeats.accessPermissions ? { itemRepeats } : {}),
  };
}

/**
 * A CPQ company user; logins are unique within a case by the caller's `index`. About one in
 * `brokenOneIn` breaks a documented rule (the run is refused): a case of many users needs fewer,
 * or most of its cases would test a refusal only.
 * `repeats`: custom fields may hold objects saying a key twice, and keys of the record and of its
 * group and permission items may be said twice (the simulator sends them so; a CSV export cannot).
 */
export function companyUser(index: number, groupCount: number, brokenOneIn = 11, repeats = false): fc.Arbitrary<GeneratedUser> {
  return fc
    .record({
      suffix: fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 2, arbitrary: anyText }, { weight: 1, arbitrary: pastTheCut(`u${index}`.length) }),
      fields: fc.subarray(COMPANY_FIELDS).chain((specs) => fc.tuple(...specs.map(sentField))),
      // a second spelling of one field in the same record (lastname and lastName both sent), in about
      // one user in five: fc.option's freq is the odds of none (1 in freq), so { freq: 5 } gave four in five
      second: fc.oneof(
        { weight: 4, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constantFrom(...(['lastName', 'isUserAdminPermEnabled'] as const)) },
      ),
      custom: fc.uniqueArray(
        fc.tuple(
          fc.oneof(
            { weight: 5, arbitrary: fc.oneof({ weight: 4, arbitrary: anyText }, { weight: 1, arbitrary: pastTheCut(2) }).map((k) => `c_${k}`) },
            { weight: 1, arbitrary: lookalikeKey },
          ),
          repeats ? customJson : anyJson,
        ),
        { maxLength: 3, selector: ([k]) => k },
      ),
      groups: relation(fc.nat({ max: groupCount - 1 })),
      accessPermissions: permissionRelation,
      broken: fc.oneof({ weight: brokenOneIn - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: recordBreak(repeats) }),
      repeated: repeats ? repeatChoices.map((c) => c as typeof c | null) : fc.constant(null),
      forms: repeats ? itemForms : fc.constant({ groups: undefined, accessPermissions: undefined }),
    })
    .chain((u) => {
      const second = u.second;
      if (second === null) return fc.constant(u);
      const spec = USER_FIELDS.find((s) => s.field === second)!;
      return sentField(spec).map((extra) => {
        const taken = new Set(u.fields.map((f) => f.key));
        const keys = spellingsOf(spec.field).filter((k) => !taken.has(k));
        return keys.length === 0 ? u : { ...u, fields: [...u.fields, { ...extra, key: keys[0]! }] };
      });
    })
    .map((u) => (u.broken === null ? u : withBreak(u, u.broken)))
    .map((u) => ({
      login: `u${index}${u.suffix}`,
      fields: u.fields,
      custom: u.custom,
      ...(u.broken?.kind === 'custom' ? { customRefused: u.broken.refused } : {}),
      groups: u.groups,
      accessPermissions: u.accessPermissions,
      ...(u.forms.groups || u.forms.accessPermissions ? { itemForms: u.forms } : {}),
      repeated: u.repeated,
    }))
    .map(({ repeated, ...user }) => (repeated === null ? user : withRepeats(user, repeated)))
    .chain((user) => (repeats ? withIdentityRepeats(user, index, ['login', 'dateModified', 'dateAdded']) : fc.constant(user)));
}

const PARTY_FIELDS = USER_FIELDS.filter((spec) => ['partyId', 'partyNumber', 'oauthClientId'].includes(spec.field));

/**
 * An integration user of the host company (Oracle's `_custom_user_…` samples): a company user
 * that also carries partyId, partyNumber, oauthClientId and company, which only the v19
 * integration-user feed sends. partyNumber and oauthClientId are unique by `index`.
 */
export function integrationUser(index: number, groupCount: number, brokenOneIn = 11, repeats = false): fc.Arbitrary<GeneratedUser> {
  const [partyId, partyNumber, oauthClientId] = PARTY_FIELDS.map((spec) => spec.field);
  return fc
    .tuple(
      companyUser(index, groupCount, brokenOneIn, repeats),
      fc.tuple(spellingOf(partyId!), valueFor(PARTY_FIELDS.find((p) => p.field === partyId)!)),
      fc.tuple(spellingOf(partyNumber!), spellingOf(oauthClientId!), fc.oneof(fc.constant(''), anyText)),
      anyText,
    )
    .map(([user, [idKey, id], [numberKey, clientKey, suffix], companyName]) => ({
      ...user,
      fields: [
        ...user.fields,
        { field: partyId!, key: idKey, value: id.value, ...(id.refused ? { refused: id.refused } : {}) },
        // Read from the detail endpoint when the list carries no group items (missing, null, {},
        // items null): a partyNumber that cannot be a URL path segment is then refused
        // (src/cpq/http-client.ts, pathSegment).
        {
          field: partyNumber!,
          key: numberKey,
          value: `PN${index}${suffix}`,
          ...(user.groups.kind !== 'items' && /[/\\]/.test(suffix) ? { refused: partyNumber! } : {}),
        },
        { field: oauthClientId!, key: clientKey, value: `oc${index}${suffix}` },
      ],
      company: { name: companyName, loginName: '_host' },
    }))
    .chain((user) => (repeats ? withIdentityRepeats(user, index, ['partyNumber', 'oauthClientId', 'company']) : fc.constant(user)));
}

/** A `company` of an integration user that names no company, and the field the run's error names. */
const brokenCompany: fc.Arbitrary<{ value: Json; refused: string }> = fc.oneof(
  fc.constantFrom<Json>('partner1', '_host', num('5'), true, [{ loginName: '_host' }]).map((value) => ({ value, refused: 'company' })),
  fc
    .constantFrom<Json>(
      {},
      { name: 'x' },
      { loginName: '' },
      { loginName: '  ' },
      { loginName: num('7') },
      { loginName: null },
      { loginName: { loginName: '_host' } },
    )
    .map((value) => ({ value, refused: 'company.loginName' })),
);

/**
 * An integration user as `integrationUser` makes it, of `companyLogin` (the host or a partner
 * organization), about one in `brokenOneIn` with a company that names none.
 */
export function integrationUserOf(index: number, groupCount: number, companyLogin: string, brokenOneIn = 11, repeats = false): fc.Arbitrary<GeneratedUser> {
  return fc
    .tuple(
      integrationUser(index, groupCount, brokenOneIn, repeats),
      fc.oneof({ weight: brokenOneIn - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: brokenCompany }),
    )
    .map(([user, broken]) => ({
      ...user,
      company: { name: user.company!.name, loginName: companyLogin },
      ...(broken === undefined ? {} : { brokenCompany: broken }),
    }));
}

/** The first refusal a user's record carries (by the documented rules), if any. */
export function refusalOf(user: GeneratedUser): string | undefined {
  return user.fields.find((f) => f.refused !== undefined)?.refused ?? user.customRefused ?? user.brokenCompany?.refused;
}
