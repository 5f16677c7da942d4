import { mkdtemp, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDb, createPool } from '../../src/db/database.js';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { freePort } from '../helpers/free-port.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A connection string to a database on the test server with rights to create databases. */
    adminDatabaseUrl: string;
    /** A migrated database that each test file clones. */
    templateDatabase: string;
  }
}

// One per test run: two runs against one TEST_DATABASE_URL each dropped and re-created the other's
// (template "cpq_test_template" does not exist, review GE's deep runs beside the developer's).
const TEMPLATE = `cpq_test_template_${process.pid}`;

async function containerDatabase(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
  } catch {
    return undefined; // no container runtime answers: fall through to embedded Postgres
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:17-alpine').start();
  return {
    url: container.getConnectionUri(),
    stop: async () => {
      await container.stop();
    },
  };
}

async function embeddedDatabase(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-test-'));
  await chmod(dir, 0o755);
  return startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: await freePort(), database: 'postgres', persistent: false, tcp: true });
}

/** Test database server, in the documented order: TEST_DATABASE_URL, a container runtime, embedded Postgres. */
export default async function setup(project: TestProject) {
  const server = process.env.TEST_DATABASE_URL
    ? { url: process.env.TEST_DATABASE_URL, stop: async () => undefined }
    : ((await containerDatabase()) ?? (await embeddedDatabase()));

  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
  // UTF8 whatever the server's template1 is (a LATIN1 one would be refused by migrate).
  await admin.query(`CREATE DATABASE ${TEMPLATE} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
  await admin.end();

  const templateUrl = new URL(server.url);
  templateUrl.pathname = `/${TEMPLATE}`;
  const pool = createPool(templateUrl.toString());
  const db = createDb(pool);
  await migrate(db);
  await db.destroy();

  project.provide('adminDatabaseUrl', server.url);
  project.provide('templateDatabase', TEMPLATE);
  return async () => {
    // A server the run did not start keeps its databases: the template is the run's own to drop.
    const cleanup = new pg.Client({ connectionString: server.url });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`).finally(() => cleanup.end());
    await server.stop();
  };
}
