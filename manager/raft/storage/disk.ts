// Durable raft state: a write-ahead log of checksummed records in segment
// files plus snapshot files. See README.md for the formats and the rules.
//
// Synchronous fs calls throughout, on purpose: the raft driver handles one
// Ready at a time and must not send messages before the write is durable, so
// a thread-pool hop would only add latency to a ~0.25 ms fdatasync.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RaftError } from '../core/errors.js';
import { MemoryStorage } from '../core/storage.js';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import { isEmptyHardState, isEmptySnapshot } from '../core/types.js';
import {
  encodeEntry, encodeHardState, encodeHeader, encodeMarker,
  ENTRY_RECORD_OVERHEAD, HARDSTATE_RECORD_SIZE, HEADER_RECORD_SIZE, type Marker, SNAPSHOT_RECORD_SIZE,
} from './codec.js';
import { fsyncDir, writeAll } from './fsutil.js';
import {
  compareSnapFiles, listSnapFiles, readSnapFile, type SnapFile, writeSnapFile, writeSnapFileAsync, type WrittenSnapFile,
} from './snapfile.js';
import { listSegments, Replay, scanSegment, type Segment, segmentName } from './wal.js';

export interface RaftDiskOptions {
  /** Roll over to a new WAL segment once the current one reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Snapshot files kept by releaseTo (the newest ones). Default 2, at least 1. */
  keepSnapshots?: number;
  /** Receives warnings: torn tails cut, damaged snapshots skipped. Default: stderr. */
  logger?: (msg: string) => void;
  /** Skip every fsync/fdatasync. Unsafe: for tests and benchmarks only. */
  noSync?: boolean;
}

export interface OpenResult {
  disk: RaftDisk;
  /** Loaded: applySnapshot(snapshot), setHardState(hardState), append(entries after it). */
  storage: MemoryStorage;
  /** Last persisted; commit is raised to the snapshot index if it lagged behind. */
  hardState: HardState;
  /** Last persisted snapshot, if any. */
  snapshot?: Snapshot;
  /** True when no state existed (a brand-new node). */
  fresh: boolean;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const MIN_SCRATCH = 64 * 1024;
/** A batch bigger than this gets its own buffer, which is then dropped rather than kept around. */
const MAX_KEPT_SCRATCH = 8 * 1024 * 1024;

function removeTmpFiles(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith('.tmp')) fs.rmSync(path.join(dir, name), { force: true });
  }
}

export class RaftDisk {
  private readonly walDir: string;
  private readonly snapDir: string;
  private readonly segmentBytes: number;
  private readonly keepSnapshots: number;
  private readonly log: (msg: string) => void;
  private readonly noSync: boolean;

  private segs: Segment[] = [];
  private fd = -1;
  /** Size of the current (last) segment: where the next write goes. */
  private pos = 0;
  private unsynced = false;
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  /** Latest snapshot marker in the WAL: copied into each new segment's header. */
  private marker: Marker = { index: 0, term: 0 };
  /** Highest index written so far: names the next segment. */
  private maxIndex = 0;
  /** Snapshot files on disk, oldest first. */
  private snaps: SnapFile[] = [];
  /** Snapshot files found damaged: never trusted, deleted by releaseTo. */
  private readonly bad = new Set<string>();
  private scratch: Buffer = Buffer.alloc(0);
  private bytesWritten = 0;
  private syncs = 0;
  private failed: unknown;
  private closed = false;

  private constructor(dir: string, opts: RaftDiskOptions) {
    this.walDir = path.join(dir, 'wal');
    this.snapDir = path.join(dir, 'snap');
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.keepSnapshots = opts.keepSnapshots ?? 2;
    this.log = opts.logger ?? ((m) => process.stderr.write(`raft-disk: ${m}\n`));
    this.noSync = opts.noSync ?? false;
    if (!(this.segmentBytes > 0)) throw new RaftError('INVALID_CONFIG', `segmentBytes must be positive, got ${this.segmentBytes}`);
    if (!(this.keepSnapshots >= 1)) throw new RaftError('INVALID_CONFIG', `keepSnapshots must be at least 1, got ${this.keepSnapshots}`);
  }

  /** Opens (creating if absent) the state in `dir` and loads it. Throws RaftError CORRUPT on damage it must not repair. */
  static open(dir: string, opts: RaftDiskOptions = {}): OpenResult {
    const d = new RaftDisk(dir, opts);
    fs.mkdirSync(d.walDir, { recursive: true });
    fs.mkdirSync(d.snapDir, { recursive: true });
    // Leftovers of a crash mid-write; the real file was never renamed over.
    removeTmpFiles(d.snapDir);
    removeTmpFiles(d.walDir);

    const segs = listSegments(d.walDir);
    const replay = new Replay();
    let tail = 0;
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i]!;
      const isLast = i === segs.length - 1;
      const b = fs.readFileSync(seg.path);
      const good = scanSegment(b, seg, isLast, replay);
      if (isLast) tail = good;
      if (good < b.length) {
        d.log(`WAL ${seg.path}: cutting torn tail of ${b.length - good} bytes at offset ${good}`);
        d.truncate(seg.path, good);
      }
    }
    if (segs.length > 0 && tail === 0) {
      // Even the header of the last segment is torn: the crash hit while it
      // was being created, before anything in it could be acknowledged.
      const dead = segs.pop()!;
      fs.rmSync(dead.path);
      d.dirSync(d.walDir);
      if (segs.length > 0) tail = fs.statSync(segs[segs.length - 1]!.path).size;
    }

    d.snaps = listSnapFiles(d.snapDir);
    if (segs.length === 0 && d.snaps.length > 0) {
      throw new RaftError('CORRUPT', `snapshot files in ${d.snapDir} but no WAL in ${d.walDir}`, { file: d.walDir });
    }

    // The newest snapshot the WAL vouches for (see README) that reads back intact.
    let snapshot: Snapshot | undefined;
    for (let i = d.snaps.length - 1; i >= 0; i--) {
      const f = d.snaps[i]!;
      if (f.index > replay.lastIndex()) {
        // Saved but never referenced by a durable record: the save() after it did not happen.
        d.log(`removing snapshot ${f.path}: beyond the WAL (last index ${replay.lastIndex()})`);
        fs.rmSync(f.path, { force: true });
        d.snaps.splice(i, 1);
        continue;
      }
      if (!replay.usable(f.index, f.term)) continue;
      const s = readSnapFile(f);
      if (typeof s === 'string') {
        d.log(`skipping damaged snapshot ${f.path}: ${s}`);
        d.bad.add(f.path);
        continue;
      }
      snapshot = s;
      break;
    }
    const base = snapshot?.metadata.index ?? 0;
    if (!snapshot && !replay.usable(0, 0)) {
      throw new RaftError('CORRUPT',
        `no intact snapshot in ${d.snapDir} fits the WAL in ${d.walDir}, which needs one at index ${replay.prevIndex} or later`,
        { file: d.snapDir });
    }

    const hardState = { ...replay.hardState };
    // A snapshot only ever holds committed state; raft refuses a commit below it.
    if (hardState.commit < base) hardState.commit = base;
    const storage = new MemoryStorage();
    if (snapshot) storage.applySnapshot(snapshot);
    storage.setHardState(hardState);
    storage.append(replay.after(base));

    d.hardState = { ...hardState };
    d.marker = replay.marker;
    d.maxIndex = replay.maxIndex;
    d.segs = segs;
    if (segs.length === 0) {
      d.createSegment(1, 1);
    } else {
      d.fd = fs.openSync(segs[segs.length - 1]!.path, 'r+');
      d.pos = tail;
    }
    const fresh = !snapshot && replay.lastIndex() === 0 && isEmptyHardState(hardState);
    return { disk: d, storage, hardState, snapshot, fresh };
  }

  /**
   * Persist in order: snapshot marker (if snapshot), entries, hardState, as one
   * write; fdatasync if mustSync. Writes the snapshot file first if
   * saveSnapshot() has not already.
   */
  save(hardState: HardState | undefined, entries: Entry[], snapshot: Snapshot | undefined, mustSync: boolean): void {
    this.check();
    const snap = snapshot && !isEmptySnapshot(snapshot) ? snapshot : undefined;
    if (snap && !this.hasSnap(snap.metadata.term, snap.metadata.index)) this.saveSnapshot(snap);

    let size = 0;
    if (snap) size += SNAPSHOT_RECORD_SIZE;
    for (let i = 0; i < entries.length; i++) size += ENTRY_RECORD_OVERHEAD + entries[i]!.data.byteLength;
    if (hardState) size += HARDSTATE_RECORD_SIZE;
    if (size > 0) {
      if (this.pos >= this.segmentBytes && this.pos > HEADER_RECORD_SIZE) this.roll();
      const b = this.buffer(size);
      let off = 0;
      if (snap) off = encodeMarker(b, off, snap.metadata);
      for (let i = 0; i < entries.length; i++) off = encodeEntry(b, off, entries[i]!);
      if (hardState) off = encodeHardState(b, off, hardState);
      this.write(b.subarray(0, off));
      if (b.length > MAX_KEPT_SCRATCH) this.scratch = Buffer.alloc(0);

      if (snap) this.noteMarker({ index: snap.metadata.index, term: snap.metadata.term });
      if (entries.length > 0) this.maxIndex = Math.max(this.maxIndex, entries[entries.length - 1]!.index);
      if (hardState) this.hardState = { ...hardState };
    }
    if (mustSync) this.sync();
  }

  /**
   * Write a snapshot file atomically (for snapshots the application made OR
   * ones received from the leader). Must be called before save() references it.
   */
  saveSnapshot(snap: Snapshot): void {
    this.check();
    if (isEmptySnapshot(snap)) return;
    const { term, index } = snap.metadata;
    if (this.hasSnap(term, index)) return;
    this.noteSnapFile(writeSnapFile(this.snapDir, snap, !this.noSync));
  }

  /**
   * saveSnapshot with the file written off the event loop (a snapshot this
   * node took of its own state, which nothing waits for). Resolves false if
   * the disk was closed meanwhile: the file is then left for open() to judge.
   */
  async saveSnapshotAsync(snap: Snapshot): Promise<boolean> {
    this.check();
    if (isEmptySnapshot(snap)) return true;
    const { term, index } = snap.metadata;
    if (this.hasSnap(term, index)) return true;
    const r = await writeSnapFileAsync(this.snapDir, snap, !this.noSync);
    if (this.closed) return false;
    this.noteSnapFile(r);
    return true;
  }

  private noteSnapFile(r: WrittenSnapFile): void {
    this.bytesWritten += r.bytes;
    this.syncs += r.syncs;
    this.bad.delete(r.file.path);
    this.snaps = this.snaps.filter((f) => f.path !== r.file.path);
    this.snaps.push(r.file);
    this.snaps.sort(compareSnapFiles);
  }

  /**
   * Delete WAL segments and snapshot files no longer needed once a snapshot at
   * `index` is durable. Keeps the newest keepSnapshots snapshot files at or
   * below `index`, and every WAL segment that may hold entries after the
   * oldest of those, so an older snapshot can stand in for a damaged newer one.
   */
  releaseTo(index: number): void {
    this.check();
    const usable = this.snaps.filter((f) => f.index <= index && !this.bad.has(f.path));
    if (usable.length === 0) return;
    const keep = new Set(usable.slice(-this.keepSnapshots));
    const floor = usable[Math.max(0, usable.length - this.keepSnapshots)]!.index;

    // Segment k holds only indexes below segment k+1's firstIndex, so this
    // keeps the entry at `floor` itself: the WAL goes on vouching for it (its
    // term matches the snapshot's), which is how open() accepts the snapshot.
    let n = 0;
    while (n < this.segs.length - 1 && this.segs[n + 1]!.firstIndex <= floor) n++;
    // Oldest first, each deletion made durable before the next: a crash then
    // leaves a shorter but gap-free run of segments.
    for (let i = 0; i < n; i++) {
      fs.rmSync(this.segs[i]!.path, { force: true });
      this.dirSync(this.walDir);
    }
    this.segs = this.segs.slice(n);

    const drop = this.snaps.filter((f) => f.index <= index && !keep.has(f));
    for (const f of drop) {
      fs.rmSync(f.path, { force: true });
      this.bad.delete(f.path);
    }
    if (drop.length > 0) {
      this.snaps = this.snaps.filter((f) => !drop.includes(f));
      this.dirSync(this.snapDir);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.failed === undefined) this.sync();
    } finally {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  /** Bytes written (WAL and snapshot files) and fsync/fdatasync calls so far (for benchmarks). */
  stats(): { bytesWritten: number; syncs: number } {
    return { bytesWritten: this.bytesWritten, syncs: this.syncs };
  }

  private check(): void {
    if (this.closed) throw new RaftError('STOPPED', 'raft disk is closed');
    // After a failed write or fsync the file's state is unknown and retrying
    // fsync can falsely succeed: refuse all further use.
    if (this.failed !== undefined) throw this.failed;
  }

  private hasSnap(term: number, index: number): boolean {
    return this.snaps.some((f) => f.term === term && f.index === index && !this.bad.has(f.path));
  }

  private noteMarker(m: Marker): void {
    if (m.index >= this.marker.index) this.marker = m;
    if (m.index > this.maxIndex) this.maxIndex = m.index;
  }

  private buffer(n: number): Buffer {
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafe(Math.max(n, MIN_SCRATCH, this.scratch.length * 2));
    return this.scratch;
  }

  private write(b: Buffer): void {
    try {
      writeAll(this.fd, b, this.pos);
    } catch (err) {
      this.failed = err;
      throw err;
    }
    this.pos += b.length;
    this.bytesWritten += b.length;
    this.unsynced = true;
  }

  private sync(): void {
    if (!this.unsynced) return;
    this.unsynced = false;
    if (this.noSync) return;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      this.failed = err;
      throw err;
    }
    this.syncs++;
  }

  private dirSync(dir: string): void {
    if (this.noSync) return;
    fsyncDir(dir);
    this.syncs++;
  }

  private truncate(file: string, len: number): void {
    const fd = fs.openSync(file, 'r+');
    try {
      fs.ftruncateSync(fd, len);
      if (!this.noSync) { fs.fsyncSync(fd); this.syncs++; }
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Seals the current segment (durably: replay treats damage in sealed segments as fatal) and starts the next. */
  private roll(): void {
    this.sync();
    try {
      fs.closeSync(this.fd);
      this.fd = -1;
      this.createSegment(this.segs[this.segs.length - 1]!.seq + 1, this.maxIndex + 1);
    } catch (err) {
      this.failed ??= err;
      throw err;
    }
  }

  private createSegment(seq: number, firstIndex: number): void {
    const file = path.join(this.walDir, segmentName(seq, firstIndex));
    const b = Buffer.allocUnsafe(HEADER_RECORD_SIZE);
    encodeHeader(b, 0, { seq, firstIndex, hardState: this.hardState, marker: this.marker });
    // The header carries the current hard state and snapshot marker, so the
    // segments before this one can be deleted without losing them.
    const fd = fs.openSync(file, 'wx');
    this.fd = fd;
    this.segs.push({ seq, firstIndex, path: file });
    this.pos = 0;
    this.write(b);
    this.sync();
    this.dirSync(this.walDir);
  }
}
