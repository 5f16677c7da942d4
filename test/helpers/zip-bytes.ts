import { crc32 } from 'node:zlib';

/*
 * Zip archives in memory, byte by byte (local headers, central directory, end record; no zip64):
 * honest ones for hand-made exports (zipOf), and the parts to build dishonest ones with (entries
 * that overlap, an entry holding another) for the archive checks.
 */

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
export function localEntry(name: string, method: number, crc: number, packed: Buffer, size: number): Buffer {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(20, 4); // version needed
  header.writeUInt16LE(0x0800, 6); // UTF-8 names
  header.writeUInt16LE(method, 8);
  header.writeUInt32LE(crc, 14);
  header.writeUInt32LE(packed.length, 18);
  header.writeUInt32LE(size, 22);
  header.writeUInt16LE(Buffer.byteLength(name), 26);
  return Buffer.concat([header, Buffer.from(name, 'utf8'), packed]);
}

/** `body` (the local headers and data), then the central directory of `entries` and the end record. */
export function withDirectory(body: Buffer, entries: CentralEntry[]): Buffer {
  const centrals = entries.map((e) => {
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(e.method, 10);
    central.writeUInt32LE(e.crc, 16);
    central.writeUInt32LE(e.compressedSize, 20);
    central.writeUInt32LE(e.size, 24);
    central.writeUInt16LE(Buffer.byteLength(e.name), 28);
    central.writeUInt16LE(e.extra?.length ?? 0, 30);
    central.writeUInt32LE(e.offset, 42);
    return Buffer.concat([central, Buffer.from(e.name, 'utf8'), e.extra ?? Buffer.alloc(0)]);
  });
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(body.length, 16);
  return Buffer.concat([body, directory, end]);
}

/**
 * A minimal zip archive of `entries`, one after another, for hand-made exports in the bad-input
 * corpus. Entries are stored, or deflated with `deflateRaw`.
 */
export function zipOf(entries: { name: string; data: Buffer; deflate?: boolean }[], deflateRaw: (data: Buffer) => Buffer): Buffer {
  const locals: Buffer[] = [];
  const central: CentralEntry[] = [];
  let offset = 0;
  for (const entry of entries) {
    const packed = entry.deflate ? deflateRaw(entry.data) : entry.data;
    const method = entry.deflate ? 8 : 0;
    const crc = crc32(entry.data);
    const local = localEntry(entry.name, method, crc, packed, entry.data.length);
    central.push({ name: entry.name, offset, method, crc, compressedSize: packed.length, size: entry.data.length });
    locals.push(local);
    offset += local.length;
  }
  return withDirectory(Buffer.concat(locals), central);
}
