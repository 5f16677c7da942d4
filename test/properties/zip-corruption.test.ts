import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deflateRawSync } from 'node:zlib';
import { ArchiveError, ZipArchive } from '../../src/cpq/zip-archive.js';
import { directoryLayout, zipOf, type DirectoryLayout } from '../helpers/zip-bytes.js';
import { WRITERS, archiveOf, damagedBy, manyBytes, nameBytes, writtenBy } from '../helpers/zip-damage.js';
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

/** The user entries read from an archive file, each as its format and bytes, or 'failed'. */
async function readEntries(bytes: Buffer, file: string, refusals?: string[]): Promise<{ format: string; text: string }[] | 'failed'> {
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
  } catch (err) {
    refusals?.push(err instanceof ArchiveError ? err.message : `not an ArchiveError: ${String(err)}`);
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

describe('a zip64 archive whose offsets are damaged past 2^53', () => {
  /*
   * A zip64 offset is 8 bytes: one damaged high byte points past 2^53, where Node's fs.read throws
   * instead of calling back. Thrown inside yauzl's callbacks, it escaped as an uncaught exception
   * and the read never settled (a soak of the property below hung on it). Each is refused, naming
   * the offset.
   */
  it.each([
    ['the zip64 locator (where the zip64 end record lies)', (layout: DirectoryLayout, archive: Buffer) => archive.length - 22 - 20 + 8 + 7],
    ['the zip64 end record (where the central directory starts)', (layout: DirectoryLayout) => layout.endRecords + 48 + 7],
    [
      "an entry's zip64 extra field (where its local header lies)",
      (layout: DirectoryLayout, archive: Buffer) => layout.records[0]!.start + 46 + archive.readUInt16LE(layout.records[0]!.start + 28) + 4 + 16 + 7,
    ],
  ])(
    '%s',
    async (_, position) => {
      const archive = zipOf([{ name: 'users.jsonl', data: Buffer.from('{"a":1}') }], (data) => deflateRawSync(data), { zip64: true });
      const file = join(dir, 'offset-past-2-53.zip');
      expect(await readEntries(archive, file)).toEqual([{ format: 'jsonl', text: '{"a":1}' }]);
      const damaged = Buffer.from(archive);
      damaged[position(directoryLayout(archive), archive)]! ^= 0x20;
      const refusals: string[] = [];
      expect(await readEntries(damaged, file, refusals)).toBe('failed');
      expect(refusals).toEqual([expect.stringMatching(/^[^\n]*byte \d{16,}[^\n]*$/)]);
      await rm(file, { force: true });
    },
    20_000,
  );
});

describe('an entry whose central directory record says less than its local bytes hold', () => {
  /*
   * A run of zero bytes over a central record's CRC and sizes (a soak found it): a stored entry
   * then reads as empty (the CRC-32 of nothing is 0) and its users would be taken for deleted.
   * Its bytes no longer reach the next entry: refused, naming the entry and both offsets.
   */
  it.each([
    ['stored, by hand', 'by hand'],
    ['stored, by hand, zip64', 'by hand zip64'],
    ['stored, with a data descriptor (streaming)', 'streaming'],
  ] as const)('%s', async (_, writer) => {
    const written = [
      { name: 'users.jsonl', text: '{"a":1}', compress: false },
      { name: 'more.jsonl', text: '{"b":2}', compress: false },
    ];
    const archive = await writtenBy(writer, written, false);
    const file = join(dir, 'zeroed-sizes.zip');
    expect(await readEntries(archive, file)).toEqual([
      { format: 'jsonl', text: '{"a":1}' },
      { format: 'jsonl', text: '{"b":2}' },
    ]);
    const damaged = Buffer.from(archive);
    const first = directoryLayout(archive).records[0]!.start;
    damaged.fill(0, first + 16, first + 28); // CRC-32, compressed and uncompressed size
    // zip64: the sizes in the zip64 extra field too.
    if (writer.includes('zip64')) damaged.fill(0, first + 46 + 'users.jsonl'.length + 4, first + 46 + 'users.jsonl'.length + 4 + 16);
    const refusals: string[] = [];
    expect(await readEntries(damaged, file, refusals)).toBe('failed');
    expect(refusals).toEqual([expect.stringMatching(/^entry "users.jsonl" ends at byte \d+, but /)]);
    await rm(file, { force: true });
  });
});

/*
 * Damage of more than one byte, to archives of any of the writers: bytes anywhere, in names or in
 * the headers and records (where a second byte can hide the first: a count one short and the next
 * record's signature), a run of bytes overwritten, the archive cut short at any point, and central
 * directory records copied or swapped (the end records kept, or made to agree). The same holds:
 * reading fails with one line, or gives exactly the user entries written. A swap makes another
 * honest archive of the same entries, listed in another order.
 */

const sorted = (entries: { format: string | undefined; text: string }[]) =>
  [...entries].sort((a, b) => (`${a.format ?? ''}\u0000${a.text}` < `${b.format ?? ''}\u0000${b.text}` ? -1 : 1));

/** `settings` with a bound on each case: one that never settles (a read that hung) fails with its seed. */
const withCaseTimeout = (settings: fc.Parameters<unknown>, ms: number): fc.Parameters<unknown> => ({
  ...settings,
  plugins: [...(settings.plugins ?? []), fc.timeout(ms)],
});

describe('a zip export of any writer, zip64 or not, with many bytes damaged', () => {
  it(
    'reads, undamaged, as written; damaged, fails with one line or reads exactly the user entries written',
    async () => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(entries, fc.boolean(), fc.constantFrom(...WRITERS), manyBytes, async (written, folder, writer, damage) => {
          const archive = await writtenBy(writer, written, folder);
          const expected = written.map((e) => ({ format: formatOf(e.name), text: e.text }));
          const file = join(dir, `many-${n++}.zip`);
          // A zip64 archive reads as the same content in a plain one: the entries written, in order.
          expect(await readEntries(archive, file)).toEqual(expected);
          const { damaged, reordered } = damagedBy(archive, written, damage);
          const refusals: string[] = [];
          const read = await readEntries(damaged, file, refusals);
          if (read === 'failed') {
            expect(refusals[0]).toMatch(/^[^\n]+$/);
            expect(refusals[0]).toMatch(/(entry|entries|named) "|byte \d/);
          } else if (reordered) {
            expect(sorted(read)).toEqual(sorted(expected));
          } else {
            expect(read).toEqual(expected);
          }
          await rm(file, { force: true });
        }),
        // A case that never settles (a read that hung) fails with its seed, not the test timeout.
        withCaseTimeout(runs(300, propertyTimeout(90_000)), 10_000),
      );
    },
    propertyTimeout(90_000),
  );
});

describe("yauzl's refusals name where in the archive they happened", () => {
  /*
   * yauzl's own messages name no entry and no offset ("invalid central directory file header
   * signature: 0x2014b51"): a run failed on one said nothing of where to look. Each is one line
   * naming the record yauzl was reading (by its byte, and the entry by name where known).
   */
  const two = () =>
    zipOf(
      [
        { name: 'users.jsonl', data: Buffer.from('{"a":1}') },
        { name: 'more.jsonl', data: Buffer.from('{"b":2}'), deflate: true },
      ],
      (data) => deflateRawSync(data),
    );
  const zip64 = () => zipOf([{ name: 'users.jsonl', data: Buffer.from('{"a":1}') }], (data) => deflateRawSync(data), { zip64: true });
  const named = (name: string) => zipOf([{ name, data: Buffer.from('{"a":1}') }], (data) => deflateRawSync(data));
  const cases: [string, () => Buffer, (archive: Buffer) => RegExp][] = [
    [
      "a central directory record's signature",
      () => {
        const archive = two();
        archive[directoryLayout(archive).records[1]!.start]! ^= 0x01;
        return archive;
      },
      () =>
        new RegExp(
          `^the archive is corrupt \\(invalid central directory file header signature: 0x2014b51\\), reading the central directory record at byte ${directoryLayout(two()).records[1]!.start} \\(entry 2 of 2\\)$`,
        ),
    ],
    [
      "a stored entry's sizes that disagree in its central directory record",
      () => {
        const archive = two();
        archive.writeUInt32LE(3, directoryLayout(archive).records[0]!.start + 20);
        return archive;
      },
      () =>
        /^the archive is corrupt \(compressed\/uncompressed size mismatch for stored file: 3 != 7\), reading the central directory record at byte \d+ \(entry 1 of 2\)$/,
    ],
    [
      "a local header's signature",
      () => {
        const archive = two();
        archive[archive.indexOf('PK\u0003\u0004', 1)]! ^= 0x01;
        return archive;
      },
      () =>
        new RegExp(
          `^the archive is corrupt \\(invalid local file header signature: 0x4034b51\\), reading the local header of entry "more.jsonl" at byte ${two().indexOf('PK\u0003\u0004', 1)}$`,
        ),
    ],
    [
      "the zip64 end record's signature",
      () => {
        const archive = zip64();
        archive[directoryLayout(archive).endRecords]! ^= 0x01;
        return archive;
      },
      (archive) =>
        new RegExp(
          `^the archive is corrupt \\(invalid zip64 end of central directory record signature\\), reading its end record at byte ${archive.length - 22} and the zip64 end record it points to, at byte ${directoryLayout(zip64()).endRecords}$`,
        ),
    ],
    [
      'bytes after the end record (its comment length disagrees)',
      () => Buffer.concat([two(), Buffer.from('junk')]),
      (archive) =>
        new RegExp(
          `^the archive is corrupt \\(Invalid comment length\\. Expected: 4\\. Found: 0\\..*\\), reading its end record at byte ${archive.length - 26}$`,
        ),
    ],
    [
      'an end record on another disk',
      () => {
        const archive = two();
        archive.writeUInt16LE(1, archive.length - 22 + 4);
        return archive;
      },
      (archive) =>
        new RegExp(
          `^the archive is corrupt \\(multi-disk zip files are not supported: found disk number: 1\\), reading its end record at byte ${archive.length - 22}$`,
        ),
    ],
    [
      'an archive cut before its end record',
      () => two().subarray(0, 40),
      () => /^the archive is truncated or not a zip \(no end of central directory record in its last 40 bytes, from byte 0\)$/,
    ],
    [
      'an entry name climbing out of its folder',
      () => named('../users.json'),
      () => /^entry "\.\.\/users\.json" has an unsafe name \(invalid relative path\), reading the central directory record at byte \d+ \(entry 1 of 1\)$/,
    ],
    [
      'an absolute entry name holding a line break',
      () => named('/etc/a\nb.json'),
      () => /^entry "\/etc\/a\\nb\.json" has an unsafe name \(absolute path\), reading the central directory record at byte \d+ \(entry 1 of 1\)$/,
    ],
  ];
  it.each(cases)('%s', async (_, damaged, message) => {
    const archive = damaged();
    const refusals: string[] = [];
    expect(await readEntries(archive, join(dir, 'where.zip'), refusals)).toBe('failed');
    expect(refusals).toEqual([expect.stringMatching(message(archive))]);
    await rm(join(dir, 'where.zip'), { force: true });
  });
});
