import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZipFile } from 'yazl';
import { ZipArchive } from '../../src/cpq/zip-archive.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * A zip export is read from a file the sync downloaded. Whatever one byte of it holds instead of
 * what was written (a damaged download, a hostile site), reading it either fails or gives exactly
 * the user entries written, in their formats and with their bytes: never fewer entries, never
 * other bytes. (An entry's name may come out otherwise, as a damaged name that still names a user
 * entry of the same format: the name only labels errors.)
 */

const CENTRAL_RECORD = Buffer.from([0x50, 0x4b, 0x01, 0x02]);
const ZIP64_END_RECORD = Buffer.from([0x50, 0x4b, 0x06, 0x06]);

const LIMITS = { maxBytes: 1 << 20, maxEntries: 100, maxRatio: 1000, maxTotalBytes: 1 << 22 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'zip-corruption-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Written {
  name: string;
  text: string;
  compress: boolean;
}

/** The archive yazl writes of these entries (and a folder), as bytes; zip64: its zip64 extra fields and end records, whatever the sizes. */
async function archiveOf(entries: Written[], folder: boolean, zip64 = false): Promise<Buffer> {
  const zip = new ZipFile();
  if (folder) zip.addEmptyDirectory('data/');
  for (const e of entries) zip.addBuffer(Buffer.from(e.text), e.name, { compress: e.compress, mtime: new Date(Date.UTC(2026, 0, 1)), forceZip64Format: zip64 });
  zip.end({ forceZip64Format: zip64, comment: '' });
  const parts: Buffer[] = [];
  for await (const part of zip.outputStream as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

/** The user entries read from an archive file, each as its format and bytes, or 'failed'. */
async function readEntries(bytes: Buffer, file: string): Promise<{ format: string; text: string }[] | 'failed'> {
  await writeFile(file, bytes);
  let archive: ZipArchive | undefined;
  try {
    archive = await ZipArchive.open(file, LIMITS);
    const out: { format: string; text: string }[] = [];
    for (const entry of await archive.userEntries()) {
      const parts: Buffer[] = [];
      for await (const chunk of archive.bytes(entry)) parts.push(chunk);
      out.push({ format: entry.format, text: Buffer.concat(parts).toString() });
    }
    return out;
  } catch {
    return 'failed';
  } finally {
    archive?.close();
  }
}

const entryName = fc.tuple(
  fc.constantFrom('', 'data/', 'export/a/'),
  fc.constantFrom('users', 'u', 'part-2'),
  fc.constantFrom('.json', '.jsonl', '.ndjson', '.csv', '.JSON'),
);
const entries = fc.uniqueArray(
  fc.record({
    name: entryName.map((parts) => parts.join('')),
    text: fc.string({ unit: fc.constantFrom('{', '}', '"', 'a', 'b', ',', '\n', '1', 'é', ' '), minLength: 1, maxLength: 200 }),
    compress: fc.boolean(),
  }),
  { minLength: 1, maxLength: 3, selector: (e) => e.name },
);
/**
 * Where a byte is damaged: anywhere, or (as often) in an entry's name, in its local header or in
 * the central directory, where one byte can turn a user entry into another kind of entry.
 */
const damage = fc.record({ inName: fc.boolean(), at: fc.nat(), xor: fc.oneof(fc.integer({ min: 1, max: 255 }), fc.constant(0x41)) });

/** The positions of every byte of every entry name in the archive. */
function nameBytes(archive: Buffer, written: Written[]): number[] {
  const positions: number[] = [];
  for (const { name } of written) {
    const bytes = Buffer.from(name);
    for (let at = archive.indexOf(bytes); at >= 0; at = archive.indexOf(bytes, at + 1)) for (let i = 0; i < bytes.length; i++) positions.push(at + i);
  }
  return positions;
}

const formatOf = (name: string) => ({ json: 'json', jsonl: 'jsonl', ndjson: 'jsonl', csv: 'csv' })[name.slice(name.lastIndexOf('.') + 1).toLowerCase()];

describe('a zip export with one byte damaged', () => {
  it(
    'fails to read, or reads exactly the user entries written',
    async () => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(entries, fc.boolean(), damage, async (written, folder, { inName, at, xor }) => {
          const archive = await archiveOf(written, folder);
          const expected = written.map((e) => ({ format: formatOf(e.name), text: e.text }));
          const file = join(dir, `case-${n++}.zip`);
          expect(await readEntries(archive, file)).toEqual(expected);
          const damaged = Buffer.from(archive);
          const position = inName ? nameBytes(archive, written)[at % nameBytes(archive, written).length]! : at % damaged.length;
          damaged[position]! ^= xor;
          const read = await readEntries(damaged, file);
          if (read !== 'failed') expect(read, `byte ${position} of ${damaged.length} xor ${xor}`).toEqual(expected);
          await rm(file, { force: true });
        }),
        runs(300, propertyTimeout(60_000)),
      );
    },
    propertyTimeout(60_000),
  );

  it('an end record counting one entry fewer than the central directory holds is refused, not read short (found by a soak)', async () => {
    const written = [
      { name: 'users.jsonl', text: '{{{{"{', compress: true },
      { name: 'part-2.json', text: '{é{é{{{é{{{', compress: false },
    ];
    const archive = await archiveOf(written, false);
    const file = join(dir, 'short-count.zip');
    expect(await readEntries(archive, file)).toEqual([
      { format: 'jsonl', text: '{{{{"{' },
      { format: 'json', text: '{é{é{{{é{{{' },
    ]);
    // The end of central directory record (no comment: the last 22 bytes); its total entry count is at offset 10.
    const eocd = archive.length - 22;
    expect(archive.readUInt32LE(eocd)).toBe(0x06054b50);
    const damaged = Buffer.from(archive);
    damaged.writeUInt16LE(1, eocd + 10);
    expect(await readEntries(damaged, file)).toBe('failed');
    await rm(file, { force: true });
  });

  it.each([
    ['a plain archive', false],
    ['a zip64 archive (the count in its zip64 end record)', true],
  ])('%s: a count one short and the record after it damaged too is refused, naming where the directory ends', async (_, zip64) => {
    const written = [
      { name: 'users.jsonl', text: '{"a":1}', compress: false },
      { name: 'part-2.json', text: '{"b":2}', compress: true },
    ];
    const archive = await archiveOf(written, false, zip64);
    const file = join(dir, `short-count-and-signature-${zip64}.zip`);
    expect(await readEntries(archive, file)).toEqual([
      { format: 'jsonl', text: '{"a":1}' },
      { format: 'json', text: '{"b":2}' },
    ]);
    const damaged = Buffer.from(archive);
    // The count yauzl reads: the end record's (offset 10), or the zip64 end record's (offset 32).
    if (zip64) damaged.writeUInt32LE(1, damaged.indexOf(ZIP64_END_RECORD) + 32);
    else damaged.writeUInt16LE(1, damaged.length - 22 + 10);
    // The second central directory record no longer starts with its signature: the check that
    // looked for another record after the count found none, and part-2.json went unread.
    const second = damaged.indexOf(CENTRAL_RECORD, damaged.indexOf(CENTRAL_RECORD) + 4);
    damaged[second + 3]! ^= 0x40;
    await writeFile(file, damaged);
    const archiveRead = await ZipArchive.open(file, LIMITS);
    try {
      await expect(archiveRead.userEntries()).rejects.toThrow(
        new RegExp(`^the archive's central directory ends at byte ${second}, not at byte \\d+ where its end records begin`),
      );
    } finally {
      archiveRead.close();
    }
    await rm(file, { force: true });
  });
});
