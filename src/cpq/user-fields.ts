/**
 * The CPQ user record: its documented fields, what each one holds, and the spellings they arrive
 * under. Field names drift between API versions and samples (lastname/lastName,
 * isSuperUserPermEnabled/isUserAdminPermEnabled), so every lookup goes through
 * `canonicalFieldName`, which ignores case and knows the aliases. Correct this file when a real
 * site shows a field we do not know yet; the columns these fields fill are derived in
 * ../normalize/user-fields.ts (README "Adding a CPQ field").
 */

/**
 * What a field holds in the record: text, a boolean, an int64 (exact, never a double), an ISO
 * date-time, or a `{value, displayValue}` choice whose value is text or an integer.
 */
export type FieldKind = 'text' | 'boolean' | 'bigint' | 'timestamp' | 'choiceText' | 'choiceInt';

/** A `{value, displayValue}` field: two columns, `<column>` and `<column>_display`. */
export const isChoice = (kind: FieldKind | undefined): kind is 'choiceText' | 'choiceInt' => kind === 'choiceText' || kind === 'choiceInt';

/**
 * Every documented user field, by its canonical (v19) name, in the order of its columns in
 * cpq.users (a field added since the first release gets its column after every other, the
 * bookkeeping ones too: nothing reads the columns by place). An object literal (keys keep this order) so that the field names are types too:
 * the Kysely table type of cpq.users is derived from it (src/db/schema.ts).
 */
export const CPQ_USER_FIELDS = {
  partyId: 'bigint',
  partyNumber: 'text',
  id: 'bigint',
  firstName: 'text',
  lastName: 'text',
  email: 'text',
  phone: 'text',
  fax: 'text',
  jobTitle: 'text',
  approvalDelegate: 'text',
  externalSsoId: 'text',
  partnerLogin: 'text',
  sfdcOrgId: 'text',
  billFirstName: 'text',
  billLastName: 'text',
  billCompany: 'text',
  billCompany2: 'text',
  billAddress1: 'text',
  billAddress2: 'text',
  billCity: 'text',
  billStateProvince: 'text',
  billZip: 'text',
  billCountry: 'text',
  billPhone: 'text',
  billFax: 'text',
  billEmail: 'text',
  shipFirstName: 'text',
  shipLastName: 'text',
  shipCompany: 'text',
  shipCompany2: 'text',
  shipAddress1: 'text',
  shipAddress2: 'text',
  shipCity: 'text',
  shipStateProvince: 'text',
  shipZip: 'text',
  shipCountry: 'text',
  shipPhone: 'text',
  shipFax: 'text',
  shipEmail: 'text',
  separateShipAddr: 'boolean',
  isNotifyEmail: 'boolean',
  isNotifyFax: 'boolean',
  isUserAdminPermEnabled: 'boolean',
  isAccessAdminPermEnabled: 'boolean',
  isApplicationAdminPermEnabled: 'boolean',
  isProxyPermEnabled: 'boolean',
  isWebServicesOnly: 'boolean',
  isMobileEnabled: 'boolean',
  type: 'choiceText',
  language: 'choiceText',
  currency: 'choiceText',
  numberFormat: 'choiceInt',
  timeZone: 'choiceText',
  units: 'choiceInt',
  dateFormat: 'choiceInt',
  status: 'choiceInt',
  enabledForSso: 'choiceText',
  dateAdded: 'timestamp',
  dateModified: 'timestamp',
  lastLogin: 'timestamp',
  oauthClientId: 'text',
} as const satisfies Record<string, FieldKind>;

/** The canonical name of a documented user field. */
export type CpqUserField = keyof typeof CPQ_USER_FIELDS;

/** Fields of the record that are not columns of their own but structure it. */
const STRUCTURAL_FIELDS = ['login', 'company', 'groups', 'accessPermissions', 'links'];

/**
 * Names of the parts of nested objects: company {loginName, name}, collections {items, hasMore,
 * totalResults}, groups and permissions {variableName, label, hasAccess}, {value, displayValue}.
 * Mapped inside those objects only: at the top of a record, `label` or `name` is a custom field
 * like any other (kept in raw, hashed, and named in the diff when it changes).
 */
const NESTED_PARTS = new Set(['loginName', 'name', 'items', 'hasMore', 'totalResults', 'variableName', 'label', 'hasAccess', 'value', 'displayValue']);

/** Other spellings seen for the same field, as CPQ writes them (read in any case; the generated records of test/properties send them too). */
export const ALIASES: Readonly<Record<string, string>> = {
  isSuperUserPermEnabled: 'isUserAdminPermEnabled',
};

/**
 * A key CPQ sent, as the field names it may spell are matched: its ASCII letters in lower case,
 * every other character as sent. The merge's SQL folds keys the same way (lower with COLLATE "C",
 * src/sync/merge-sql.ts): toLowerCase also folds the Kelvin sign to k, and Postgres' lower() by
 * the database's locale folds İ to i as well, or not (C), so the two disagreed on which keys
 * were custom fields, and a change of such a field was not stored or not logged (review GR).
 */
export function fieldNameKey(key: string): string {
  return key.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

const CANONICAL = new Map<string, string>();
for (const name of [...Object.keys(CPQ_USER_FIELDS), ...STRUCTURAL_FIELDS, ...NESTED_PARTS]) CANONICAL.set(fieldNameKey(name), name);
for (const [alias, name] of Object.entries(ALIASES)) CANONICAL.set(fieldNameKey(alias), name);

/** Every lower-cased top-level field name the mapping reads (canonical names, structural fields, aliases): the rest of a record is custom fields. */
export const MAPPED_FIELD_KEYS: readonly string[] = [...CANONICAL.entries()]
  .filter(([, name]) => !NESTED_PARTS.has(name))
  .map(([key]) => key)
  .sort();

/** Whether a key at the top of a record is a field the mapping reads (else a custom field, kept in raw only). */
export function isMappedField(received: string): boolean {
  const name = canonicalFieldName(received);
  return name !== undefined && !NESTED_PARTS.has(name);
}

/** The canonical name of a field as received, or undefined for a field we do not map (kept in raw only). */
export function canonicalFieldName(received: string): string | undefined {
  // Keys repeat on every record: remember each spelling seen rather than lower-casing it again.
  let name = BY_SPELLING.get(received);
  if (name === undefined) {
    name = CANONICAL.get(fieldNameKey(received)) ?? null;
    if (keptInCache(received, BY_SPELLING)) BY_SPELLING.set(received, name);
  }
  return name ?? undefined;
}
const BY_SPELLING = new Map<string, string | null>();

/**
 * Whether a spelling may be remembered: the caches of spellings live as long as the process (a
 * `schedule` worker's, across runs), and a hostile site could send new keys in every record, of
 * any length up to a record's size. At most 10,000 spellings of at most 128 characters each: a
 * longer key (no field's name is near it) is looked up again each time it comes, in time linear
 * in its length, and never held.
 */
function keptInCache(key: string, cache: ReadonlyMap<string, unknown>): boolean {
  return key.length <= 128 && cache.size < 10_000;
}

/**
 * When two received keys map to the same field (a record carrying both `lastname` and `lastName`),
 * the exact canonical spelling wins, else the first in code-unit order (not the first read: a
 * JSON object's key order is no part of what it says, and jsonb does not keep it): whether `key`
 * replaces `kept`, the key whose value was kept so far (undefined when none was).
 */
export function spellingWins(key: string, name: string, kept: string | undefined): boolean {
  return kept === undefined || key === name || (kept !== name && key < kept);
}

/**
 * The key of `record` a reader of field `name` takes its value from: of the keys spelling it, the
 * one spellingWins keeps (undefined when none does). For a record read once, where a FieldPicker
 * would be built for one field.
 */
export function keyOfField(record: Record<string, unknown>, name: string): string | undefined {
  let kept: string | undefined;
  for (const key of Object.keys(record)) if (canonicalFieldName(key) === name && spellingWins(key, name, kept)) kept = key;
  return kept;
}

/** Marks a slot of FieldPicker.pick's result that no key filled yet. */
const UNSET: unique symbol = Symbol('unset');

/**
 * Picks the values of named fields of JSON objects by canonical name, by spellingWins' rule for
 * two spellings of one field, into an array in the order of `names` (undefined where absent):
 * no Map per object, since this runs for every user and each of its groups, permissions and
 * choice fields. Keys neither picked nor `ignored` are the object's extras (see isExtra); a
 * spelling that lost to another of the same field is not picked either (see lost).
 */
export class FieldPicker {
  private readonly slots: Map<string, number>;
  private readonly ignored: ReadonlySet<string>;
  /**
   * Per spelling received, the slot its value goes to; EXTRA for a field not picked, IGNORED for
   * one of `ignored`. One lookup per key of every record, instead of its canonical name and then
   * its slot.
   */
  private readonly bySpelling = new Map<string, number>();
  /** Per slot, the key whose value the object last picked holds there (valid where that result is set). */
  private readonly keptKeys: string[];
  /** How many extras the object last picked had (read right after pick, so that a reader looks for them only when there are some). */
  extras = 0;
  /** How many of its keys lost to another spelling of the same field (see lost). */
  losers = 0;

  /** `ignored`: lower-cased names of keys that are neither picked nor extras (links, paging). */
  constructor(
    readonly names: readonly string[],
    ignored: readonly string[] = [],
  ) {
    this.slots = new Map(names.map((name, i) => [name, i]));
    this.ignored = new Set(ignored);
    this.keptKeys = new Array<string>(names.length).fill('');
    if (this.slots.size !== names.length) throw new Error(`FieldPicker: a field named twice in ${names.join(', ')}`);
  }

  pick(record: Record<string, unknown>): unknown[] {
    const out = new Array<unknown>(this.names.length).fill(UNSET);
    let extras = 0;
    let losers = 0;
    // Own keys only: for...in would also walk whatever a polluted Object.prototype holds.
    for (const key of Object.keys(record)) {
      const slot = this.bySpelling.get(key) ?? this.learn(key);
      if (slot >= 0) {
        if (out[slot] === UNSET) {
          out[slot] = record[key];
          this.keptKeys[slot] = key;
        } else {
          // Two spellings of one field (rare: the rule's cost is only paid here).
          losers++;
          if (spellingWins(key, this.names[slot]!, this.keptKeys[slot])) {
            out[slot] = record[key];
            this.keptKeys[slot] = key;
          }
        }
      } else if (slot === EXTRA) extras++;
    }
    this.extras = extras;
    this.losers = losers;
    for (let i = 0; i < out.length; i++) if (out[i] === UNSET) out[i] = undefined;
    return out;
  }

  /** Whether `key` is neither picked nor ignored: a part of the object no column holds. */
  isExtra(key: string): boolean {
    return (this.bySpelling.get(key) ?? this.learn(key)) === EXTRA;
  }

  /**
   * Whether `key`, of the object last picked, is a spelling of a picked field whose value lost to
   * another spelling's: no column holds it, yet it is data (raw keeps it).
   */
  lost(key: string): boolean {
    const slot = this.bySpelling.get(key) ?? this.learn(key);
    return slot >= 0 && this.keptKeys[slot] !== key;
  }

  private learn(key: string): number {
    const name = canonicalFieldName(key);
    const slot = name === undefined ? undefined : this.slots.get(name);
    const code = slot ?? (this.ignored.has(fieldNameKey(key)) ? IGNORED : EXTRA);
    if (keptInCache(key, this.bySpelling)) this.bySpelling.set(key, code);
    return code;
  }
}
const EXTRA = -1;
const IGNORED = -2;

/** Re-keys one JSON object by canonical field names (see spellingWins for two spellings of one). */
export function canonicalize(record: Record<string, unknown>): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const keptKeys = new Map<string, string>();
  // Object.keys, not Object.entries: this runs for every user, and entries makes a pair per field.
  for (const key of Object.keys(record)) {
    const name = canonicalFieldName(key);
    if (name !== undefined && spellingWins(key, name, keptKeys.get(name))) {
      out.set(name, record[key]);
      keptKeys.set(name, key);
    }
  }
  return out;
}

const LOGIN = new FieldPicker(['login']);

/** A record's login field under any spelling, as sent (undefined when it has none): read for every user on some paths, so without a Map. */
export function loginField(record: Record<string, unknown>): unknown {
  return LOGIN.pick(record)[0];
}
