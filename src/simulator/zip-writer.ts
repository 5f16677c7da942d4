import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

/*
 * A small streaming zip writer for the simulator's export. Entry content is produced while the
 * archive is sent, so every file entry uses a data descriptor (CRC and sizes after the data), as
 * streaming writers do. It can write zip64 structures on request, and can break its own output
 * in the ways tests need (wrong CRC, encrypted flag, understated size, unsupported method,
 * corrupt deflate data, a cut-off end), which no well-behaved library would do.
 */

export interface ZipEntryDamage {
  /** XORed into the CRC-32 written for the entry. */
  crcXor?: number;
  /** Sets the "encrypted" flag (the data is not really encrypted). */
  encryptedFlag?: boolean;
  /** The uncompressed size written, given the real one. */
  declaredSize?: (actual: number) => number;
  /** The compression method code written (the data stays as `compression` made it). */
  methodCode?: number;
  /** Puts an invalid deflate block before the data (deflate entries only). */
  corruptDeflate?: boolean;
  /** The name written in the central directory, given the real one (the local header keeps the real one). */
  directoryName?: (name: string) => string;
}

export interface ZipWriterEntry {
  /** Folders end with `/` and have no content. */
  name: string;
  content?: () => AsyncIterable<string | Buffer> | Iterable<string | Buffer>;
  compression?: 'deflate' | 'store';
  damage?: ZipEntryDamage;
}

export interface ZipWriterOptions {
  /** zip64 extra fields on every entry and the zip64 end records, whatever the sizes. */
  zip64?: boolean;
  /** Leaves out the last bytes of the archive (a transfer cut short). */
  dropLastBytes?: number;
}

const DOS_TIME = (0 << 11) | (0 << 5) | 0;
const DOS_DATE = ((2025 - 1980) << 9) | (10 << 5) | 15;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;
const METHOD_STORE = 0;
const METHOD_DEFLATE = 8;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;

class Bytes {
  private readonly parts: Buffer[] = [];
  u16(v: number) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(v: number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  raw(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

interface Written {
  /** As the central directory names the entry. */
  name: Buffer;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  uncompressedSize: number;
  offset: number;
  folder: boolean;
}

async function* measured(content: AsyncIterable<string | Buffer> | Iterable<string | Buffer>, m: { crc: number; size: number }): AsyncGenerator<Buffer> {
  for await (const piece of content) {
    const bytes = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
    if (bytes.length === 0) continue;
    m.crc = zlib.crc32(bytes, m.crc);
    m.size += bytes.length;
    yield bytes;
  }
}

async function* deflated(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const deflate = zlib.createDeflateRaw();
  const pumped = pipeline(Readable.from(source), deflate);
  pumped.catch(() => undefined); // reported through the loop below
  for await (const chunk of deflate as AsyncIterable<Buffer>) yield chunk;
  await pumped;
}

/** The archive's bytes, produced as the entries' content is read. */
async function* zipBytes(entries: Iterable<ZipWriterEntry>, options: ZipWriterOptions): AsyncGenerator<Buffer> {
  const zip64 = options.zip64 === true;
  const written: Written[] = [];
  let offset = 0;
  const emit = (b: Buffer) => {
    offset += b.length;
    return b;
  };

  for (const entry of entries) {
    const folder = entry.name.endsWith('/');
    const damage = entry.damage ?? {};
    const name = Buffer.from(entry.name, 'utf8');
    const deflate = !folder && entry.compression !== 'store';
    const method = damage.methodCode ?? (deflate ? METHOD_DEFLATE : METHOD_STORE);
    let flags = FLAG_UTF8;
    if (!folder) flags |= FLAG_DATA_DESCRIPTOR;
    if (damage.encryptedFlag) flags |= FLAG_ENCRYPTED;
    const start = offset;
    const localExtra = zip64 ? new Bytes().u16(0x0001).u16(16).u64(0).u64(0).done() : Buffer.alloc(0);
    yield emit(
      new Bytes()
        .u32(0x04034b50)
        .u16(zip64 ? 45 : 20)
        .u16(flags)
        .u16(method)
        .u16(DOS_TIME)
        .u16(DOS_DATE)
        .u32(0)
        .u32(zip64 ? MAX32 : 0)
        .u32(zip64 ? MAX32 : 0)
        .u16(name.length)
        .u16(localExtra.length)
        .raw(name)
        .raw(localExtra)
        .done(),
    );
    const m = { crc: 0, size: 0 };
    let compressedSize = 0;
    if (!folder) {
      const data = measured(entry.content?.() ?? [], m);
      if (deflate && damage.corruptDeflate) {
        const junk = Buffer.from([0xff, 0xff, 0xff, 0xff]);
        compressedSize += junk.length;
        yield emit(junk);
      }
      for await (const chunk of deflate ? deflated(data) : data) {
        compressedSize += chunk.length;
        yield emit(chunk);
      }
    }
    const crc = (m.crc ^ (damage.crcXor ?? 0)) >>> 0;
    const uncompressedSize = damage.declaredSize ? damage.declaredSize(m.size) : m.size;
    if (!folder) {
      const descriptor = new Bytes().u32(0x08074b50).u32(crc);
      if (zip64) descriptor.u64(compressedSize).u64(uncompressedSize);
      else descriptor.u32(compressedSize).u32(uncompressedSize);
      yield emit(descriptor.done());
    }
    const directoryName = damage.directoryName ? Buffer.from(damage.directoryName(entry.name), 'utf8') : name;
    written.push({ name: directoryName, flags, method, crc, compressedSize, uncompressedSize, offset: start, folder });
  }

  const directoryStart = offset;
  for (const w of written) {
    const extra = zip64 ? new Bytes().u16(0x0001).u16(24).u64(w.uncompressedSize).u64(w.compressedSize).u64(w.offset).done() : Buffer.alloc(0);
    const unixMode = w.folder ? 0o040755 : 0o100644;
    yield emit(
      new Bytes()
        .u32(0x02014b50)
        .u16((3 << 8) | (zip64 ? 45 : 20))
        .u16(zip64 ? 45 : 20)
        .u16(w.flags)
        .u16(w.method)
        .u16(DOS_TIME)
        .u16(DOS_DATE)
        .u32(w.crc)
        .u32(zip64 ? MAX32 : w.compressedSize)
        .u32(zip64 ? MAX32 : w.uncompressedSize)
        .u16(w.name.length)
        .u16(extra.length)
        .u16(0)
        .u16(0)
        .u16(0)
        .u32(((unixMode << 16) | (w.folder ? 0x10 : 0)) >>> 0)
        .u32(zip64 ? MAX32 : w.offset)
        .raw(w.name)
        .raw(extra)
        .done(),
    );
  }
  const directorySize = offset - directoryStart;
  if (zip64) {
    const recordStart = offset;
    yield emit(
      new Bytes()
        .u32(0x06064b50)
        .u64(44)
        .u16((3 << 8) | 45)
        .u16(45)
        .u32(0)
        .u32(0)
        .u64(written.length)
        .u64(written.length)
        .u64(directorySize)
        .u64(directoryStart)
        .done(),
    );
    yield emit(new Bytes().u32(0x07064b50).u32(0).u64(recordStart).u32(1).done());
  }
  yield emit(
    new Bytes()
      .u32(0x06054b50)
      .u16(0)
      .u16(0)
      .u16(zip64 ? MAX16 : Math.min(written.length, MAX16))
      .u16(zip64 ? MAX16 : Math.min(written.length, MAX16))
      .u32(zip64 ? MAX32 : directorySize)
      .u32(zip64 ? MAX32 : directoryStart)
      .u16(0)
      .done(),
  );
}

/** Holds back the last `count` bytes of a byte stream and never sends them. */
async function* withoutLastBytes(source: AsyncIterable<Buffer>, count: number): AsyncGenerator<Buffer> {
  let held = Buffer.alloc(0);
  for await (const chunk of source) {
    held = Buffer.concat([held, chunk]);
    if (held.length > count) {
      yield held.subarray(0, held.length - count);
      held = held.subarray(held.length - count);
    }
  }
}

/** A zip archive as a byte stream, built while it is read. */
export function zipStream(entries: Iterable<ZipWriterEntry>, options: ZipWriterOptions = {}): Readable {
  const bytes = zipBytes(entries, options);
  return Readable.from(options.dropLastBytes ? withoutLastBytes(bytes, options.dropLastBytes) : bytes, { objectMode: false });
}
