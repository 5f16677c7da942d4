import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtModule, runWithHeap } from '../helpers/small-heap.js';
import { localEntry, withDirectory, zipOf, type CentralEntry } from '../helpers/zip-bytes.js';
import { hostileSite, type HostileSite } from './cpq-hostile.js';

/*
 * Issue 17 item 7 (archives). The per-entry bounds (size, ratio, count) let a hostile export
 * expand without limit as a whole: many entries pointing at one run of compressed data (an
 * overlapping zip bomb: each entry passes every per-entry check), or many honest-looking entries.
 * Overlapping entries are refused, and all user entries together may not expand beyond
 * CPQ_ZIP_MAX_TOTAL_BYTES, before a single record is loaded.
 */

let site: HostileSite | undefined;

beforeAll(async () => {
  site = await hostileSite();
});

afterAll(async () => {
  await site?.close();
});

/** JSON lines of `count` users, random enough to pass the compression-ratio bound. */
function usersJsonl(prefix: string, count: number, filler = 200): Buffer {
  const lines = Array.from({ length: count }, (_, i) => JSON.stringify({ login: `${prefix}${i}`, firstName: randomBytes(filler / 2).toString('hex') }));
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

describe('a Content-Encoding over the export (a bomb that is no zip entry)', () => {
  // fetch decoded it unseen, past every zip bound: 4 MB of gzip wrote 4 GiB to TMPDIR. An honest
  // archive, gzip-encoded, stands in for it here: it is refused before it is written.
  it('an export sent gzip-encoded though asked for as sent fails the run, which changes nothing', async () => {
    const archive = zipOf([{ name: 'users.jsonl', data: usersJsonl('encoded', 3), deflate: true }], deflateRawSync);
    site!.front.serve('/rest/v16/companies/gzip_encoded/users', {
      status: 200,
      headers: { 'content-type': 'application/zip', 'content-encoding': 'gzip' },
      body: gzipSync(archive),
    });
    const error = await site!.refused('gzip_encoded', { format: 'zip' });
    expect(error.kind).toBe('data');
    expect(error.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/gzip_encoded\/users: the export came with Content-Encoding "gzip", though asked for as sent \(Accept-Encoding: identity\); refused, as an encoded body may expand far beyond what was sent$/,
    );
  });
});

describe('overlapping entries (a zip bomb that shares its compressed data)', () => {
  it('many entries pointing at one deflated run of users are refused before anything is loaded', async () => {
    const data = usersJsonl('shared', 50);
    const packed = deflateRawSync(data);
    const crc = crc32(data);
    const body = localEntry('part-000.jsonl', 8, crc, packed, data.length);
    // 200 directory entries, every one the same bytes: 200 times the expansion of one entry.
    const entries = Array.from({ length: 200 }, (_, i) => ({
      name: `part-${String(i).padStart(3, '0')}.jsonl`,
      offset: 0,
      method: 8,
      crc,
      compressedSize: packed.length,
      size: data.length,
    }));
    site!.serve('overlap_shared', withDirectory(body, entries), 'application/zip');
    const error = await site!.refused('overlap_shared', { format: 'zip' });
    expect(error.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/overlap_shared\/users: zip export: entries "part-\d{3}\.jsonl" and "part-\d{3}\.jsonl" share bytes of the archive \(overlapping entries\); refused as a possible zip bomb$/,
    );
  });

  it('an entry whose stored data holds the next entry (header and all) is refused', async () => {
    const inner = usersJsonl('inner', 5);
    const innerCrc = crc32(inner);
    const innerLocal = localEntry('inner.jsonl', 0, innerCrc, inner, inner.length);
    // The outer entry "contains" the inner one: its data is the inner entry's header and data.
    const outerLocal = localEntry('outer.jsonl', 0, crc32(innerLocal), innerLocal, innerLocal.length);
    const innerOffset = 30 + Buffer.byteLength('outer.jsonl');
    const zip = withDirectory(outerLocal, [
      { name: 'outer.jsonl', offset: 0, method: 0, crc: crc32(innerLocal), compressedSize: innerLocal.length, size: innerLocal.length },
      { name: 'inner.jsonl', offset: innerOffset, method: 0, crc: innerCrc, compressedSize: inner.length, size: inner.length },
    ]);
    site!.serve('overlap_nested', zip, 'application/zip');
    const error = await site!.refused('overlap_nested', { format: 'zip' });
    expect(error.message).toMatch(
      /zip export: entries "outer\.jsonl" and "inner\.jsonl" share bytes of the archive \(overlapping entries\); refused as a possible zip bomb$/,
    );
  });

  it('an archive of separate entries loads as before', async () => {
    const zip = zipOf(
      [
        { name: 'a.jsonl', data: usersJsonl('a', 3), deflate: true },
        { name: 'dir/', data: Buffer.alloc(0) },
        { name: 'b.jsonl', data: usersJsonl('b', 3) },
      ],
      deflateRawSync,
    );
    site!.serve('separate', zip, 'application/zip');
    const { result, error } = await site!.run('separate', { format: 'zip' });
    expect(error).toBeUndefined();
    expect(result!.inserted).toBe(6);
  });
});

describe('the total uncompressed size of an archive (CPQ_ZIP_MAX_TOTAL_BYTES)', () => {
  it('defaults to 16 GiB', () => {
    expect(site!.h.config.cpq!.zip.maxTotalBytes).toBe(16 * 1024 ** 3);
  });

  it('many entries, each within every per-entry bound, are refused together beyond the cap', async () => {
    const entries = Array.from({ length: 8 }, (_, i) => ({ name: `part-${i}.jsonl`, data: usersJsonl(`p${i}_`, 100), deflate: true }));
    const total = entries.reduce((n, e) => n + e.data.length, 0);
    const cap = Math.floor(total / 2);
    site!.serve('total_cap', zipOf(entries, deflateRawSync), 'application/zip');
    const error = await site!.refused('total_cap', { format: 'zip', cpq: { zip: { ...site!.h.config.cpq!.zip, maxTotalBytes: cap } } });
    expect(error.message).toMatch(
      new RegExp(
        `^GET http://127\\.0\\.0\\.1:\\d+/rest/v16/companies/total_cap/users: zip export: the user entries expand to more than CPQ_ZIP_MAX_TOTAL_BYTES \\(${cap}\\) together \\(\\d+ bytes up to entry "part-\\d\\.jsonl"\\); refused$`,
      ),
    );
    // Under the cap, the same archive loads.
    const { result, error: none } = await site!.run('total_cap', { format: 'zip', cpq: { zip: { ...site!.h.config.cpq!.zip, maxTotalBytes: total } } });
    expect(none).toBeUndefined();
    expect(result!.inserted).toBe(800);
  });
});

describe('the compression ratio of the archive as a whole (review DL)', () => {
  it('entries of up to 1 MiB each (not held to CPQ_ZIP_MAX_RATIO one by one) are held to it together', async () => {
    // 999 entries of 1 MiB of line breaks beside the users made a 1.1 MB download 1 GiB of text: 36 s of CPU.
    const entries = [
      { name: 'users.jsonl', data: usersJsonl('r', 5), deflate: true },
      ...Array.from({ length: 20 }, (_, i) => ({ name: `pad-${i}.jsonl`, data: Buffer.alloc(1024 * 1024, '\n'), deflate: true })),
    ];
    site!.serve('ratio_whole', zipOf(entries, deflateRawSync), 'application/zip');
    const error = await site!.refused('ratio_whole', { format: 'zip' });
    expect(error.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/ratio_whole\/users: zip export: the user entries expand \d+x together \(an archive of \d+ bytes to \d+\), beyond CPQ_ZIP_MAX_RATIO \(200\); refused as a possible zip bomb$/,
    );
    // Text that compresses as CPQ data does, in as many small entries, loads.
    const fine = Array.from({ length: 20 }, (_, i) => ({ name: `part-${i}.jsonl`, data: usersJsonl(`f${i}_`, 30), deflate: true }));
    site!.serve('ratio_whole', zipOf(fine, deflateRawSync), 'application/zip');
    const { result, error: none } = await site!.run('ratio_whole', { format: 'zip' });
    expect(none).toBeUndefined();
    expect(result!.inserted).toBe(600);
  });
});

describe('what each entry of the central directory costs (review CW)', () => {
  /** One user entry, then `count` metadata entries (skipped, never read), each with the largest extra field: 16,383 empty fields. */
  function manyExtraFields(count: number): Buffer {
    const extra = Buffer.alloc(65_532);
    for (let i = 0; i < extra.length; i += 4) extra.writeUInt16LE(0xcafe, i);
    const users = usersJsonl('x', 2);
    const locals = [localEntry('users.jsonl', 0, crc32(users), users, users.length)];
    const entries: CentralEntry[] = [{ name: 'users.jsonl', offset: 0, method: 0, crc: crc32(users), compressedSize: users.length, size: users.length, extra }];
    let offset = locals[0]!.length;
    for (let i = 1; i <= count; i++) {
      const local = localEntry(`__MACOSX/m${i}`, 0, 0, Buffer.alloc(0), 0);
      entries.push({ name: `__MACOSX/m${i}`, offset, method: 0, crc: 0, compressedSize: 0, size: 0, extra });
      locals.push(local);
      offset += local.length;
    }
    return withDirectory(Buffer.concat(locals), entries);
  }

  it('300 entries with 16,383 extra fields each are read within a 64 MB heap (they took 2.4 MB of heap each, all held until checked)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zip-extra-'));
    try {
      const file = join(dir, 'export.zip');
      await writeFile(file, manyExtraFields(300));
      // The built reader in a process of its own, whose heap a hostile archive would exhaust.
      const script = `import { ZipArchive } from ${builtModule('cpq/zip-archive.js')};
        const archive = await ZipArchive.open(process.argv[1], { maxBytes: 2 ** 32, maxEntries: 1000, maxRatio: 200, maxTotalBytes: 2 ** 34 });
        const users = await archive.userEntries();
        archive.close();
        console.log(JSON.stringify(users.map((u) => u.name)));`;
      expect(JSON.parse(await runWithHeap(64, script, [file]))).toEqual(['"users.jsonl"']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an entry name longer than 1024 characters is refused, naming it shortened', async () => {
    const name = `${'n'.repeat(1100)}.jsonl`;
    site!.serve('long_name', zipOf([{ name, data: usersJsonl('l', 2) }], deflateRawSync), 'application/zip');
    const error = await site!.refused('long_name', { format: 'zip' });
    expect(error.message).toMatch(/zip export: entry "n{60}…n{34}\.jsonl" has a name of 1106 characters, more than 1024; refused$/);
  });
});
