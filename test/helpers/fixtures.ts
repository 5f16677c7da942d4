import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from './database.js';
import { it as harnessIt, startHarness, type Harness } from './harness.js';

/**
 * The harness `it` (see ./harness.ts) with more fixtures, each closed when the test ends, pass
 * or fail:
 * - `connectClient(url)`: a pg client of its own on `url`, for a test that holds a lock or a
 *   transaction open beside the code under test (ended; a transaction left open is rolled back);
 * - `createDatabase()`: a fresh test database with no simulator (dropped);
 * - `fileDatabase`: one fresh test database shared by the tests of a file that only read it
 *   (dropped when the file's tests end);
 * - `writeSitesFile(sites)`: the path of a CPQ_SITES_FILE of those sites (JSON, readable by its
 *   owner only: such a file may hold keys) in a folder of its own (removed).
 */
export const it = harnessIt
  // eslint-disable-next-line no-empty-pattern -- vitest reads the fixtures a fixture needs from this pattern
  .extend('connectClient', async ({}, { onCleanup }) => {
    const clients: pg.Client[] = [];
    onCleanup(async () => {
      for (const client of clients.splice(0)) await client.end().catch(() => undefined);
    });
    return async (url: string): Promise<pg.Client> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      clients.push(client);
      return client;
    };
  })
  // eslint-disable-next-line no-empty-pattern -- as above
  .extend('createDatabase', async ({}, { onCleanup }) => {
    const databases: TestDatabase[] = [];
    onCleanup(async () => {
      for (const t of databases.splice(0)) await t.drop();
    });
    return async (): Promise<TestDatabase> => {
      const t = await createTestDatabase();
      databases.push(t);
      return t;
    };
  })
  // eslint-disable-next-line no-empty-pattern -- as above
  .extend('writeSitesFile', async ({}, { onCleanup }) => {
    const dirs: string[] = [];
    onCleanup(() => {
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    });
    return (sites: readonly Record<string, unknown>[]): string => {
      const dir = mkdtempSync(join(tmpdir(), 'cpq-sites-'));
      dirs.push(dir);
      const file = join(dir, 'sites.json');
      writeFileSync(file, JSON.stringify(sites), { mode: 0o600 });
      return file;
    };
  })
  // eslint-disable-next-line no-empty-pattern -- as above
  .extend('fileDatabase', { scope: 'file' }, async ({}, { onCleanup }) => {
    const t = await createTestDatabase();
    onCleanup(() => t.drop());
    return t;
  });

/**
 * `it` (the one above) with `h`: one harness shared by the tests of a file, started and made
 * ready by `prepare` for the first test that asks for it, and closed when the file's tests end,
 * pass or fail. For files whose tests each read the same prepared state.
 */
export function itWithFileHarness(
  simulator: Parameters<typeof startHarness>[0],
  env: Parameters<typeof startHarness>[1],
  prepare: (h: Harness) => Promise<unknown>,
) {
  // eslint-disable-next-line no-empty-pattern -- vitest reads the fixtures a fixture needs from this pattern
  return it.extend('h', { scope: 'file' }, async ({}, { onCleanup }) => {
    const h = await startHarness(simulator, env);
    onCleanup(() => h.close());
    await prepare(h);
    return h;
  });
}
