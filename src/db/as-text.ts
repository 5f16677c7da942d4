import { sql, type Expression, type RawBuilder } from 'kysely';

/*
 * Values read as text, for what leaves the database exactly: node-postgres would turn a
 * timestamptz into a JavaScript Date (its microseconds dropped) and parse jsonb with JSON.parse
 * (every number through a double). Selected as text, they reach the output as Postgres prints them.
 */

/**
 * A timestamptz as ISO-8601 UTC text: milliseconds, as JavaScript's toISOString writes them, or
 * microseconds when the value has any (a JavaScript Date would drop them). Null stays null.
 */
export function isoUtcText<T>(expr: Expression<T>): RawBuilder<null extends T ? string | null : string> {
  return sql`(to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.')
    || to_char(${expr} AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM ${expr}) % 1000 = 0 THEN 'MS' ELSE 'US' END) || 'Z')`;
}

/**
 * A column of a query read as text, in array row mode: `json` when the text is JSON (jsonb, a
 * number, a boolean) to be written out as it is, otherwise a string; `expr` selects it.
 */
export interface TextColumn {
  name: string;
  json: boolean;
  expr: RawBuilder<unknown>;
}

/** The select list of `columns`, in their order. */
export const selectList = (columns: readonly TextColumn[]): RawBuilder<unknown> => sql.join(columns.map((c) => c.expr));
