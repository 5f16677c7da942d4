import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preferLz4Compression } from '../src/db/sql/prefer-lz4-compression.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

/** How Postgres stored a large compressible jsonb value written in a transaction, with or without preferLz4Compression first. */
async function storedCompression(prefer: boolean): Promise<{ applied: boolean; method: string | null; afterwards: string }> {
  const client = await database.pool.connect();
  try {
    await client.query('BEGIN');
    const applied = prefer ? await preferLz4Compression(client) : false;
    await client.query('CREATE TEMP TABLE raw_values (raw jsonb) ON COMMIT DROP');
    await client.query(`INSERT INTO raw_values SELECT jsonb_build_object('field', repeat('compressible ', 2000))`);
    const { rows } = await client.query<{ method: string | null }>('SELECT pg_column_compression(raw) AS method FROM raw_values');
    await client.query('COMMIT');
    const after = await client.query<{ setting: string }>('SHOW default_toast_compression');
    return { applied, method: rows[0]!.method, afterwards: after.rows[0]!.setting };
  } finally {
    client.release();
  }
}

describe('lz4 compression of what a run writes', () => {
  it("is used when the server has lz4 (else the server's default stays), for the run's transaction only", async () => {
    const [server] = await database.query<{ lz4: boolean }>(`SELECT 'lz4' = ANY (enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'`);
    const lz4 = server!.lz4;
    const before = await storedCompression(false);
    const preferred = await storedCompression(true);
    expect(preferred.applied).toBe(lz4);
    expect(preferred.method).toBe(lz4 ? 'lz4' : before.method);
    // SET LOCAL: the session's setting is back after the commit (the pool's connection is reused).
    expect(preferred.afterwards).toBe(before.afterwards);
    // Without it, the server's default applies.
    const [setting] = await database.query<{ default_toast_compression: string }>('SHOW default_toast_compression');
    expect(before.method).toBe(setting!.default_toast_compression);
  });
});
