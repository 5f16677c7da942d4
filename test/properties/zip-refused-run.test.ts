import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ZipArchive } from '../../src/cpq/zip-archive.js';
import { SyncError } from '../../src/errors.js';
import type { CpqSimulator, ZipEntryFormat } from '../../src/simulator/index.js';
import type { TestDatabase } from '../helpers/database.js';
import { ZipTestBed, databaseContents, filesIn } from '../helpers/zip.js';
import { WRITERS, damagedBy, hit, manyBytes, writtenBy, type ManyBytes, type Written } from '../helpers/zip-damage.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * The database side of a damaged zip export (the reader's side is zip-corruption.test.ts). After a
 * good run, a run whose export comes damaged either fails, and then every table of schema cpq holds
 * exactly what the good run left (rows, history, change log, cursors, counts: every column, ids and
 * timestamps included) while its run record says failed with a one-line error naming the export
 * and where in it; or it reads the archive, and then the database is what a read of the archive as
 * written gives after the same good run: no user the archive holds is marked deleted, nothing else
 * differs. Each case is two to four runs against real Postgres and a real HTTP server (the
 * simulator serving the archive as CPQ's bulk export), so CI tries few; FC_NUM_RUNS for more.
 */

const ZIP = { CPQ_EXPORT_FORMAT: 'zip', SYNC_MAX_DELETE_FRACTION: '1', CPQ_PAGE_SIZE: '3' };
const COMPANY = '_host';
const SITE_NOW = new Date('2025-11-01T12:00:00Z');
const LIMITS = { maxBytes: 1 << 30, maxEntries: 1000, maxRatio: 1000, maxTotalBytes: 1 << 30 };

/** Every row of every table in schema cpq but the run log, every column as stored: what a failed run must leave as it was. */
async function everyRow(t: TestDatabase): Promise<Record<string, string[]>> {
  const tables = await t.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'cpq' AND table_type = 'BASE TABLE' AND table_name <> 'sync_runs' AND table_name NOT LIKE 'kysely%'
     ORDER BY 1`,
  );
  const out: Record<string, string[]> = {};
  for (const { name } of tables) {
    out[name] = (await t.query<{ row: string }>(`SELECT to_jsonb(t)::text AS row FROM cpq."${name}" t`)).map((r) => r.row).sort();
  }
  return out;
}

/**
 * databaseContents with every time from `since` on said so: a deletion is dated by its run, which
 * differs between the run and its reference, while the site's data holds earlier times.
 */
async function contentsAsOf(t: TestDatabase, since: number): Promise<Record<string, string[]>> {
  const contents = await databaseContents(t);
  const timeOf = (text: string) => (Date.parse(text) >= since ? '<during the case>' : text);
  return Object.fromEntries(
    Object.entries(contents).map(([table, rows]) => [
      table,
      rows.map((row) => row.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g, timeOf)).sort(),
    ]),
  );
}

const runRecords = (t: TestDatabase) =>
  t.query<{ id: string; status: string; error: string | null }>(`SELECT id::text AS id, status, error FROM cpq.sync_runs ORDER BY id`);

/** The simulator's export of the company now, as the entries it holds (names and texts), rewritten by `writer`; 'simulator': its bytes as served. */
async function exportOf(bed: ZipTestBed, sim: CpqSimulator, entries: ZipEntryFormat[], folder: boolean, stored: boolean, writer: Writer) {
  const file = await bed.fetchExport(sim, COMPANY, {
    entries: entries.map((format) => ({ format })),
    compression: stored ? 'store' : 'deflate',
    ...(folder ? { folder: 'export/' } : {}),
  });
  const served = await readFile(file);
  const archive = await ZipArchive.open(file, LIMITS);
  const written: Written[] = [];
  try {
    for (const entry of await archive.userEntries()) {
      const parts: Buffer[] = [];
      for await (const chunk of archive.bytes(entry)) parts.push(chunk);
      written.push({ name: entry.entry.fileName, text: Buffer.concat(parts).toString(), compress: !stored });
    }
  } finally {
    archive.close();
  }
  return { bytes: writer === 'simulator' ? served : await writtenBy(writer, written, false), written };
}

type Writer = 'simulator' | (typeof WRITERS)[number];

/** What changes on the site between the good run and the damaged one: a user edited, one deleted, one added. */
const edits = fc.record({ edit: fc.nat(), remove: fc.option(fc.nat()), add: fc.boolean() });

/** The damage of zip-corruption's properties: one byte, or many bytes, a run, a cut, records copied or swapped. */
const oneByte = fc.record({
  kind: fc.constant('bytes' as const),
  where: fc.constantFrom('anywhere' as const, 'names' as const, 'headers' as const),
  hits: fc.array(hit, { minLength: 1, maxLength: 1 }),
});
const damage: fc.Arbitrary<ManyBytes> = fc.oneof(oneByte, manyBytes);

const FORMATS: ZipEntryFormat[] = ['json', 'json-array', 'jsonl', 'csv'];

describe('a zip run whose export comes damaged, after a good run (property)', () => {
  it(
    'fails leaving every cpq table as the good run left it, with a one-line error naming where; or reads the archive as written',
    async () => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.constantFrom(...FORMATS), { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          fc.boolean(),
          fc.constantFrom<Writer>('simulator', ...WRITERS),
          edits,
          damage,
          async (formats, folder, stored, writer, change, hurt) => {
            const bed = new ZipTestBed();
            const since = Date.now();
            try {
              // A clock in the past for the site's edits: a dateModified of now would be taken for a
              // site clock ahead of the run, and the cursor set by when each run ran.
              const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 7, integrationUsers: 0, zipExport: {}, now: () => SITE_NOW });
              const dir = await bed.tempDir();
              const good = await exportOf(bed, sim, formats, folder, stored, writer);
              const logins = () => sim.users(COMPANY).map((u) => String(u.login));
              sim.updateUser(COMPANY, logins()[change.edit % logins().length]!, { lastName: `Edited ${n}` });
              if (change.remove !== null) sim.deleteUser(COMPANY, logins()[change.remove % logins().length]!);
              if (change.add) sim.addUser(COMPANY, { login: `added-${n}` });
              const next = await exportOf(bed, sim, formats, folder, stored, writer);
              const { damaged } = damagedBy(next.bytes, next.written, hurt);
              const files = { good: join(dir, `good-${n}.zip`), next: join(dir, `next-${n}.zip`), damaged: join(dir, `damaged-${n}.zip`) };
              n++;
              await writeFile(files.good, good.bytes);
              await writeFile(files.next, next.bytes);
              await writeFile(files.damaged, damaged);

              // The good run, then the damaged one, into one database.
              const t = await bed.database();
              sim.setZipExport({ archiveFile: files.good });
              await bed.sync(sim, t, ZIP);
              const [before, runsBefore] = [await everyRow(t), await runRecords(t)];
              sim.setZipExport({ archiveFile: files.damaged });
              const { result, error, tmp } = await bed.run(sim, t, ZIP);

              if (error !== undefined) {
                if (!(error instanceof SyncError)) throw new Error(`expected a SyncError, got ${String(error)}`);
                expect(error.kind, error.message).toBe('data');
                const message = error.message;
                expect(message, 'one line').toMatch(/^[^\r\n]+$/);
                // What: the export, by its URL. Where: an entry (by name, with a line or item), a byte of the archive, or the body's first bytes when it is no zip.
                expect(message).toContain(`/rest/v16/companies/${COMPANY}/users`);
                expect(message).toMatch(/(entry|entries|named) "|byte \d|expected a zip archive, got /);
                expect(await everyRow(t), `every cpq table as the good run left it, after: ${message}`).toEqual(before);
                expect(await runRecords(t)).toEqual([...runsBefore, { id: expect.any(String) as unknown, status: 'failed', error: message }]);
                expect(await filesIn(tmp)).toEqual([]);
                return;
              }

              // Read: the database is what the archive as written gives after the same good run.
              expect(result!.status).toBe('succeeded');
              const [deleted] = await t.query<{ logins: string[] }>(
                `SELECT coalesce(array_agg(login ORDER BY login), '{}') AS logins FROM cpq.users WHERE company_login = $1 AND deleted_at IS NOT NULL AND login = ANY($2)`,
                [COMPANY, logins()],
              );
              expect(deleted!.logins, 'users the archive holds, marked deleted').toEqual([]);
              const reference = await bed.database();
              sim.setZipExport({ archiveFile: files.good });
              await bed.sync(sim, reference, ZIP);
              sim.setZipExport({ archiveFile: files.next });
              await bed.sync(sim, reference, ZIP);
              expect(await contentsAsOf(t, since), 'the damaged archive read as the archive written').toEqual(await contentsAsOf(reference, since));
            } finally {
              await bed.close();
            }
          },
        ),
        runs(6, propertyTimeout(180_000)),
      );
    },
    propertyTimeout(180_000),
  );
});
