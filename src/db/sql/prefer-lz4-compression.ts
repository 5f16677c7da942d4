import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * For the rest of the transaction, compresses the values it writes into compressible columns
 * with lz4 instead of Postgres' default pglz, when the server was built with lz4 (most builds
 * since Postgres 14; the embedded Postgres is not). A user's raw JSON (~3 KB) is compressed as
 * it is stored: on Debian's Postgres 15, COPY of 100,000 users' raw JSON into jsonb took 2.5 s
 * with lz4 against 4.1-4.5 s with pglz, for 198 MB on disk against 186 MB. Values already
 * stored keep their compression. lz4 values can be read only by a server built with lz4: a
 * physical copy of the data (a standby, pg_upgrade) needs such a build, as the server that wrote
 * them was; pg_dump and restore are unaffected. Returns whether it did.
 */
export async function preferLz4Compression(client: Queryable): Promise<boolean> {
  const rows = await runCompiled(
    client,
    sql<{ set: string }>`
      SELECT set_config('default_toast_compression', 'lz4', true) AS set
      FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)`.compile(queryBuilder),
  );
  return rows.length > 0;
}
