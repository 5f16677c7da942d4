import { chmod, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PASSWORD_FILE, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { Cleanups, cli } from '../helpers/cli-process.js';
import { freePort } from '../helpers/free-port.js';

/*
 * Review CW: as root, the embedded server runs as the postgres account, and the folders it
 * writes (the private socket folder in /tmp, the data folder) are that account's. Root removed
 * them recursively at every stop: the account, swapping a folder for a link while root walked the
 * tree (renameat2 RENAME_EXCHANGE, in a loop), had root delete files anywhere. The swap itself is
 * a race; what these tests plant instead is where it would lead: a folder only root may change,
 * inside the account's folders. Removed with the account's rights, it stays. Review CX: files
 * root writes for the account are no longer written in the socket folder, which the account can
 * rename in the sticky /tmp (a race, not tested here), and the files of the data folder root reads
 * or rewrites must have no second name.
 */
const cleanups = new Cleanups();
afterEach(() => cleanups.run());

const asRoot = process.getuid?.() === 0;

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-as-root-'));
  await chmod(dir, 0o755); // the embedded server runs as user postgres when we are root
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A root-owned folder (0755) holding a root-owned file, in `parent`: what only root may delete. */
async function rootOnly(parent: string): Promise<string> {
  const standIn = join(parent, 'root-only');
  await mkdir(standIn, { mode: 0o755 });
  await writeFile(join(standIn, 'precious'), 'precious\n', { mode: 0o600 });
  cleanups.push(() => rm(parent, { recursive: true, force: true }));
  return join(standIn, 'precious');
}

describe('the embedded Postgres run by root', () => {
  it.runIf(asRoot)(
    "removes its socket folder and a data folder it does not keep with the postgres account's rights, not root's",
    async () => {
      const dataDir = join(await folder(), 'pg');
      const server = await startEmbeddedPostgres({ dataDir, port: await freePort(), database: 'postgres', persistent: false });
      const socketDir = decodeURIComponent(new URL(server.url).hostname);
      expect(socketDir).toMatch(/^\/tmp\/cpq-sync-pg-/);
      const inSocketDir = await rootOnly(socketDir);
      const inDataDir = await rootOnly(dataDir);
      await server.stop();
      expect(await readFile(inSocketDir, 'utf8')).toBe('precious\n');
      expect(await readFile(inDataDir, 'utf8')).toBe('precious\n');
    },
    120_000,
  );

  it.runIf(asRoot)(
    'the account commands it runs (id, and groupadd/useradd when the account is missing) get no setting of the CLI',
    async () => {
      const dir = await folder();
      const bin = join(dir, 'bin');
      await mkdir(bin, { mode: 0o755 });
      const record = join(dir, 'id-environment');
      // An `id` first on PATH that writes down its environment, then runs the real one.
      await writeFile(join(bin, 'id'), `#!/bin/sh\nenv >> ${record}\nexec /usr/bin/id "$@"\n`, { mode: 0o755 });
      const out = await cli(['migrate'], {
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        DATA_DIR: join(dir, 'data'),
        EMBEDDED_PG_PORT: String(await freePort()),
        CPQ_BASE_URL: 'http://127.0.0.1:9',
        CPQ_USERNAME: 'sync',
        CPQ_PASSWORD: 'cpq-pw-for-id-5521',
      });
      expect(out.code, out.stderr).toBe(0);
      const seen = await readFile(record, 'utf8');
      expect(seen).toMatch(/^PATH=/m);
      expect(seen).not.toMatch(/CPQ_|cpq-pw-for-id-5521|DATA_DIR/);
    },
    120_000,
  );

  it('a password file with a second name (a hard link, which could be to a file of root’s) is refused, not read or chmodded', async () => {
    const dir = await folder();
    const dataDir = join(dir, 'pg');
    const first = await startEmbeddedPostgres({ dataDir, port: await freePort(), database: 'postgres' });
    await first.stop();
    await link(join(dataDir, PASSWORD_FILE), join(dir, 'second-name'));
    await expect(startEmbeddedPostgres({ dataDir, port: await freePort(), database: 'postgres' })).rejects.toThrow(
      `embedded Postgres: ${join(dataDir, PASSWORD_FILE)} is not the data folder's own file (2 names, owner `,
    );
  }, 120_000);
});
