import fc from 'fast-check';
import { deflateRawSync } from 'node:zlib';
import { ZipFile } from 'yazl';
import { zipStream } from '../../src/simulator/zip-writer.js';
import { directoryLayout, withDirectoryRecords, zipOf } from './zip-bytes.js';

/*
 * Zip archives of the same entries by several writers, and the ways a download of one can come
 * damaged: bytes anywhere, in names or in headers, a run of bytes overwritten, the archive cut
 * short, central directory records copied or swapped, letters of stored data changed. The reader's property
 * (test/properties/zip-corruption.test.ts) and the database's (zip-refused-run.test.ts) share them.
 */

export interface Written {
  name: string;
  text: string;
  compress: boolean;
}

/** The archive yazl writes of these entries (and a folder), as bytes; zip64: its zip64 extra fields and end records, whatever the sizes. */
export async function archiveOf(entries: Written[], folder: boolean, zip64 = false): Promise<Buffer> {
  const zip = new ZipFile();
  if (folder) zip.addEmptyDirectory('data/');
  for (const e of entries) zip.addBuffer(Buffer.from(e.text), e.name, { compress: e.compress, mtime: new Date(Date.UTC(2026, 0, 1)), forceZip64Format: zip64 });
  zip.end({ forceZip64Format: zip64, comment: '' });
  const parts: Buffer[] = [];
  for await (const part of zip.outputStream as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

/**
 * The writers of the property on many bytes: yazl, the simulator's streaming writer (data
 * descriptors), and zip-bytes (by hand); each also with zip64 extra fields and end records for a
 * small archive, as streaming writers emit them, and by hand with the end record keeping the true
 * counts beside the zip64 ones.
 */
export const WRITERS = ['yazl', 'yazl zip64', 'streaming', 'streaming zip64', 'by hand', 'by hand zip64', 'by hand zip64, true end record'] as const;
export type Writer = (typeof WRITERS)[number];

export async function writtenBy(writer: Writer, entries: Written[], folder: boolean): Promise<Buffer> {
  const zip64 = writer.includes('zip64');
  if (writer.startsWith('yazl')) return archiveOf(entries, folder, zip64);
  if (writer.startsWith('streaming')) {
    const parts: Buffer[] = [];
    const all = [
      ...(folder ? [{ name: 'data/' }] : []),
      ...entries.map((e) => ({ name: e.name, content: () => [Buffer.from(e.text)], compression: e.compress ? ('deflate' as const) : ('store' as const) })),
    ];
    for await (const part of zipStream(all, { zip64 }) as AsyncIterable<Buffer>) parts.push(part);
    return Buffer.concat(parts);
  }
  const all = [
    ...(folder ? [{ name: 'data/', data: Buffer.alloc(0) }] : []),
    ...entries.map((e) => ({ name: e.name, data: Buffer.from(e.text), deflate: e.compress })),
  ];
  return zipOf(all, (data) => deflateRawSync(data), { zip64, trueEndRecord: writer.endsWith('true end record') });
}

/** The positions of every byte of every entry name in the archive. */
export function nameBytes(archive: Buffer, written: Written[]): number[] {
  const positions: number[] = [];
  for (const { name } of written) {
    const bytes = Buffer.from(name);
    for (let at = archive.indexOf(bytes); at >= 0; at = archive.indexOf(bytes, at + 1)) for (let i = 0; i < bytes.length; i++) positions.push(at + i);
  }
  return positions;
}

export const hit = fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) });
/**
 * Damage of more than one byte: bytes anywhere, in names or in the headers and records (where a
 * second byte can hide the first: a count one short and the next record's signature), a run of
 * bytes overwritten, the archive cut short at any point, and central directory records copied or
 * swapped (the end records kept, or made to agree), or the end records counting fewer entries than
 * the directory holds (with a byte of the headers too: where a count one short hides the records
 * after it, the next one's signature damaged hid them from a check that looked for one more), or
 * letters of a stored entry's data changed to other letters (text as readable as before, which
 * only the entry's CRC-32 tells from what was written).
 */
export const manyBytes = fc.oneof(
  fc.record({
    kind: fc.constant('bytes' as const),
    where: fc.constantFrom('anywhere', 'names', 'headers'),
    hits: fc.array(hit, { minLength: 2, maxLength: 6 }),
  }),
  fc.record({
    kind: fc.constant('run' as const),
    at: fc.nat(),
    fill: fc.uint8Array({ minLength: 2, maxLength: 64 }),
    same: fc.option(fc.constantFrom(0, 0xff)),
  }),
  fc.record({ kind: fc.constant('cut' as const), keep: fc.nat() }),
  fc.record({
    kind: fc.constant('record' as const),
    op: fc.constantFrom('copy over another', 'copy added', 'swap'),
    i: fc.nat(),
    j: fc.nat(),
    consistent: fc.boolean(),
    hits: fc.array(hit, { maxLength: 2 }),
  }),
  fc.record({ kind: fc.constant('count' as const), fewer: fc.integer({ min: 1, max: 3 }), hits: fc.array(hit, { maxLength: 1 }) }),
  fc.record({
    kind: fc.constant('letters' as const),
    hits: fc.array(fc.record({ at: fc.nat(), shift: fc.integer({ min: 1, max: 25 }) }), { minLength: 1, maxLength: 3 }),
  }),
);
export type ManyBytes = typeof manyBytes extends fc.Arbitrary<infer T> ? T : never;

/** The positions of the fixed parts of every header and record (local, central, zip64 and end), found by signature. */
export function headerBytes(archive: Buffer): number[] {
  const positions: number[] = [];
  for (const [signature, length] of [
    [0x04034b50, 30],
    [0x02014b50, 46],
    [0x06064b50, 56],
    [0x07064b50, 20],
    [0x06054b50, 22],
  ] as const) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(signature);
    for (let at = archive.indexOf(bytes); at >= 0; at = archive.indexOf(bytes, at + 1))
      for (let i = 0; i < length && at + i < archive.length; i++) positions.push(at + i);
  }
  return positions;
}

/**
 * The positions of the ASCII letters of every stored (not deflated) entry's data: another letter
 * there leaves the text as readable as it was (JSON, CSV), so only the entry's CRC-32 tells.
 */
export function storedLetterBytes(archive: Buffer, written: Written[]): number[] {
  const positions: number[] = [];
  for (const e of written) {
    if (e.compress) continue;
    const bytes = Buffer.from(e.text);
    const at = archive.indexOf(bytes);
    if (at < 0 || bytes.length === 0) continue;
    for (let i = 0; i < bytes.length; i++) if (/[A-Za-z]/.test(String.fromCharCode(bytes[i]!))) positions.push(at + i);
  }
  return positions;
}

export function xorAt(archive: Buffer, positions: number[], hits: { at: number; xor: number }[]): Buffer {
  const damaged = Buffer.from(archive);
  for (const { at, xor } of hits) if (positions.length > 0) damaged[positions[at % positions.length]!]! ^= xor;
  return damaged;
}

export const everyByte = (archive: Buffer) => Array.from(archive.keys());

/** The archive as damaged, and whether the damage may only have reordered its entries. */
export function damagedBy(archive: Buffer, written: Written[], damage: ManyBytes): { damaged: Buffer; reordered: boolean } {
  switch (damage.kind) {
    case 'bytes': {
      const where = { anywhere: everyByte(archive), names: nameBytes(archive, written), headers: headerBytes(archive) }[damage.where];
      return { damaged: xorAt(archive, where, damage.hits), reordered: false };
    }
    case 'run': {
      const damaged = Buffer.from(archive);
      const at = damage.at % damaged.length;
      const fill = damage.same === null ? Buffer.from(damage.fill) : Buffer.alloc(damage.fill.length, damage.same);
      fill.copy(damaged, at, 0, Math.min(fill.length, damaged.length - at));
      return { damaged, reordered: false };
    }
    case 'cut':
      return { damaged: archive.subarray(0, damage.keep % archive.length), reordered: false };
    case 'record': {
      const layout = directoryLayout(archive);
      const records = layout.records.map((r) => archive.subarray(r.start, r.end));
      const i = damage.i % records.length;
      const j = damage.j % records.length;
      if (damage.op === 'copy over another') records[j] = records[i]!;
      else if (damage.op === 'copy added') records.splice(j, 0, records[i]!);
      else [records[i], records[j]] = [records[j]!, records[i]!];
      const damaged = withDirectoryRecords(archive, layout, records, damage.consistent);
      return { damaged: xorAt(damaged, everyByte(damaged), damage.hits), reordered: damage.op === 'swap' };
    }
    case 'count': {
      const layout = directoryLayout(archive);
      const count = Math.max(0, layout.records.length - damage.fewer);
      const damaged = Buffer.from(archive);
      // The counts a reader may take: the end record's (this disk's and the total), unless they say
      // to look in the zip64 end record, and the zip64 end record's.
      const end = damaged.length - 22;
      for (const at of [end + 8, end + 10]) if (damaged.readUInt16LE(at) !== 0xffff) damaged.writeUInt16LE(count, at);
      if (layout.zip64) for (const at of [layout.endRecords + 24, layout.endRecords + 32]) damaged.writeBigUInt64LE(BigInt(count), at);
      return { damaged: xorAt(damaged, headerBytes(damaged), damage.hits), reordered: false };
    }
    case 'letters': {
      const positions = storedLetterBytes(archive, written);
      const damaged = Buffer.from(archive);
      for (const { at, shift } of damage.hits) {
        if (positions.length === 0) break;
        const p = positions[at % positions.length]!;
        const base = damaged[p]! >= 0x61 ? 0x61 : 0x41;
        damaged[p] = base + ((damaged[p]! - base + shift) % 26);
      }
      return { damaged, reordered: false };
    }
  }
}
