// The log storage the core reads from. The core never writes to it: the driver
// appends what a Ready hands out (after making it durable) and compacts it.
import { errCompacted, errSnapOutOfDate, errUnavailable, RaftError } from './errors.js';
import type { ConfState, Entry, HardState, Snapshot } from './types.js';
import { entrySize } from './types.js';

export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if any exist, capped near maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  term(index: number): number;
  lastIndex(): number;
  firstIndex(): number;
  snapshot(): Snapshot;
}

export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]!);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/**
 * Log entries in memory after the last snapshot. ents[0] is a dummy holding
 * the snapshot's index and term, so term(snapshot index) still answers.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };
  private ents: Entry[] = [{ term: 0, index: 0, type: 0, data: new Uint8Array(0) }];

  initialState() {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  getHardState(): HardState {
    return { ...this.hardState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw errCompacted();
    if (hi > this.lastIndex() + 1) {
      throw new RaftError('UNAVAILABLE', `entries hi ${hi} is out of bound lastindex ${this.lastIndex()}`);
    }
    if (this.ents.length === 1) throw errUnavailable();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw errCompacted();
    if (i - offset >= this.ents.length) throw errUnavailable();
    return this.ents[i - offset]!.term;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace the whole log with a snapshot (a follower receiving InstallSnapshot, or a restart). */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw errSnapOutOfDate();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 0, data: new Uint8Array(0) }];
  }

  /**
   * Record a snapshot the application made at `index` (<= applied) so the log
   * before it can be compacted.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw errSnapOutOfDate();
    if (index > this.lastIndex()) {
      throw new RaftError('UNAVAILABLE', `snapshot index ${index} is out of bound lastindex ${this.lastIndex()}`);
    }
    const term = this.term(index);
    this.snap = { metadata: { index, term, confState }, data };
    return this.snap;
  }

  /** Drop entries before compactIndex; the entry at compactIndex becomes the dummy. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) throw errCompacted();
    if (compactIndex > this.lastIndex()) {
      throw new RaftError('UNAVAILABLE', `compact ${compactIndex} is out of bound lastindex ${this.lastIndex()}`);
    }
    const i = compactIndex - offset;
    const dummy = this.ents[i]!;
    this.ents = [{ term: dummy.term, index: dummy.index, type: 0, data: new Uint8Array(0) }, ...this.ents.slice(i + 1)];
  }

  /** Append entries; entries overlapping the existing log replace its tail. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // all compacted already
    if (first > entries[0]!.index) entries = entries.slice(first - entries[0]!.index);
    const offset = entries[0]!.index - this.ents[0]!.index;
    if (offset > this.ents.length) {
      throw new RaftError('UNAVAILABLE', `missing log entry [last: ${this.lastIndex()}, append at: ${entries[0]!.index}]`);
    }
    if (offset < this.ents.length) this.ents.length = offset;
    for (const e of entries) this.ents.push(e);
  }
}

/**
 * The state every member of a brand-new cluster starts from: a snapshot at
 * index 1 holding the initial voters and the application's empty state.
 * Members added later receive it (or a newer one) from the leader, so the
 * configuration is always known from a snapshot plus the log after it.
 */
export function bootstrapSnapshot(voters: number[], data: Uint8Array): Snapshot {
  return { metadata: { index: 1, term: 1, confState: { voters: [...voters].sort((a, b) => a - b), learners: [] } }, data };
}
