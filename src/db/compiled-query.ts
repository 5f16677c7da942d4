import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type CompiledQuery } from 'kysely';
import type pg from 'pg';
import type { Database } from './schema.js';

/**
 * Kysely as a query builder only: it compiles typed queries that are then run on a connection we
 * choose, such as the run's own client inside its transaction (a Kysely instance runs each query
 * on a connection of its pool, outside that transaction).
 */
export const queryBuilder = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** Where a compiled query runs: a pool, one of its clients, or a connection of its own (the health endpoints' HealthConnection). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<Pick<pg.QueryResult, 'rows'>>;
}

/** Runs a query compiled by `queryBuilder` on `on`; its rows, typed as the builder inferred them. */
export async function runCompiled<R>(on: Queryable, query: CompiledQuery<R>): Promise<R[]> {
  const result = await on.query(query.sql, [...query.parameters]);
  return result.rows as R[];
}
