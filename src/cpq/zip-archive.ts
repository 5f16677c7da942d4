import type yauzl from 'yauzl';
import { close, fstat, open as openFile, read } from 'node:fs';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { oneLine } from '../errors.js';
import { USER_ENTRY_EXTENSIONS, entryKind, quoteEntryName, type UserEntryFormat } from './zip-entry-kind.js';

/*
 * The downloaded export, read with yauzl from its central directory (at the end of the file,
 * which is why the download goes to a file first). Every entry is checked before any is read,
 * so a hostile archive is refused before a single record is loaded; what can only be seen while
 * reading (a bad CRC, corrupt compressed data, more data than declared) fails the read.
 */

/** The archive is broken or refused; the message names the entry and the problem. */
export class ArchiveError extends Error {
  override name = 'ArchiveError';
}

export interface ArchiveLimits {
  /** Largest uncompressed size of one entry (CPQ_ZIP_MAX_BYTES). */
  maxBytes: number;
  /** Most entries the archive may hold, folders included (CPQ_ZIP_MAX_ENTRIES). */
  maxEntries: number;
  /** Largest uncompressed/compressed ratio of an entry (CPQ_ZIP_MAX_RATIO). */
  maxRatio: number;
  /** Largest uncompressed size of all user entries together (CPQ_ZIP_MAX_TOTAL_BYTES). */
  maxTotalBytes: number;
}

/**
 * Entries smaller than this are not held to the ratio bound: a small, very repetitive entry is no
 * threat, and the size bounds cover it. Above it, CPQ data (text that compresses 5-20x) stays far
 * below any sensible ratio, while a zip bomb does not.
 */
const RATIO_CHECK_MIN_BYTES = 1024 * 1024;

export interface UserEntry {
  name: string;
  format: UserEntryFormat;
  uncompressedSize: number;
  compressedSize: number;
  entry: yauzl.Entry;
}

const DEFLATE = 8;
const STORED = 0;

/** Longest entry name accepted: an export names its entries like users-0001.csv; the format allows 65,535 bytes. */
const MAX_ENTRY_NAME_LENGTH = 1024;

/**
 * The entry without what yauzl parsed that this reader never uses: its extra fields (an object
 * and a Buffer view per field: the 64 KiB a central directory record may give them hold 16,383
 * empty ones, ~2.4 MB of heap), its comment (up to 64 KiB), and the raw views that keep the
 * record's bytes (up to 192 KiB) alive. A hostile archive of 1000 such entries held whole would
 * take gigabytes before any bound applied. openReadStream reads none of these (yauzl 3): it
 * reads sizes, offset, method and flags, and the local header from the file.
 */
function shed(entry: yauzl.Entry): yauzl.Entry {
  const parsed = entry as unknown as Record<string, unknown>;
  parsed.extraFields = [];
  parsed.comment = parsed.fileComment = '';
  parsed.fileNameRaw = parsed.extraFieldRaw = parsed.fileCommentRaw = undefined;
  return entry;
}

/** yauzl's reader of a local file header, which its type declarations leave out. */
type LocalHeaderReader = (entry: yauzl.Entry, options: { minimal: true }, callback: (err: Error | null, header?: { fileDataStart: number }) => void) => void;

/** yauzl's reader of the archive file and its cursor past the last central directory record read, which its type declarations leave out. */
type CursorReader = { read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null, bytesRead: number) => void): void };
const CENTRAL_DIRECTORY_RECORD = 0x02014b50;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const DATA_DESCRIPTOR = 0x08074b50;
/** How much of an entry's data one read of the file takes. */
const READ_CHUNK_BYTES = 64 * 1024;
const END_RECORD = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const END_RECORD_SIZE = 22;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_LOCATOR_SIZE = 20;

/** yauzl's messages, said in terms of what was wrong with the archive; `where` says where in it (yauzl's own messages name no entry or offset). */
function describeOpenError(err: Error, where: string): string {
  const message = oneLine(err.message);
  if (/end of central directory record signature not found/i.test(message))
    return `the archive is truncated or not a zip (no end of central directory record ${where})`;
  const unsafe = /^(invalid relative path|absolute path|invalid characters in fileName): (.*)$/is.exec(err.message);
  if (unsafe) return `entry ${quoteEntryName(unsafe[2]!)} has an unsafe name (${unsafe[1]!}), ${where}`;
  if (/strong encryption/i.test(message)) return `an entry is encrypted (${message}), ${where}`;
  return `the archive is corrupt (${message}), ${where}`;
}

function describeReadError(name: string, err: Error & { code?: string }): string {
  const message = oneLine(err.message);
  if (/too many bytes in the stream/i.test(message))
    return `entry ${name} holds more data than its header declares (${message}); refused as a possible zip bomb`;
  if (/not enough bytes in the stream/i.test(message)) return `entry ${name} holds less data than its header declares (${message}); the archive is corrupt`;
  if (err.code?.startsWith('Z_') || /invalid (block type|distance|stored block|code)|incorrect header|unexpected end of file/i.test(message)) {
    return `entry ${name} has corrupt compressed data (${message})`;
  }
  return `entry ${name} cannot be read (${message})`;
}

export class ZipArchive {
  /** Where the central directory starts (yauzl's cursor before it reads the first record). */
  private readonly directoryStart: number;

  private constructor(
    private readonly zip: yauzl.ZipFile,
    private readonly limits: ArchiveLimits,
  ) {
    // Errors arrive through the promises below; this keeps a late one from being an unhandled 'error' event.
    zip.on('error', () => undefined);
    this.directoryStart = (zip as unknown as { readEntryCursor: number }).readEntryCursor;
  }

  static async open(path: string, limits: ArchiveLimits): Promise<ZipArchive> {
    // Loaded here, not at start-up: only zip runs read an archive.
    const { fromRandomAccessReader, RandomAccessReader } = (await import('yauzl')).default;
    const fd = await new Promise<number>((resolve, reject) => openFile(path, 'r', (err, opened) => (err ? reject(err) : resolve(opened))));
    let size: number;
    try {
      size = await new Promise<number>((resolve, reject) => fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats.size))));
    } catch (err) {
      close(fd, () => undefined);
      throw err;
    }
    /*
     * yauzl's own file reader, but refusing a read outside the file: a zip64 offset is 8 bytes, and
     * one damaged high byte points past 2^53, where fs.read throws instead of calling back. Thrown
     * inside yauzl's callbacks, it escaped as an uncaught exception and the read never settled.
     */
    class BoundedReader extends RandomAccessReader {
      override _readStreamForRange(start: number, end: number): Readable {
        // Not fs.createReadStream on the shared descriptor: destroying one (an entry read stopped
        // early) closes the descriptor, whatever autoClose says.
        let at = start;
        return new Readable({
          read() {
            const length = Math.min(READ_CHUNK_BYTES, end - at);
            if (length <= 0) {
              this.push(null);
              return;
            }
            read(fd, Buffer.alloc(length), 0, length, at, (err, bytesRead, buffer) => {
              if (err) this.destroy(err);
              else if (bytesRead === 0)
                this.push(null); // the file ended early: yauzl's byte count says so
              else {
                at += bytesRead;
                this.push(buffer.subarray(0, bytesRead));
              }
            });
          },
        });
      }
      override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null, bytesRead?: number) => void) {
        if (!Number.isSafeInteger(position) || position < 0 || position + length > size) {
          setImmediate(() => callback(new Error(`an offset points outside the archive's ${size} bytes, to byte ${position}`)));
          return;
        }
        read(fd, buffer, offset, length, position, (err, bytesRead) => callback(err, bytesRead));
      }
      override close(callback: (err: Error | null) => void) {
        close(fd, callback);
      }
    }
    return new Promise((resolve, reject) => {
      fromRandomAccessReader(
        new BoundedReader(),
        size,
        { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false },
        (err, zip: yauzl.ZipFile | undefined) => {
          if (err || !zip) {
            const failed = err ?? new Error('unknown error');
            void endRecordsWhere(fd, size)
              .then(
                (where) => reject(new ArchiveError(describeOpenError(failed, where))),
                // The file that yauzl just read cannot be read again: its message, with no more said of where.
                () => reject(new ArchiveError(describeOpenError(failed, 'reading its end records'))),
              )
              .finally(() => close(fd, () => undefined));
            return;
          }
          const archive = new ZipArchive(zip, limits);
          if (zip.entryCount > limits.maxEntries) {
            // The count yauzl read, and where: one damaged byte of it makes an honest archive's.
            void endRecordsOf(fd, size)
              .then(
                (found) => (found?.zip64 === undefined ? `its end record at byte ${found?.end}` : `its zip64 end record at byte ${found.zip64}`),
                () => 'its end records',
              )
              .then((counted) => {
                archive.close();
                reject(
                  new ArchiveError(`the archive holds ${zip.entryCount} entries by ${counted}, more than CPQ_ZIP_MAX_ENTRIES (${limits.maxEntries}); refused`),
                );
              });
            return;
          }
          resolve(archive);
        },
      );
    });
  }

  /** Every entry checked and the user entries in archive order; throws ArchiveError at the first problem. */
  async userEntries(): Promise<UserEntry[]> {
    const users: UserEntry[] = [];
    const names = new Set<string>();
    const all: yauzl.Entry[] = [];
    let others = 0;
    let total = 0;
    for (let entry = await this.next(); entry; entry = await this.next()) {
      const name = quoteEntryName(entry.fileName);
      // Every entry is held until all are checked (checkNoOverlap), so each must cost little.
      if (entry.fileName.length > MAX_ENTRY_NAME_LENGTH) {
        throw new ArchiveError(`entry ${name} has a name of ${entry.fileName.length} characters, more than ${MAX_ENTRY_NAME_LENGTH}; refused`);
      }
      all.push(shed(entry));
      if (names.has(entry.fileName)) throw new ArchiveError(`the archive holds two entries named ${name}; refused`);
      names.add(entry.fileName);
      const kind = entryKind(entry.fileName);
      if (kind.kind === 'skip') {
        // A folder holds nothing. An entry named like one that holds data is refused, not skipped:
        // one damaged byte of a name (users.jso/) would otherwise drop every user in it.
        if (kind.why === 'directory' && entry.uncompressedSize > 0) {
          throw new ArchiveError(`entry ${name} is named like a folder but holds ${entry.uncompressedSize} bytes; refused`);
        }
        others++;
        continue;
      }
      if (kind.kind === 'unknown') {
        throw new ArchiveError(`entry ${name} is not a user entry: only ${USER_ENTRY_EXTENSIONS.join(', ')} entries are read`);
      }
      this.check(entry, name);
      total += entry.uncompressedSize;
      if (total > this.limits.maxTotalBytes) {
        throw new ArchiveError(
          `the user entries expand to more than CPQ_ZIP_MAX_TOTAL_BYTES (${this.limits.maxTotalBytes}) together (${total} bytes up to entry ${name}); refused`,
        );
      }
      users.push({ name, format: kind.format, uncompressedSize: entry.uncompressedSize, compressedSize: entry.compressedSize, entry });
    }
    // yauzl stops after the entry count of the end record: one damaged byte of it (2 read as 1)
    // ended the directory early and dropped the entries after that count unseen (a soak found it).
    // The directory must end where the end records begin: looking for one more record there was
    // not enough, as a second damaged byte, in that record's signature, hid it.
    await this.checkDirectoryEnd();
    // Entries of up to RATIO_CHECK_MIN_BYTES each are not held to the ratio one by one, so, held
    // to it together: 999 of 1 MiB of line breaks beside the users made a 1.1 MB download 1 GiB of
    // text to read (36 s of CPU; review DL).
    const archiveBytes = this.zip.fileSize;
    if (total > RATIO_CHECK_MIN_BYTES && total > archiveBytes * this.limits.maxRatio) {
      throw new ArchiveError(
        `the user entries expand ${Math.round(total / Math.max(1, archiveBytes))}x together (an archive of ${archiveBytes} bytes to ${total}), beyond CPQ_ZIP_MAX_RATIO (${this.limits.maxRatio}); refused as a possible zip bomb`,
      );
    }
    if (users.length === 0) {
      throw new ArchiveError(
        `the archive holds no user entry (${USER_ENTRY_EXTENSIONS.join(', ')})${others ? `, only ${others} folder or metadata entries` : ''}, in its central directory of ${this.zip.entryCount} at byte ${this.directoryStart}`,
      );
    }
    await this.checkEntriesTile(all);
    return users;
  }

  /**
   * Refuses entries whose bytes (local header to the end of the compressed data) overlap: in a
   * well-formed archive each entry has bytes of its own, while a zip bomb of the overlapping kind
   * points many entries at one run of compressed data, so that each entry passes the per-entry
   * bounds and the archive as a whole expands without limit.
   *
   * And refuses bytes between one entry and the next (or the central directory) other than the
   * entry's data descriptor, when it says what the central directory says: writers put entries
   * one after another, and a central record whose sizes were damaged to say less (zeros: a stored
   * entry then reads as empty, the CRC-32 of nothing being 0) leaves its data unread there.
   */
  private async checkEntriesTile(entries: yauzl.Entry[]) {
    const spans: { start: number; end: number; name: string; entry: yauzl.Entry }[] = [];
    for (const entry of entries) {
      const dataStart = await this.dataStart(entry);
      spans.push({ start: entry.relativeOffsetOfLocalHeader, end: dataStart + entry.compressedSize, name: quoteEntryName(entry.fileName), entry });
    }
    spans.sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      const before = spans[i - 1]!;
      const span = spans[i]!;
      if (span.start < before.end) {
        throw new ArchiveError(`entries ${before.name} and ${span.name} share bytes of the archive (overlapping entries); refused as a possible zip bomb`);
      }
    }
    for (let i = 0; i < spans.length; i++) {
      const span = spans[i]!;
      const next = spans[i + 1]?.start ?? this.directoryStart;
      const gap = next - span.end;
      if (gap === 0 && (span.entry.generalPurposeBitFlag & FLAG_DATA_DESCRIPTOR) === 0) continue;
      if (gap > 0 && gap <= 24 && (span.entry.generalPurposeBitFlag & FLAG_DATA_DESCRIPTOR) !== 0 && describes(await this.readAt(span.end, gap), span.entry))
        continue;
      const what = i + 1 < spans.length ? `the next entry (${spans[i + 1]!.name})` : 'the central directory';
      throw new ArchiveError(
        `entry ${span.name} ends at byte ${span.end}, but ${what} begins at byte ${next}: the ${gap} bytes between are not its data descriptor as its central directory record describes it; refused as damaged`,
      );
    }
  }

  /**
   * Refuses a central directory that does not end where the end records begin (the zip64 end
   * record when a zip64 locator precedes the end record, as yauzl reads it; else the end record):
   * whatever lies between, more directory records or other bytes, was not read, and writers put
   * the end records right after the directory.
   */
  private async checkDirectoryEnd(): Promise<void> {
    const at = (this.zip as unknown as { readEntryCursor: number }).readEntryCursor;
    const size = this.zip.fileSize;
    // As yauzl finds the end record: the last signature at least 22 bytes from the end, within the
    // largest comment of it, and the zip64 locator's signature right before it.
    const tailLength = tailLengthOf(size);
    const found = endRecordsIn(await this.readAt(size - tailLength, tailLength), size);
    if (found === undefined)
      throw new ArchiveError(describeOpenError(new Error('end of central directory record signature not found'), noEndRecordWhere(size)));
    const zip64 = found.zip64 !== undefined;
    const expected = found.zip64 ?? found.end;
    if (at === expected) return;
    const record = zip64 ? 'zip64 end record' : 'end record';
    const why =
      at > expected
        ? 'its last entry runs into them'
        : at + 4 <= size && (await this.readAt(at, 4)).readUInt32LE(0) === CENTRAL_DIRECTORY_RECORD
          ? `it holds more entries than its ${record} counts (${this.zip.entryCount})`
          : `bytes that are no entry of it lie between (its ${record} counts ${this.zip.entryCount})`;
    throw new ArchiveError(
      `the archive's central directory ends at byte ${at}, not at byte ${expected} where its end records begin: ${why}; refused as damaged`,
    );
  }

  /** `length` bytes of the archive file from `position` (fewer at its end). */
  private readAt(position: number, length: number): Promise<Buffer> {
    const reader = (this.zip as unknown as { reader: CursorReader }).reader;
    const buffer = Buffer.alloc(length);
    return new Promise((resolve, reject) => {
      reader.read(buffer, 0, length, position, (err, bytesRead) => {
        if (err) reject(new ArchiveError(describeOpenError(err, `reading ${length} bytes at byte ${position}`)));
        else resolve(buffer.subarray(0, bytesRead));
      });
    });
  }

  /** Where an entry's compressed data starts: after its local header, whose name and extra field lengths may differ from the central directory's. */
  private dataStart(entry: yauzl.Entry): Promise<number> {
    const read = (this.zip as unknown as { readLocalFileHeader: LocalHeaderReader }).readLocalFileHeader.bind(this.zip);
    return new Promise((resolve, reject) => {
      read(entry, { minimal: true }, (err, header) => {
        if (err || !header) reject(new ArchiveError(describeOpenError(err ?? new Error('unknown error'), localHeaderWhere(entry))));
        else resolve(header.fileDataStart);
      });
    });
  }

  private check(entry: yauzl.Entry, name: string) {
    const { maxBytes, maxRatio } = this.limits;
    if (entry.isEncrypted()) throw new ArchiveError(`entry ${name} is encrypted; the export must come without a password`);
    if (entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATE) {
      throw new ArchiveError(`entry ${name} uses compression method ${entry.compressionMethod}; only stored (0) and deflate (8) are supported`);
    }
    if (entry.uncompressedSize > maxBytes) {
      throw new ArchiveError(`entry ${name} is ${entry.uncompressedSize} bytes uncompressed, more than CPQ_ZIP_MAX_BYTES (${maxBytes}); refused`);
    }
    if (entry.uncompressedSize > RATIO_CHECK_MIN_BYTES && entry.uncompressedSize > entry.compressedSize * maxRatio) {
      const ratio = entry.compressedSize === 0 ? 'without limit' : `${Math.round(entry.uncompressedSize / entry.compressedSize)}x`;
      throw new ArchiveError(
        `entry ${name} expands ${ratio} (${entry.compressedSize} to ${entry.uncompressedSize} bytes), beyond CPQ_ZIP_MAX_RATIO (${maxRatio}); refused as a possible zip bomb`,
      );
    }
  }

  private next(): Promise<yauzl.Entry | undefined> {
    // Where the record yauzl reads next starts, and which of the end record's count it is: yauzl's
    // errors about it name neither.
    const zip = this.zip as unknown as { readEntryCursor: number; entriesRead: number };
    const where = `reading the central directory record at byte ${zip.readEntryCursor} (entry ${zip.entriesRead + 1} of ${this.zip.entryCount})`;
    return new Promise((resolve, reject) => {
      const done = () => {
        this.zip.off('entry', onEntry);
        this.zip.off('end', onEnd);
        this.zip.off('error', onError);
      };
      const onEntry = (entry: yauzl.Entry) => {
        done();
        resolve(entry);
      };
      const onEnd = () => {
        done();
        resolve(undefined);
      };
      const onError = (err: Error) => {
        done();
        reject(new ArchiveError(describeOpenError(err, where)));
      };
      this.zip.on('entry', onEntry);
      this.zip.on('end', onEnd);
      this.zip.on('error', onError);
      this.zip.readEntry();
    });
  }

  /**
   * The uncompressed bytes of a user entry, checked as they come: never more than declared
   * (yauzl) nor than CPQ_ZIP_MAX_BYTES, and the CRC-32 at the end. Leaving the loop early
   * (return/throw in the consumer) destroys the stream.
   */
  async *bytes(user: UserEntry): AsyncGenerator<Buffer> {
    const stream = await new Promise<Readable>((resolve, reject) => {
      this.zip.openReadStream(user.entry, (err, readStream: Readable | undefined) => {
        if (err || !readStream) reject(new ArchiveError(`${describeReadError(user.name, err ?? new Error('unknown error'))}, ${localHeaderWhere(user.entry)}`));
        else resolve(readStream);
      });
    });
    let crc = 0;
    let size = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.limits.maxBytes) {
          throw new ArchiveError(`entry ${user.name} is more than CPQ_ZIP_MAX_BYTES (${this.limits.maxBytes}) uncompressed; refused`);
        }
        crc = crc32(chunk, crc); // yauzl does not check CRCs, so the reader does
        yield chunk;
      }
    } catch (err) {
      if (err instanceof ArchiveError) throw err;
      throw new ArchiveError(describeReadError(user.name, err as Error));
    } finally {
      stream.destroy();
    }
    if (crc !== user.entry.crc32 >>> 0) {
      throw new ArchiveError(`entry ${user.name} fails its CRC-32 check (stored ${hex(user.entry.crc32)}, data ${hex(crc)}); the archive is corrupt`);
    }
  }

  close() {
    if (this.zip.isOpen) this.zip.close();
  }
}

/**
 * Whether `bytes` are a data descriptor of `entry` as its central record describes it: CRC-32 and
 * both sizes, with or without the descriptor's signature, the sizes in 4 bytes or (zip64) 8.
 */
function describes(bytes: Buffer, entry: yauzl.Entry): boolean {
  const body = bytes.length === 16 || bytes.length === 24 ? (bytes.readUInt32LE(0) === DATA_DESCRIPTOR ? bytes.subarray(4) : undefined) : bytes;
  if (body === undefined || (body.length !== 12 && body.length !== 20)) return false;
  const wide = body.length === 20;
  const compressed = wide ? Number(body.readBigUInt64LE(4)) : body.readUInt32LE(4);
  const uncompressed = wide ? Number(body.readBigUInt64LE(12)) : body.readUInt32LE(8);
  return body.readUInt32LE(0) === entry.crc32 >>> 0 && compressed === entry.compressedSize && uncompressed === entry.uncompressedSize;
}

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

/** How much of the file's end yauzl searches for the end record: the record, the largest comment, and a zip64 locator before it. */
const tailLengthOf = (size: number) => Math.min(size, ZIP64_LOCATOR_SIZE + END_RECORD_SIZE + 0xffff);

/**
 * Where the end records begin, found as yauzl finds them in the file's last bytes (`tail`): the
 * last end record signature at least 22 bytes from the end, and the zip64 end record a zip64
 * locator right before it points to. Undefined when there is no end record.
 */
function endRecordsIn(tail: Buffer, size: number): { end: number; zip64?: number } | undefined {
  if (tail.length < END_RECORD_SIZE) return undefined;
  const at = tail.lastIndexOf(END_RECORD, tail.length - END_RECORD_SIZE);
  if (at < 0) return undefined;
  const end = size - tail.length + at;
  if (at >= ZIP64_LOCATOR_SIZE && tail.readUInt32LE(at - ZIP64_LOCATOR_SIZE) === ZIP64_LOCATOR_SIGNATURE) {
    return { end, zip64: Number(tail.readBigUInt64LE(at - ZIP64_LOCATOR_SIZE + 8)) };
  }
  return { end };
}

const noEndRecordWhere = (size: number) => `in its last ${tailLengthOf(size)} bytes, from byte ${size - tailLengthOf(size)}`;

/** The end records of the archive open as `fd`, found as yauzl finds them. */
async function endRecordsOf(fd: number, size: number): Promise<{ end: number; zip64?: number } | undefined> {
  const length = tailLengthOf(size);
  if (length === 0) return undefined; // fs.read throws on a read of nothing
  const tail = Buffer.alloc(length);
  const bytesRead = await new Promise<number>((resolve, reject) => read(fd, tail, 0, length, size - length, (err, n) => (err ? reject(err) : resolve(n))));
  return endRecordsIn(tail.subarray(0, bytesRead), size);
}

/** Where yauzl read when it refused to open the archive (it says not): its end record and the zip64 end record that one points to. */
async function endRecordsWhere(fd: number, size: number): Promise<string> {
  const found = await endRecordsOf(fd, size);
  if (found === undefined) return noEndRecordWhere(size);
  const zip64 = found.zip64 === undefined ? '' : ` and the zip64 end record it points to, at byte ${found.zip64}`;
  return `reading its end record at byte ${found.end}${zip64}`;
}

const localHeaderWhere = (entry: yauzl.Entry) =>
  `reading the local header of entry ${quoteEntryName(entry.fileName)} at byte ${entry.relativeOffsetOfLocalHeader}`;
