// Reading the write-ahead log back: segment discovery, record scanning with
// torn-tail detection, and replay of records into a log.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RaftError } from '../core/errors.js';
import type { Entry, HardState } from '../core/types.js';
import {
  bodyProblem, decodeEntry, decodeHardState, decodeHeader, decodeMarker,
  KIND_ENTRY, KIND_HARDSTATE, KIND_HEADER, KIND_SNAPSHOT, type Marker, MIN_LEN, recordEnd,
} from './codec.js';
import { hex16 } from './fsutil.js';

const SEG_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export interface Segment {
  seq: number;
  /**
   * One past the highest index (entry or snapshot marker) written to any
   * earlier segment, so every earlier segment holds only indexes below it.
   */
  firstIndex: number;
  path: string;
}

export function segmentName(seq: number, firstIndex: number): string {
  return `${hex16(seq)}-${hex16(firstIndex)}.wal`;
}

export function corrupt(file: string, offset: number, why: string): RaftError {
  return new RaftError('CORRUPT', `WAL ${file} at offset ${offset}: ${why}`, { file, offset });
}

/** Segments in `dir` by sequence number; a gap in the sequence means lost data. */
export function listSegments(dir: string): Segment[] {
  const segs: Segment[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = SEG_RE.exec(name);
    if (m) segs.push({ seq: parseInt(m[1]!, 16), firstIndex: parseInt(m[2]!, 16), path: path.join(dir, name) });
  }
  segs.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segs.length; i++) {
    if (segs[i]!.seq !== segs[i - 1]!.seq + 1) {
      throw new RaftError('CORRUPT', `WAL segment ${segs[i - 1]!.seq + 1} is missing before ${segs[i]!.path}`, { file: segs[i]!.path });
    }
  }
  return segs;
}

/** True if an intact record starts anywhere in b[from..]. Only runs on the (rare) damaged-tail path. */
function validRecordAfter(b: Buffer, from: number): boolean {
  for (let p = from; p + 4 + MIN_LEN + 4 <= b.length; p++) {
    // Cheap filters first so long runs of zeros or garbage cost no checksum.
    const len = b.readUInt32LE(p);
    if (len < MIN_LEN || len > b.length - p - 8) continue;
    if (recordEnd(b, p) >= 0) return true;
  }
  return false;
}

const UNKNOWN = -1;

/**
 * Rebuilds the log from records in WAL order. It keeps every entry after
 * `prev` (even ones below later snapshot markers) so open() can fall back to
 * an older snapshot when the newest snapshot file is damaged.
 */
export class Replay {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  /** Entries prev.index+1 ... contiguous. */
  ents: Entry[] = [];
  /** The point the log hangs off: a snapshot (term known) or, after a gap, the index before it (term UNKNOWN). */
  prevIndex = 0;
  prevTerm = 0;
  /** Latest snapshot marker seen. */
  marker: Marker = { index: 0, term: 0 };
  /** Highest index any record mentioned: the next segment's firstIndex is one past it. */
  maxIndex = 0;
  private started = false;

  header(firstIndex: number, hs: HardState, m: Marker): void {
    if (!this.started) {
      // Earliest surviving segment: it carries the state older segments (maybe released) established.
      this.started = true;
      this.hardState = hs;
      this.prevIndex = m.index;
      this.prevTerm = m.term;
      this.marker = m;
      this.maxIndex = Math.max(firstIndex - 1, m.index);
      return;
    }
    this.hardState = hs;
    this.snapshotMarker(m);
  }

  entry(e: Entry): void {
    if (e.index > this.maxIndex) this.maxIndex = e.index;
    const n = this.ents.length;
    const first = this.prevIndex + 1;
    if (e.index === first + n) {
      this.ents.push(e);
    } else if (e.index > first + n) {
      this.restartAt(e); // a gap: only a snapshot at or after e.index-1 can anchor what follows
    } else if (e.index >= first) {
      this.ents.length = e.index - first; // a follower's conflicting suffix being replaced
      this.ents.push(e);
    } else if (this.prevTerm === UNKNOWN) {
      this.restartAt(e); // overwrite reaching below a gap: honour it, the log now starts here
    }
    // else: at or below a snapshot, i.e. committed: nothing can change there (MemoryStorage ignores it too).
  }

  private restartAt(e: Entry): void {
    this.ents.length = 0;
    this.prevIndex = e.index - 1;
    this.prevTerm = UNKNOWN;
    this.ents.push(e);
  }

  snapshotMarker(m: Marker): void {
    if (m.index > this.maxIndex) this.maxIndex = m.index;
    if (m.index >= this.marker.index) this.marker = m;
    if (m.index < this.prevIndex) return; // older than what the log already hangs off
    if (m.index === this.prevIndex) {
      if (this.prevTerm === UNKNOWN) { this.prevTerm = m.term; return; }
      if (this.prevTerm === m.term) return;
    } else if (this.termAt(m.index) === m.term) {
      // The log holds the snapshot's last entry, so by log matching it agrees
      // with the snapshot: a compaction point. Entries after it stay.
      return;
    }
    // The log does not contain the snapshot's point: a snapshot from the
    // leader replaced the whole log, as MemoryStorage.applySnapshot does.
    this.ents.length = 0;
    this.prevIndex = m.index;
    this.prevTerm = m.term;
  }

  /** Term of the log at `index`, or UNKNOWN. */
  termAt(index: number): number {
    if (index === this.prevIndex) return this.prevTerm;
    const i = index - this.prevIndex - 1;
    return i >= 0 && i < this.ents.length ? this.ents[i]!.term : UNKNOWN;
  }

  lastIndex(): number {
    return this.prevIndex + this.ents.length;
  }

  /** Whether a snapshot (index, term) can serve as the base of the replayed log. */
  usable(index: number, term: number): boolean {
    return index >= this.prevIndex && this.termAt(index) === term;
  }

  /** The entries after `index` (which must be usable). */
  after(index: number): Entry[] {
    return this.ents.slice(index - this.prevIndex);
  }
}

/**
 * Feeds one segment's records to `replay`. Returns the length of the intact
 * prefix; shorter than the buffer only for the last segment with a torn tail.
 * Damage anywhere else throws CORRUPT.
 */
export function scanSegment(b: Buffer, seg: Segment, isLast: boolean, replay: Replay): number {
  let off = 0;
  while (off < b.length) {
    const end = recordEnd(b, off);
    if (end < 0) {
      if (!isLast) throw corrupt(seg.path, off, 'damaged record in a sealed segment');
      // A crash mid-write leaves a short or garbled tail with nothing valid
      // after it. Valid records after the damage mean acknowledged data was
      // hit (bit rot, a bad disk): refuse rather than silently drop them.
      if (validRecordAfter(b, off + 1)) throw corrupt(seg.path, off, 'damaged record followed by intact records');
      return off;
    }
    const problem = bodyProblem(b, off, end);
    if (problem) throw corrupt(seg.path, off, problem);
    const kind = b[off + 4];
    if ((off === 0) !== (kind === KIND_HEADER)) {
      throw corrupt(seg.path, off, off === 0 ? 'segment does not start with a header' : 'header record inside a segment');
    }
    switch (kind) {
      case KIND_HEADER: {
        const h = decodeHeader(b, off);
        if (h.seq !== seg.seq || h.firstIndex !== seg.firstIndex) {
          throw corrupt(seg.path, off, `header says segment ${h.seq} from index ${h.firstIndex}, file name disagrees`);
        }
        replay.header(h.firstIndex, h.hardState, h.marker);
        break;
      }
      case KIND_ENTRY:
        replay.entry(decodeEntry(b, off, end));
        break;
      case KIND_HARDSTATE:
        replay.hardState = decodeHardState(b, off);
        break;
      case KIND_SNAPSHOT:
        replay.snapshotMarker(decodeMarker(b, off));
        break;
    }
    off = end;
  }
  if (off === 0 && !isLast) throw corrupt(seg.path, 0, 'sealed segment is empty');
  return off;
}
