import { sql, type Expression, type RawBuilder } from 'kysely';

/*
 * Values read as text, for what leaves the database exactly: node-postgres would turn a
 * timestamptz into a JavaScript Date (its microseconds dropped) and parse jsonb with JSON.parse
 * (every number through a double). Selected as text, they reach the output as Postgres prints them.
 */

/**
 * A timestamptz as ISO-8601 UTC text: milliseconds, as JavaScript's toISOString writes them and
 * CPQ sends dates (2025-09-26T12:17:59.000Z), or microseconds when the value has any
 * (2025-09-26T12:17:59.123456Z; a JavaScript Date would drop them), whatever the session time
 * zone. Null stays null. The SQL around the expression, once, for both forms below. Functions
 * are named with their schema, and extract's numeric meets numerics: cpq.insert_diff_row holds this
 * text, and must not run a function or operator another role put in its caller's search_path
 * (migrations/0020; `numeric % integer` has no exact match in pg_catalog, so a
 * public.%(numeric, integer) would have been taken).
 */
function isoUtcParts<E>(expr: E): (string | E)[] {
  return [
    `(pg_catalog.to_char(`,
    expr,
    ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.') || pg_catalog.to_char(`,
    expr,
    ` AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM `,
    expr,
    `) % 1000::pg_catalog.numeric = 0::pg_catalog.numeric THEN 'MS' ELSE 'US' END) || 'Z')`,
  ];
}

/** isoUtcParts for a Kysely query. */
export function isoUtcText<T>(expr: Expression<T>): RawBuilder<null extends T ? string | null : string> {
  return sql.join(
    isoUtcParts(expr).map((part) => (typeof part === 'string' ? sql.raw(part) : part)),
    sql``,
  );
}

/** isoUtcParts as SQL text, for SQL built as text (the merge's). */
export function isoUtcSql(expr: string): string {
  return isoUtcParts(expr).join('');
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
