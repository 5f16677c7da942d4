import zlib from 'node:zlib';

/*
 * CRC-32 as zip uses it. yauzl does not check CRCs, so the reader does. zlib.crc32 (native) exists
 * from Node 20.15; older Node 20 releases, which package.json still allows, get the table version.
 */

let table: Uint32Array | undefined;

function tableCrc32(data: Uint8Array, previous: number): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** Continues a CRC-32 over `data` (start with 0). */
export function crc32(data: Uint8Array, previous = 0): number {
  return native ? native(data, previous) : tableCrc32(data, previous);
}

/** For tests: the portable implementation. */
export const crc32Portable = tableCrc32;
