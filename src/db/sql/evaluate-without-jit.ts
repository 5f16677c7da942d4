import type pg from 'pg';
// Not converted: a SET LOCAL; Kysely has no builder for it, and it returns no rows.

/**
 * For the rest of the caller's transaction, Postgres evaluates expressions without compiling them
 * (jit off). For a read of the change log: an insert's diff is built from history as it is read,
 * some hundred function calls a row (to_json, concatenation, jsonb), which compiled code does not
 * make faster, and a read of more than a few thousand changes is costed above jit_above_cost, so
 * a server built with JIT compiled the query first, inlining and optimizing 61 functions: 3.1 s
 * of a 9.8 s read of 32,000 inserts (Postgres 15 with LLVM, EXPLAIN ANALYZE), paid by every such
 * poll. The as-of functions of admin rights carry the same setting (migration 0030).
 */
export async function evaluateWithoutJit(client: pg.PoolClient): Promise<void> {
  await client.query('SET LOCAL jit = off');
}
