import { CPQ_USER_FIELDS, isChoice, type CpqUserField, type FieldKind } from '../cpq/user-fields.js';

/**
 * The one mapping from CPQ user fields (../cpq/user-fields.ts) to cpq.users columns: each field
 * fills the column named by its snake_case (a choice field also `${column}_display`), except
 * those renamed in COLUMN_NAMES. The types of these columns (src/db/schema.ts) and the tests of
 * every table, view and function that lists them (test/schema-*.test.ts) are derived from here.
 */

export interface UserField {
  /** Canonical (v19) field name. */
  field: string;
  /** Column in cpq.users; choice fields also have `${column}_display`. */
  column: string;
  kind: FieldKind;
}

/** Columns not named by their field's snake_case: `id` would clash with the row's own id. */
const COLUMN_NAMES = { id: 'cpq_id' } as const satisfies Partial<Record<CpqUserField, string>>;

/** `billCompany2` -> `bill_company2`, as a type (the runtime `snake` below does the same). */
type SnakeCase<S extends string, Done extends string = ''> = S extends `${infer C}${infer Rest}`
  ? SnakeCase<Rest, `${Done}${C extends Lowercase<C> ? C : `_${Lowercase<C>}`}`>
  : Done;

/** The column a field fills. */
export type ColumnOf<F extends CpqUserField> = F extends keyof typeof COLUMN_NAMES ? (typeof COLUMN_NAMES)[F] : SnakeCase<F>;

type ChoiceField = { [F in CpqUserField]: (typeof CPQ_USER_FIELDS)[F] extends 'choiceText' | 'choiceInt' ? F : never }[CpqUserField];

/** Every value column of cpq.users and what it holds (`displayText`: a choice's displayValue). */
export type UserValueColumnKinds = { [F in CpqUserField as ColumnOf<F>]: (typeof CPQ_USER_FIELDS)[F] } & {
  [F in ChoiceField as `${ColumnOf<F>}_display`]: 'displayText';
};
export type UserValueColumn = keyof UserValueColumnKinds;

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const columnOf = (field: CpqUserField): string => (field in COLUMN_NAMES ? COLUMN_NAMES[field as keyof typeof COLUMN_NAMES] : snake(field));

export const USER_FIELDS: readonly UserField[] = (Object.keys(CPQ_USER_FIELDS) as CpqUserField[]).map((field) => ({
  field,
  column: columnOf(field),
  kind: CPQ_USER_FIELDS[field],
}));

/** Every cpq.users column the mapping fills, in a fixed order (choice fields bring their _display column). */
export const USER_VALUE_COLUMNS: readonly string[] = USER_FIELDS.flatMap((u) => (isChoice(u.kind) ? [u.column, `${u.column}_display`] : [u.column]));

/**
 * The admin flags of a user row (`is_*_perm_enabled`): what the admin_flag alert rule watches. The
 * SQL of cpq.administrators and cpq.admin_rights_as_of names them one by one (a migration adds a
 * new one there; test/admin-rights-as-of.test.ts fails until it does).
 */
export const ADMIN_FLAG_COLUMNS: readonly string[] = USER_VALUE_COLUMNS.filter((c) => /^is_\w+_perm_enabled$/.test(c));

/** The Postgres types of the value columns. */
export type UserValueColumnType = 'text' | 'boolean' | 'bigint' | 'timestamptz' | 'integer';

const COLUMN_PG_TYPE: Record<FieldKind, UserValueColumnType> = {
  text: 'text',
  boolean: 'boolean',
  bigint: 'bigint',
  timestamp: 'timestamptz',
  choiceText: 'text',
  choiceInt: 'integer',
};

/** Column name and Postgres type of every USER_VALUE_COLUMNS entry, same order. */
export const USER_VALUE_COLUMN_TYPES: readonly { column: string; pgType: UserValueColumnType }[] = USER_FIELDS.flatMap((u) =>
  isChoice(u.kind)
    ? [
        { column: u.column, pgType: COLUMN_PG_TYPE[u.kind] },
        { column: `${u.column}_display`, pgType: 'text' },
      ]
    : [{ column: u.column, pgType: COLUMN_PG_TYPE[u.kind] }],
);
