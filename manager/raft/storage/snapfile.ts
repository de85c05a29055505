// Snapshot files: snap/<term>-<index>.snap, both as 16 hex digits. Layout
// (little-endian):
//
//   u32 magic "SHSN" | u32 version | u64 term | u64 index
//   u32 #voters | u32 #learners | u64 voters... | u64 learners...
//   u64 data length | data | u32 crc32 of everything before it
//
// Written to <name>.tmp, fsynced, renamed into place, then the directory is
// fsynced: a crash leaves either the old set of files or the new one, plus
// perhaps a .tmp that open() deletes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Snapshot } from '../core/types.js';
import { getU64, putU64 } from './codec.js';
import { crc32 } from './crc.js';
import { fsyncDir, fsyncDirAsync, hex16, writeAll, writeAllAsync } from './fsutil.js';

const SNAP_MAGIC = 0x4e534853; // "SHSN"
const SNAP_VERSION = 1;
const FIXED = 32;
const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export interface SnapFile {
  term: number;
  index: number;
  path: string;
}

export function snapFileName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

/** Snapshot files in `dir`, oldest first (by index, then term). */
export function listSnapFiles(dir: string): SnapFile[] {
  const out: SnapFile[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = NAME_RE.exec(name);
    if (!m) continue;
    out.push({ term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16), path: path.join(dir, name) });
  }
  return out.sort(compareSnapFiles);
}

export function compareSnapFiles(a: SnapFile, b: SnapFile): number {
  return a.index - b.index || a.term - b.term;
}

/** The bytes before a snapshot's data. */
function snapHead(snap: Snapshot): Buffer {
  const { index, term, confState } = snap.metadata;
  const nv = confState.voters.length;
  const nl = confState.learners.length;
  const head = Buffer.allocUnsafe(FIXED + 8 * (nv + nl) + 8);
  head.writeUInt32LE(SNAP_MAGIC, 0);
  head.writeUInt32LE(SNAP_VERSION, 4);
  putU64(head, 8, term);
  putU64(head, 16, index);
  head.writeUInt32LE(nv, 24);
  head.writeUInt32LE(nl, 28);
  let p = FIXED;
  for (const id of confState.voters) { putU64(head, p, id); p += 8; }
  for (const id of confState.learners) { putU64(head, p, id); p += 8; }
  putU64(head, p, snap.data.byteLength);
  return head;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export interface WrittenSnapFile {
  file: SnapFile;
  bytes: number;
  syncs: number;
}

/** Writes the snapshot atomically; returns bytes written and fsyncs made. */
export function writeSnapFile(dir: string, snap: Snapshot, sync: boolean): WrittenSnapFile {
  const { index, term } = snap.metadata;
  const head = snapHead(snap);
  const tail = u32(crc32(snap.data, 0, snap.data.length, crc32(head)));
  const final = path.join(dir, snapFileName(term, index));
  const tmp = `${final}.tmp`;
  // The data may be several MiB: write it straight from the caller's array rather than concatenating.
  const fd = fs.openSync(tmp, 'w');
  let syncs = 0;
  try {
    writeAll(fd, head, 0);
    writeAll(fd, snap.data, head.length);
    writeAll(fd, tail, head.length + snap.data.byteLength);
    if (sync) { fs.fsyncSync(fd); syncs++; }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, final);
  if (sync) { fsyncDir(dir); syncs++; }
  return { file: { term, index, path: final }, bytes: head.length + snap.data.byteLength + 4, syncs };
}

/** Checksummed per slice, with the event loop free between slices. */
const ASYNC_SLICE = 1 << 20;

/**
 * writeSnapFile's same file, same steps, off the event loop: the writes and
 * fsyncs run on the thread pool and the checksum a MiB at a time, so a large
 * snapshot does not stall heartbeats.
 */
export async function writeSnapFileAsync(dir: string, snap: Snapshot, sync: boolean): Promise<WrittenSnapFile> {
  const { index, term } = snap.metadata;
  const head = snapHead(snap);
  let crc = crc32(head);
  for (let off = 0; off < snap.data.length; off += ASYNC_SLICE) {
    crc = crc32(snap.data, off, Math.min(off + ASYNC_SLICE, snap.data.length), crc);
    await new Promise((r) => setImmediate(r));
  }
  const final = path.join(dir, snapFileName(term, index));
  const tmp = `${final}.tmp`;
  const fh = await fs.promises.open(tmp, 'w');
  let syncs = 0;
  try {
    await writeAllAsync(fh, head, 0);
    await writeAllAsync(fh, snap.data, head.length);
    await writeAllAsync(fh, u32(crc), head.length + snap.data.byteLength);
    if (sync) { await fh.sync(); syncs++; }
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, final);
  if (sync) { await fsyncDirAsync(dir); syncs++; }
  return { file: { term, index, path: final }, bytes: head.length + snap.data.byteLength + 4, syncs };
}

/** Reads and verifies a snapshot file; returns a reason string when it is unusable. */
export function readSnapFile(f: SnapFile): Snapshot | string {
  let b: Buffer;
  try {
    b = fs.readFileSync(f.path);
  } catch (err) {
    return `cannot read: ${(err as Error).message}`;
  }
  if (b.length < FIXED + 12) return 'file too short';
  const end = b.length - 4;
  if (crc32(b, 0, end) !== b.readUInt32LE(end)) return 'checksum mismatch';
  if (b.readUInt32LE(0) !== SNAP_MAGIC) return 'bad magic';
  if (b.readUInt32LE(4) !== SNAP_VERSION) return `unsupported version ${b.readUInt32LE(4)}`;
  const term = getU64(b, 8);
  const index = getU64(b, 16);
  if (term !== f.term || index !== f.index) return `contents say term ${term} index ${index}, name disagrees`;
  const nv = b.readUInt32LE(24);
  const nl = b.readUInt32LE(28);
  const dataStart = FIXED + 8 * (nv + nl) + 8;
  if (dataStart > end) return 'bad member counts';
  const ids = (from: number, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(getU64(b, from + 8 * i));
    return out;
  };
  const voters = ids(FIXED, nv);
  const learners = ids(FIXED + 8 * nv, nl);
  if (voters.some((v) => v < 0) || learners.some((v) => v < 0)) return 'bad member id';
  if (getU64(b, dataStart - 8) !== end - dataStart) return 'bad data length';
  return {
    metadata: { index, term, confState: { voters, learners } },
    data: new Uint8Array(b.buffer, b.byteOffset + dataStart, end - dataStart),
  };
}
