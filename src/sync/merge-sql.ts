import { MAPPED_FIELD_KEYS } from '../cpq/user-fields.js';
import { isoUtcSql } from '../db/as-text.js';
import { PERSONAL_FIELD_COLUMNS } from '../normalize/personal-fields.js';
import { USER_VALUE_COLUMNS, USER_VALUE_COLUMN_TYPES } from '../normalize/user-fields.js';

/*
 * SQL fragments the merge steps (merge-plan.ts) share. Column lists and keys are constants from
 * the field mapping, never data.
 */

const DATA_COLUMNS = ['company_name', 'is_integration_user', ...USER_VALUE_COLUMNS, 'raw', 'content_hash'];
/** The data columns of a user row, each with `prefix`, comma-separated. */
export const dataColumns = (prefix: string) => DATA_COLUMNS.map((c) => `${prefix}${c}`).join(', ');
/** Columns a change's diff reports: every data column but raw and the digest. */
export const DIFF_COLUMNS = DATA_COLUMNS.filter((c) => c !== 'raw' && c !== 'content_hash');

const PG_TYPE: Record<string, string> = Object.fromEntries<string>([
  ['company_name', 'text'],
  ['is_integration_user', 'boolean'],
  ...USER_VALUE_COLUMN_TYPES.map((c): [string, string] => [c.column, c.pgType]),
]);

/** A column value as JSON text; numbers and booleans print as JSON already, the rest goes through to_json. */
const asJson = (expr: string, column: string) => {
  const type = PG_TYPE[column]!;
  if (['boolean', 'integer', 'bigint'].includes(type)) return `coalesce(${expr}::text, 'null')`;
  // The same ISO form CPQ sends and inserts are logged with, whatever the session time zone.
  if (type === 'timestamptz') return `coalesce(pg_catalog.to_json(${isoUtcSql(expr)})::text, 'null')`;
  return `coalesce(pg_catalog.to_json(${expr})::text, 'null')`;
};

/**
 * The field diff of an updated user as one jsonb: `"col":{"old":...,"new":...}` for every column
 * whose value differs between the old row `o` and the new row `u`. Against an empty `o` it is
 * the field part of an insert's diff: cpq.insert_diff_row (migrations/0027; before it cpq.insert_diff: 0005, 0016, 0018, 0020) holds a copy
 * of it, hence functions named with their schema (see isoUtcParts).
 * Built as text and parsed once: jsonb_each/jsonb_object_agg per row costs ten times more.
 * concat_ws skips NULLs; it takes at most 100 arguments, hence the chunks.
 */
export const FIELD_DIFF = (() => {
  const fragments = DIFF_COLUMNS.map(
    (c) => `CASE WHEN o.${c} IS DISTINCT FROM u.${c} THEN '"${c}":{"old":' || ${asJson(`o.${c}`, c)} || ',"new":' || ${asJson(`u.${c}`, c)} || '}' END`,
  );
  const chunks: string[] = [];
  for (let i = 0; i < fragments.length; i += 40) chunks.push(`nullif(pg_catalog.concat_ws(',', ${fragments.slice(i, i + 40).join(', ')}), '')`);
  return `('{' || pg_catalog.concat_ws(',', ${chunks.join(', ')}) || '}')::jsonb`;
})();

/**
 * The diff entries of the personal fields that the old row `o` of a restored user `u` had erased
 * (`forget`, HISTORY_RETENTION: null in the column, "[redacted]" under the field's key in raw), as
 * `"col":{"old":"[redacted]","new":...}`: what the field held is no longer known. FIELD_DIFF's
 * entry for such a field says `"old": null`: the same person coming back was logged as a change of
 * every personal field from nothing, and a field that came back empty as no change (review HO).
 * Keys are compared folded as cpq.is_personal_key folds them. `erased` is the condition that the
 * row was erased, so that a "[redacted]" CPQ sent under a spelling the mapping does not read makes
 * no such entry. Built as FIELD_DIFF is; '{}' when none.
 */
export const erasedFieldsDiff = (erased: string) => {
  const keys = `ARRAY(SELECT pg_catalog.lower(pg_catalog.replace(e.key, '_', '') COLLATE pg_catalog."C") FROM pg_catalog.jsonb_each(o.raw) e WHERE e.value = '"[redacted]"'::jsonb)`;
  const fragments = PERSONAL_FIELD_COLUMNS.map(
    ({ field, column }) =>
      `CASE WHEN o.${column} IS NULL AND '${field.toLowerCase()}' = ANY (k.keys) THEN '"${column}":{"old":"[redacted]","new":' || ${asJson(`u.${column}`, column)} || '}' END`,
  );
  return `CASE WHEN ${erased} THEN (SELECT ('{' || pg_catalog.concat_ws(',', ${fragments.join(', ')}) || '}')::jsonb FROM (SELECT ${keys} AS keys) k) ELSE '{}'::jsonb END`;
};

/**
 * Lower-cased keys of a raw record that the mapping reads (columns, groups, links, ...): constants, never data.
 * A key is compared by mappedKeyOf: its ASCII letters in lower case, as fieldNameKey folds it in JS.
 */
const MAPPED_KEYS = `ARRAY[${MAPPED_FIELD_KEYS.map((k) => `'${k}'`).join(', ')}]::text[]`;
/** A raw key folded as fieldNameKey folds it: lower() under the C collation changes ASCII letters only, whatever the database's locale. */
const mappedKeyOf = (key: string) => `pg_catalog.lower(${key} COLLATE pg_catalog."C")`;

/**
 * The fields of raw the mapping has no column for (custom fields), as one jsonb object; the
 * content digest covers exactly these besides the columns (user-record.ts, unknownFieldsJson).
 * A field sent as null is left out: null and absent say the same, as for a mapped field, so a
 * custom field going from one to the other is a restatement, not a change.
 */
export const unmappedFields = (raw: string) =>
  `(SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM pg_catalog.jsonb_each(${raw}) e WHERE ${mappedKeyOf('e.key')} <> ALL (${MAPPED_KEYS}) AND pg_catalog.jsonb_typeof(e.value) <> 'null')`;

/**
 * The custom-field part of an insert's diff, from its first version `u`: `"raw.<field>":{"old":
 * null,"new":...}` for each field unmappedFields holds, '{}' when none. cpq.insert_diff_row
 * (migrations/0027; before it cpq.insert_diff: 0018, 0020) holds a copy of it, on a line of its own after FIELD_DIFF's.
 */
export const INSERTED_UNMAPPED_DIFF = `(SELECT coalesce(pg_catalog.jsonb_object_agg('raw.' || e.key, pg_catalog.jsonb_build_object('old', NULL, 'new', e.value)), '{}'::jsonb) FROM pg_catalog.jsonb_each(${unmappedFields('u.raw')}) e)`;

/**
 * The diff entries of custom fields between the old row `o` and the new row `u`:
 * `"raw.<field>":{"old":...,"new":...}` for each top-level field the mapping has no column for
 * whose value differs (null where a side lacks it; null and absent do not differ, see
 * unmappedFields), '{}' when none does. Each side's fields are read once (jsonb_each) and joined
 * by key: looked up per key (`o.raw -> key` over the keys of `o.raw || u.raw`), each look-up
 * decompressed the whole value again, N keys times its size: one user of 20,000 changed custom
 * fields took 54 s, inside the run's transaction (review HS); and a user of ~110 fields 5 times
 * as long as now.
 */
export const UNMAPPED_DIFF = `(SELECT coalesce(jsonb_object_agg('raw.' || key, jsonb_build_object('old', a.value, 'new', b.value)), '{}'::jsonb)
   FROM jsonb_each(o.raw) a FULL JOIN jsonb_each(u.raw) b USING (key)
   WHERE ${mappedKeyOf('key')} <> ALL (${MAPPED_KEYS}) AND coalesce(a.value, 'null') IS DISTINCT FROM coalesce(b.value, 'null'))`;
