import { crc32 } from 'node:zlib';

/*
 * Zip archives in memory, byte by byte (local headers, central directory, end record; zip64 on
 * request): honest ones for hand-made exports (zipOf), and the parts to build dishonest ones with
 * (entries that overlap, an entry holding another, central directory records copied or swapped)
 * for the archive checks.
 */

const MAX16 = 0xffff;
const MAX32 = 0xffffffff;

/**
 * zip64 structures whatever the sizes: sizes and offsets in zip64 extra fields (0xffffffff in
 * their own fields), and the zip64 end record and locator before the end record. The end record
 * says 0xffff and 0xffffffff too, or (trueEndRecord) the counts, size and offset that fit it, as
 * some writers leave them.
 */
export interface Zip64Options {
  zip64?: boolean;
  trueEndRecord?: boolean;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** A zip64 extended information extra field (id 1) of these values. */
function zip64Extra(...values: number[]): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(0x0001, 0);
  head.writeUInt16LE(values.length * 8, 2);
  return Buffer.concat([head, ...values.map(u64)]);
}

/** An entry as the central directory describes it: where its local header starts, how it is packed. */
export interface CentralEntry {
  name: string;
  offset: number;
  /** 0 stored, 8 deflated. */
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** The central directory record's extra field (none when left out). */
  extra?: Buffer;
}

/** A local file header followed by its data (`packed`), as a zip writer emits it. */
export function localEntry(name: string, method: number, crc: number, packed: Buffer, size: number, zip64 = false): Buffer {
  const extra = zip64 ? zip64Extra(size, packed.length) : Buffer.alloc(0);
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(zip64 ? 45 : 20, 4); // version needed
  header.writeUInt16LE(0x0800, 6); // UTF-8 names
  header.writeUInt16LE(method, 8);
  header.writeUInt32LE(crc, 14);
  header.writeUInt32LE(zip64 ? MAX32 : packed.length, 18);
  header.writeUInt32LE(zip64 ? MAX32 : size, 22);
  header.writeUInt16LE(Buffer.byteLength(name), 26);
  header.writeUInt16LE(extra.length, 28);
  return Buffer.concat([header, Buffer.from(name, 'utf8'), extra, packed]);
}

/** `body` (the local headers and data), then the central directory of `entries` and the end record. */
export function withDirectory(body: Buffer, entries: CentralEntry[], options: Zip64Options = {}): Buffer {
  const zip64 = options.zip64 === true;
  const centrals = entries.map((e) => {
    const extra = Buffer.concat([zip64 ? zip64Extra(e.size, e.compressedSize, e.offset) : Buffer.alloc(0), e.extra ?? Buffer.alloc(0)]);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(zip64 ? 45 : 20, 4);
    central.writeUInt16LE(zip64 ? 45 : 20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(e.method, 10);
    central.writeUInt32LE(e.crc, 16);
    central.writeUInt32LE(zip64 ? MAX32 : e.compressedSize, 20);
    central.writeUInt32LE(zip64 ? MAX32 : e.size, 24);
    central.writeUInt16LE(Buffer.byteLength(e.name), 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(zip64 ? MAX32 : e.offset, 42);
    return Buffer.concat([central, Buffer.from(e.name, 'utf8'), extra]);
  });
  const directory = Buffer.concat(centrals);
  const zip64End: Buffer[] = [];
  if (zip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4); // the record's size after this field
    record.writeUInt16LE(45, 12);
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(entries.length), 24);
    record.writeBigUInt64LE(BigInt(entries.length), 32);
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(body.length), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(body.length + directory.length), 8);
    locator.writeUInt32LE(1, 16);
    zip64End.push(record, locator);
  }
  const marked = zip64 && options.trueEndRecord !== true;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(marked ? MAX16 : entries.length, 8);
  end.writeUInt16LE(marked ? MAX16 : entries.length, 10);
  end.writeUInt32LE(marked ? MAX32 : directory.length, 12);
  end.writeUInt32LE(marked ? MAX32 : body.length, 16);
  return Buffer.concat([body, directory, ...zip64End, end]);
}

/**
 * A minimal zip archive of `entries`, one after another, for hand-made exports in the bad-input
 * corpus. Entries are stored, or deflated with `deflateRaw`.
 */
export function zipOf(entries: { name: string; data: Buffer; deflate?: boolean }[], deflateRaw: (data: Buffer) => Buffer, options: Zip64Options = {}): Buffer {
  const locals: Buffer[] = [];
  const central: CentralEntry[] = [];
  let offset = 0;
  for (const entry of entries) {
    const packed = entry.deflate ? deflateRaw(entry.data) : entry.data;
    const method = entry.deflate ? 8 : 0;
    const crc = crc32(entry.data);
    const local = localEntry(entry.name, method, crc, packed, entry.data.length, options.zip64);
    central.push({ name: entry.name, offset, method, crc, compressedSize: packed.length, size: entry.data.length });
    locals.push(local);
    offset += local.length;
  }
  return withDirectory(Buffer.concat(locals), central, options);
}

/**
 * Where an archive without a comment keeps its central directory: each record's bytes, and
 * where the end records begin (the zip64 end record when a zip64 locator precedes the end record).
 */
export interface DirectoryLayout {
  records: { start: number; end: number }[];
  directoryStart: number;
  endRecords: number;
  zip64: boolean;
}

export function directoryLayout(archive: Buffer): DirectoryLayout {
  const end = archive.length - 22;
  if (archive.readUInt32LE(end) !== 0x06054b50) throw new Error('no end record in the last 22 bytes');
  const zip64 = end >= 20 && archive.readUInt32LE(end - 20) === 0x07064b50;
  const endRecords = zip64 ? Number(archive.readBigUInt64LE(end - 20 + 8)) : end;
  const directoryStart = zip64 ? Number(archive.readBigUInt64LE(endRecords + 48)) : archive.readUInt32LE(end + 16);
  const records: { start: number; end: number }[] = [];
  for (let at = directoryStart; at < endRecords;) {
    const length = 46 + archive.readUInt16LE(at + 28) + archive.readUInt16LE(at + 30) + archive.readUInt16LE(at + 32);
    records.push({ start: at, end: at + length });
    at += length;
  }
  return { records, directoryStart, endRecords, zip64 };
}

/**
 * The archive with its central directory records replaced by `records` (copies, swaps). With
 * `consistent`, the end records count them and say the directory's new size (where the end record
 * of a zip64 archive gives more than 0xffff/0xffffffff), and the zip64 locator points to the zip64
 * end record where it now lies: the archive is then well formed, if it names an entry twice.
 */
export function withDirectoryRecords(archive: Buffer, layout: DirectoryLayout, records: Buffer[], consistent: boolean): Buffer {
  const directory = Buffer.concat(records);
  const tail = Buffer.from(archive.subarray(layout.endRecords));
  if (consistent) {
    const end = tail.length - 22;
    if (layout.zip64) {
      tail.writeBigUInt64LE(BigInt(records.length), 24);
      tail.writeBigUInt64LE(BigInt(records.length), 32);
      tail.writeBigUInt64LE(BigInt(directory.length), 40);
      tail.writeBigUInt64LE(BigInt(layout.directoryStart + directory.length), end - 20 + 8);
    }
    if (tail.readUInt16LE(end + 10) !== MAX16) {
      tail.writeUInt16LE(records.length, end + 8);
      tail.writeUInt16LE(records.length, end + 10);
    }
    if (tail.readUInt32LE(end + 12) !== MAX32) tail.writeUInt32LE(directory.length, end + 12);
  }
  return Buffer.concat([archive.subarray(0, layout.directoryStart), directory, tail]);
}
