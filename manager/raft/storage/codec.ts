// Binary layout of WAL records. Every record is
//
//   u32 len | u8 kind | body (len - 1 bytes) | u32 crc32(len, kind, body)
//
// all little-endian. The checksum covers the length too, so a flipped length
// bit cannot make a neighbouring record's bytes look valid. 64-bit fields are
// written as two u32 halves: cheaper than BigInt conversions and exact for
// every JS safe integer.
import type { Entry, HardState } from '../core/types.js';
import { crc32 } from './crc.js';

export const KIND_HEADER = 1;
export const KIND_ENTRY = 2;
export const KIND_HARDSTATE = 3;
export const KIND_SNAPSHOT = 4;

/** Bytes of framing around a body: length prefix, kind, trailing checksum. */
export const FRAME = 9;
const HEADER_BODY = 64;
const ENTRY_FIXED = 17;
const HARDSTATE_BODY = 24;
const SNAPSHOT_BODY = 16;

export const HEADER_RECORD_SIZE = FRAME + HEADER_BODY;
export const HARDSTATE_RECORD_SIZE = FRAME + HARDSTATE_BODY;
export const SNAPSHOT_RECORD_SIZE = FRAME + SNAPSHOT_BODY;
export const ENTRY_RECORD_OVERHEAD = FRAME + ENTRY_FIXED;
/** Smallest legal value of the length prefix (kind byte + smallest body). */
export const MIN_LEN = 1 + SNAPSHOT_BODY;

/** "SHWL" read as a little-endian u32: marks a shoal WAL segment. */
export const WAL_MAGIC = 0x4c574853;
export const WAL_VERSION = 1;

const TWO32 = 0x1_0000_0000;

export function putU64(b: Buffer, off: number, v: number): void {
  const lo = v >>> 0;
  b.writeUInt32LE(lo, off);
  b.writeUInt32LE((v - lo) / TWO32, off + 4);
}

/** Reads a u64; returns -1 when it does not fit a safe integer (only garbage can). */
export function getU64(b: Buffer, off: number): number {
  const hi = b.readUInt32LE(off + 4);
  if (hi > 0x1fffff) return -1;
  return hi * TWO32 + b.readUInt32LE(off);
}

/** A snapshot marker: the WAL's reference to a snapshot file (index, term). */
export interface Marker {
  index: number;
  term: number;
}

export interface SegmentHeader {
  seq: number;
  firstIndex: number;
  hardState: HardState;
  marker: Marker;
}

// Each encoder writes one record at `off` in a buffer the caller sized and
// returns the offset just past it.

function seal(b: Buffer, start: number, end: number): number {
  b.writeUInt32LE(crc32(b, start, end), end);
  return end + 4;
}

export function encodeHeader(b: Buffer, off: number, h: SegmentHeader): number {
  b.writeUInt32LE(1 + HEADER_BODY, off);
  b[off + 4] = KIND_HEADER;
  const p = off + 5;
  b.writeUInt32LE(WAL_MAGIC, p);
  b.writeUInt32LE(WAL_VERSION, p + 4);
  putU64(b, p + 8, h.seq);
  putU64(b, p + 16, h.firstIndex);
  putU64(b, p + 24, h.hardState.term);
  putU64(b, p + 32, h.hardState.vote);
  putU64(b, p + 40, h.hardState.commit);
  putU64(b, p + 48, h.marker.index);
  putU64(b, p + 56, h.marker.term);
  return seal(b, off, p + HEADER_BODY);
}

export function encodeEntry(b: Buffer, off: number, e: Entry): number {
  const n = e.data.byteLength;
  b.writeUInt32LE(1 + ENTRY_FIXED + n, off);
  b[off + 4] = KIND_ENTRY;
  const p = off + 5;
  putU64(b, p, e.term);
  putU64(b, p + 8, e.index);
  b[p + 16] = e.type;
  if (n > 0) b.set(e.data, p + ENTRY_FIXED);
  return seal(b, off, p + ENTRY_FIXED + n);
}

export function encodeHardState(b: Buffer, off: number, hs: HardState): number {
  b.writeUInt32LE(1 + HARDSTATE_BODY, off);
  b[off + 4] = KIND_HARDSTATE;
  const p = off + 5;
  putU64(b, p, hs.term);
  putU64(b, p + 8, hs.vote);
  putU64(b, p + 16, hs.commit);
  return seal(b, off, p + HARDSTATE_BODY);
}

export function encodeMarker(b: Buffer, off: number, m: Marker): number {
  b.writeUInt32LE(1 + SNAPSHOT_BODY, off);
  b[off + 4] = KIND_SNAPSHOT;
  const p = off + 5;
  putU64(b, p, m.index);
  putU64(b, p + 8, m.term);
  return seal(b, off, p + SNAPSHOT_BODY);
}

/**
 * End offset of an intact record starting at `off`, or -1 if the bytes there
 * are torn or damaged (short, impossible length, unknown kind, bad checksum).
 */
export function recordEnd(b: Buffer, off: number): number {
  if (b.length - off < 4) return -1;
  const len = b.readUInt32LE(off);
  if (len < MIN_LEN || len > b.length - off - 8) return -1;
  const kind = b[off + 4]!;
  if (kind < KIND_HEADER || kind > KIND_SNAPSHOT) return -1;
  const end = off + 4 + len;
  if (crc32(b, off, end) !== b.readUInt32LE(end)) return -1;
  return end + 4;
}

/** Why an intact (checksummed) record cannot be decoded, or undefined if it can. */
export function bodyProblem(b: Buffer, off: number, end: number): string | undefined {
  const kind = b[off + 4]!;
  const body = end - off - FRAME;
  const p = off + 5;
  const u64s = (n: number) => {
    for (let i = 0; i < n; i++) if (getU64(b, p + i * 8) < 0) return 'integer out of range';
    return undefined;
  };
  switch (kind) {
    case KIND_HEADER:
      if (body !== HEADER_BODY) return 'bad header length';
      if (b.readUInt32LE(p) !== WAL_MAGIC) return 'bad segment magic';
      if (b.readUInt32LE(p + 4) !== WAL_VERSION) return `unsupported WAL version ${b.readUInt32LE(p + 4)}`;
      return u64s(7);
    case KIND_ENTRY:
      if (body < ENTRY_FIXED) return 'short entry';
      return u64s(2);
    case KIND_HARDSTATE:
      return body === HARDSTATE_BODY ? u64s(3) : 'bad hard state length';
    case KIND_SNAPSHOT:
      return body === SNAPSHOT_BODY ? u64s(2) : 'bad snapshot marker length';
    default:
      return `unknown record kind ${kind}`;
  }
}

// Decoders assume recordEnd and bodyProblem already approved the record.

export function decodeHeader(b: Buffer, off: number): SegmentHeader {
  const p = off + 5;
  return {
    seq: getU64(b, p + 8),
    firstIndex: getU64(b, p + 16),
    hardState: { term: getU64(b, p + 24), vote: getU64(b, p + 32), commit: getU64(b, p + 40) },
    marker: { index: getU64(b, p + 48), term: getU64(b, p + 56) },
  };
}

/** The entry's data is a view into `b` (no copy): replay keeps the segment buffer alive instead. */
export function decodeEntry(b: Buffer, off: number, end: number): Entry {
  const p = off + 5;
  const dataStart = p + ENTRY_FIXED;
  return {
    term: getU64(b, p),
    index: getU64(b, p + 8),
    type: b[p + 16]!,
    data: new Uint8Array(b.buffer, b.byteOffset + dataStart, end - 4 - dataStart),
  };
}

export function decodeHardState(b: Buffer, off: number): HardState {
  const p = off + 5;
  return { term: getU64(b, p), vote: getU64(b, p + 8), commit: getU64(b, p + 16) };
}

export function decodeMarker(b: Buffer, off: number): Marker {
  const p = off + 5;
  return { index: getU64(b, p), term: getU64(b, p + 8) };
}
