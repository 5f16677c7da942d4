import fc from 'fast-check';
import { RawJson } from '../../src/simulator/index.js';
import { ALIASES } from '../../src/cpq/user-fields.js';
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
  // Stop (shrinking included) before vitest's timeout would, so that a failure is still reported with its seed.
  return { numRuns: NUM_RUNS_FROM_ENV ?? ci, plugins: [fc.interruptAfterTimeLimit(testTimeoutMs - 20_000)], ...replay };
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
    { weight: 1, arbitrary: fc.constantFrom('', ' ', 'e\u0301', '\u{1F600}\u{1F3FD}', '\u{10FFFF}', 'a"b\\c/\n\t', '\u2028\u2029', 'Zoë', 'ｶﾞ') },
  )
  .map((s) => s.replaceAll('\u0000', ''));

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

// ------------------------------------------------------------------ documented fields

/**
 * A fraction of a second as ISO-8601 writes it: none, milliseconds, microseconds, or nine digits
 * whose last three are zeros (all that Postgres can store exactly).
 */
const secondFraction: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 0, max: 999 }).map((n) => `.${String(n).padStart(3, '0')}`),
  fc.integer({ min: 0, max: 999_999 }).map((n) => `.${String(n).padStart(6, '0')}`),
  fc.integer({ min: 0, max: 999_999 }).map((n) => `.${String(n).padStart(6, '0')}000`),
);

/** An ISO-8601 date-time in each form CPQ could send: a fraction of a second or none, Z or an offset (±hh, ±hhmm, ±hh:mm). */
export const isoDateTime: fc.Arbitrary<string> = fc
  .tuple(
    fc.date({ min: new Date('1971-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }),
    secondFraction,
    fc.oneof(
      fc.constant('Z'),
      fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 14 }), fc.constantFrom(0, 30, 45), fc.constantFrom('', ':', 'hours only')),
    ),
  )
  .map(([date, fraction, zone]) => {
    if (zone === 'Z') return `${date.toISOString().slice(0, 19)}${fraction}Z`;
    const [sign, hours, withMinutes, style] = zone;
    const minutes = style === 'hours only' ? 0 : withMinutes;
    const offsetMinutes = (sign === '-' ? -1 : 1) * (hours * 60 + minutes);
    const local = new Date(date.getTime() + offsetMinutes * 60_000).toISOString(); // the wall-clock time at that offset
    const hh = String(hours).padStart(2, '0');
    const zoneText = style === 'hours only' ? `${sign}${hh}` : `${sign}${hh}${style}${String(minutes).padStart(2, '0')}`;
    return `${local.slice(0, 19)}${fraction}${zoneText}`;
  });

const int64Text = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
const pastInt64Text = fc.oneof(fc.bigInt({ min: 2n ** 63n, max: 2n ** 70n }), fc.bigInt({ min: -(2n ** 70n), max: -(2n ** 63n) - 1n })).map(String);

/** A documented field's value, and whether it breaks the documented rule (the record is refused). */
export interface FieldValue {
  value: Json;
  refused?: string;
}

function valueFor(spec: UserField): fc.Arbitrary<FieldValue> {
  const ok = (a: fc.Arbitrary<Json>) => a.map((value) => ({ value }));
  const nullish = ok(fc.constant(null));
  switch (spec.kind) {
    case 'text':
      return fc.oneof({ weight: 8, arbitrary: ok(anyText) }, { weight: 1, arbitrary: nullish });
    case 'boolean':
      return fc.oneof(
        { weight: 6, arbitrary: ok(fc.boolean()) },
        { weight: 1, arbitrary: ok(fc.constantFrom('true', 'false')) },
        { weight: 1, arbitrary: nullish },
      );
    case 'bigint':
      return fc.oneof(
        { weight: 8, arbitrary: ok(int64Text.map(num)) },
        { weight: 1, arbitrary: ok(int64Text) },
        { weight: 1, arbitrary: nullish },
        { weight: 1, arbitrary: pastInt64Text.map((d) => ({ value: num(d), refused: spec.field })) },
      );
    case 'timestamp':
      return fc.oneof(
        { weight: 8, arbitrary: ok(isoDateTime) },
        { weight: 1, arbitrary: nullish },
        // Finer than microseconds, not zeros: refused rather than rounded.
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 9 }).map((n) => ({ value: `2025-01-01T00:00:00.123456${n}Z`, refused: spec.field })) },
      );
    case 'choiceText':
    case 'choiceInt': {
      const value: fc.Arbitrary<Json> = spec.kind === 'choiceText' ? anyText : fc.integer().map((n) => num(String(n)));
      return fc.oneof(
        { weight: 6, arbitrary: ok(fc.record({ value, displayValue: fc.oneof(anyText, fc.constant(null)) }, { requiredKeys: ['value'] })) },
        { weight: 1, arbitrary: ok(value) },
        { weight: 1, arbitrary: nullish },
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

/** A few group definitions per case: the same variableName always has the same label and type. */
export const groupPool: fc.Arbitrary<GroupDef[]> = fc.uniqueArray(
  fc.record({
    variableName: fc.oneof(
      fc.stringMatching(/^[a-z][A-Za-z0-9_]{0,10}$/),
      anyText.filter((s) => s.trim() !== ''),
    ),
    label: fc.oneof({ weight: 4, arbitrary: anyText }, { weight: 1, arbitrary: fc.constant(null) }),
    type: fc.oneof({ weight: 4, arbitrary: fc.constantFrom<Json>('Administrator', 'Sales', 'Partner') }, { weight: 1, arbitrary: fc.constant(null) }),
  }),
  { minLength: 1, maxLength: 4, selector: (g) => g.variableName },
);

/**
 * A permission's type or variable name: the usual few, pieces that read as one another once
 * joined by a separator (`a\u0001b` + `c` against `a` + `b\u0001c`: a key made so lost one), or any text.
 */
const permissionKeyPart = (usual: readonly string[]) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...usual) },
    { weight: 1, arbitrary: fc.constantFrom('a', 'b', 'c', 'a\u0001b', 'b\u0001c', 'a:b', 'b:c') },
    { weight: 1, arbitrary: anyText.filter((s) => s.trim() !== '') },
  );

const permissionItem = fc.record({
  type: permissionKeyPart(['productFamily', 'dataTableFolder', 'supportedProductFamily']),
  variableName: permissionKeyPart(['laptops', 'servers', 'pricing', 'Ωmega']),
  name: fc.oneof(anyText as fc.Arbitrary<Json>, fc.constant(null)),
  hasAccess: fc.oneof(fc.boolean() as fc.Arbitrary<Json>, fc.constant(null)),
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

/** One documented field as sent: its canonical name, the key it is sent under, its value. */
export interface SentField {
  field: string;
  key: string;
  value: Json;
  refused?: string;
}

export interface GeneratedUser {
  login: string;
  /** Integration users only: `company` as the v19 feed sends it. */
  company?: { name: string; loginName: string };
  /** Documented fields in the order sent (a second spelling of a field may follow as another entry). */
  fields: SentField[];
  custom: [key: string, value: Json][];
  groups: Relation<number>;
  accessPermissions: Relation<PermissionItem>;
}

/** Documented fields a company user can carry (v16 records carry no partyId/partyNumber; oauthClientId makes an integration user). */
const COMPANY_FIELDS = USER_FIELDS.filter((spec) => !['partyId', 'partyNumber', 'oauthClientId'].includes(spec.field));

function sentField(spec: UserField): fc.Arbitrary<SentField> {
  return fc
    .tuple(spellingOf(spec.field), valueFor(spec))
    .map(([key, v]) => ({ field: spec.field, key, value: v.value, ...(v.refused ? { refused: v.refused } : {}) }));
}

/** A CPQ company user; logins are unique within a case by the caller's `index`. */
export function companyUser(index: number, groupCount: number): fc.Arbitrary<GeneratedUser> {
  return fc
    .record({
      suffix: fc.oneof({ weight: 3, arbitrary: fc.constant('') }, { weight: 1, arbitrary: anyText }),
      fields: fc.subarray(COMPANY_FIELDS).chain((specs) => fc.tuple(...specs.map(sentField))),
      // a second spelling of one field in the same record (lastname and lastName both sent)
      second: fc.option(fc.constantFrom(...(['lastName', 'isUserAdminPermEnabled'] as const)), { freq: 5 }),
      custom: fc.uniqueArray(
        fc.tuple(
          anyText.map((k) => `c_${k}`),
          anyJson,
        ),
        { maxLength: 3, selector: ([k]) => k },
      ),
      groups: relation(fc.nat({ max: groupCount - 1 })),
      accessPermissions: relation(permissionItem),
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
    .map((u) => ({
      login: `u${index}${u.suffix}`,
      fields: u.fields,
      custom: u.custom,
      groups: u.groups,
      accessPermissions: u.accessPermissions,
    }));
}

const PARTY_FIELDS = USER_FIELDS.filter((spec) => ['partyId', 'partyNumber', 'oauthClientId'].includes(spec.field));

/**
 * An integration user of the host company (Oracle's `_custom_user_…` samples): a company user
 * that also carries partyId, partyNumber, oauthClientId and company, which only the v19
 * integration-user feed sends. partyNumber and oauthClientId are unique by `index`.
 */
export function integrationUser(index: number, groupCount: number): fc.Arbitrary<GeneratedUser> {
  const [partyId, partyNumber, oauthClientId] = PARTY_FIELDS.map((spec) => spec.field);
  return fc
    .tuple(
      companyUser(index, groupCount),
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
    }));
}

/** The first refusal a user's record carries (by the documented rules), if any. */
export function refusalOf(user: GeneratedUser): string | undefined {
  return user.fields.find((f) => f.refused !== undefined)?.refused;
}
