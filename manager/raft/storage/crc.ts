// CRC-32 with the IEEE 802.3 / zlib polynomial (reflected 0xEDB88320).
//
// Two implementations giving identical values: node's native zlib.crc32
// (Node >= 20.15) and a table-driven slicing-by-8 one in JS. The native call
// costs ~250 ns before it reads a byte, which dominates for typical WAL
// records (tens to hundreds of bytes), so short ranges use the JS version and
// long ones the native. Older 20.x without zlib.crc32 use JS throughout.
import * as zlib from 'node:zlib';

/** Eight 256-entry tables: T[k*256 + n] is the CRC of byte n followed by k zero bytes. */
const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/** JS CRC-32 of b[start, end), continuing from `seed` like zlib.crc32. */
export function crc32Js(b: Uint8Array, start = 0, end = b.length, seed = 0): number {
  let c = ~seed;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) ^ c;
    const d = b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24);
    c = T[1792 + (a & 0xff)]! ^ T[1536 + ((a >>> 8) & 0xff)]! ^ T[1280 + ((a >>> 16) & 0xff)]! ^ T[1024 + (a >>> 24)]!
      ^ T[768 + (d & 0xff)]! ^ T[512 + ((d >>> 8) & 0xff)]! ^ T[256 + ((d >>> 16) & 0xff)]! ^ T[d >>> 24]!;
  }
  for (; i < end; i++) c = T[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
/** Below this many bytes the JS version beats the native call's fixed cost. */
const NATIVE_FROM = 384;

/** CRC-32 of b[start, end), continuing from `seed` (0 for a fresh checksum). */
export function crc32(b: Uint8Array, start = 0, end = b.length, seed = 0): number {
  if (native === undefined || end - start < NATIVE_FROM) return crc32Js(b, start, end, seed);
  return native(start === 0 && end === b.length ? b : b.subarray(start, end), seed);
}
