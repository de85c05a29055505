// MemoryStorage: the log the core reads, as the driver writes and compacts it.
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RaftError, entrySize, type Entry } from '../../../../manager/raft/core/index.js';
import { limitSize } from '../../../../manager/raft/core/storage.js';
import { ent } from './harness.js';

const CS = { voters: [1, 2, 3], learners: [] };

/** Snapshot at (3, 3), then entries 4@4 and 5@5: the dummy entry is 3@3. */
function storage345(): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({ metadata: { index: 3, term: 3, confState: CS }, data: new Uint8Array(0) });
  s.append([ent(4, 4), ent(5, 5)]);
  return s;
}

function terms(s: MemoryStorage): string[] {
  if (s.lastIndex() < s.firstIndex()) return [];
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => `${e.index}@${e.term}`);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(RaftError);
    return (e as RaftError).code;
  }
}

describe('MemoryStorage', () => {
  it.each<{ name: string; append: Entry[]; error?: string; after: string[] }>([
    { name: 'the same entries again', append: [ent(3, 3), ent(4, 4), ent(5, 5)], after: ['4@4', '5@5'] },
    { name: 'a conflicting overwrite from the first index', append: [ent(3, 3), ent(4, 6), ent(5, 6)], after: ['4@6', '5@6'] },
    { name: 'an extension', append: [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)], after: ['4@4', '5@5', '6@5'] },
    { name: 'an overwrite starting before the snapshot', append: [ent(2, 3), ent(3, 3), ent(4, 5)], after: ['4@5'] },
    { name: 'an overwrite of the tail only', append: [ent(5, 6)], after: ['4@4', '5@6'] },
    { name: 'a direct append', append: [ent(6, 5)], after: ['4@4', '5@5', '6@5'] },
    { name: 'entries already compacted', append: [ent(1, 1), ent(2, 2)], after: ['4@4', '5@5'] },
    { name: 'nothing', append: [], after: ['4@4', '5@5'] },
    { name: 'a gap after the last index', append: [ent(7, 5)], error: 'UNAVAILABLE', after: ['4@4', '5@5'] },
  ])('append $name', ({ append, error, after }) => {
    const s = storage345();
    expect(codeOf(() => s.append(append))).toBe(error);
    expect(terms(s)).toEqual(after);
    expect(s.firstIndex()).toBe(4);
  });

  it.each([
    { index: 2, error: 'COMPACTED', first: 4, term: 3 },
    { index: 3, error: 'COMPACTED', first: 4, term: 3 },
    { index: 4, error: undefined, first: 5, term: 4 },
    { index: 5, error: undefined, first: 6, term: 5 },
    { index: 6, error: 'UNAVAILABLE', first: 4, term: 3 },
  ])('compact($index): error=$error, first index then $first', ({ index, error, first, term }) => {
    const s = storage345();
    expect(codeOf(() => s.compact(index))).toBe(error);
    expect(s.firstIndex()).toBe(first);
    expect(s.lastIndex()).toBe(5);
    // The entry at the compaction point stays answerable for its term.
    expect(s.term(first - 1)).toBe(term);
    expect(codeOf(() => s.term(first - 2))).toBe('COMPACTED');
  });

  it.each([
    { index: 4, error: undefined, term: 4 },
    { index: 5, error: undefined, term: 5 },
    { index: 3, error: 'SNAPSHOT_OUT_OF_DATE', term: 3 },
    { index: 6, error: 'UNAVAILABLE', term: 3 },
  ])('createSnapshot($index): error=$error', ({ index, error, term }) => {
    const s = storage345();
    const data = new Uint8Array([index]);
    expect(codeOf(() => s.createSnapshot(index, CS, data))).toBe(error);
    const snap = s.snapshot();
    expect(snap.metadata.term).toBe(term);
    if (!error) {
      expect(snap.metadata).toEqual({ index, term, confState: CS });
      expect(snap.data).toEqual(data);
      // Creating a snapshot does not compact by itself.
      expect(s.firstIndex()).toBe(4);
      expect(s.initialState().confState).toEqual(CS);
    }
  });

  it.each([
    { index: 2, error: 'SNAPSHOT_OUT_OF_DATE' },
    { index: 3, error: 'SNAPSHOT_OUT_OF_DATE' },
    { index: 4, error: undefined },
    { index: 10, error: undefined },
  ])('applySnapshot at $index over one at 3: error=$error', ({ index, error }) => {
    const s = storage345();
    const cs = { voters: [1, 2], learners: [3] };
    expect(codeOf(() => s.applySnapshot({ metadata: { index, term: 7, confState: cs }, data: new Uint8Array(0) }))).toBe(error);
    if (error) {
      expect(s.snapshot().metadata.index).toBe(3);
      expect(terms(s)).toEqual(['4@4', '5@5']);
    } else {
      // The whole log is replaced by the snapshot.
      expect(s.firstIndex()).toBe(index + 1);
      expect(s.lastIndex()).toBe(index);
      expect(s.term(index)).toBe(7);
      expect(s.initialState().confState).toEqual(cs);
    }
  });

  // Entries 4, 5, 6 of 24 bytes each (empty payload) after the dummy at 3.
  it.each([
    { lo: 4, hi: 7, max: Number.MAX_SAFE_INTEGER, error: undefined, got: [4, 5, 6] },
    { lo: 4, hi: 7, max: 0, error: undefined, got: [4] }, // always at least one
    { lo: 4, hi: 7, max: 24, error: undefined, got: [4] },
    { lo: 4, hi: 7, max: 47, error: undefined, got: [4] },
    { lo: 4, hi: 7, max: 48, error: undefined, got: [4, 5] },
    { lo: 4, hi: 7, max: 72, error: undefined, got: [4, 5, 6] },
    { lo: 5, hi: 6, max: 0, error: undefined, got: [5] },
    { lo: 4, hi: 4, max: 100, error: undefined, got: [] },
    { lo: 2, hi: 6, max: 100, error: 'COMPACTED', got: [] },
    { lo: 3, hi: 6, max: 100, error: 'COMPACTED', got: [] },
    { lo: 4, hi: 8, max: 100, error: 'UNAVAILABLE', got: [] },
  ])('entries($lo, $hi, max $max)', ({ lo, hi, max, error, got }) => {
    const s = storage345();
    s.append([ent(6, 6)]);
    expect(entrySize(ent(4, 4))).toBe(24);
    let out: Entry[] = [];
    expect(codeOf(() => { out = s.entries(lo, hi, max); })).toBe(error);
    expect(out.map((e) => e.index)).toEqual(got);
  });

  it.each([
    { index: 2, error: 'COMPACTED', term: 0 },
    { index: 3, error: undefined, term: 3 },
    { index: 5, error: undefined, term: 5 },
    { index: 6, error: 'UNAVAILABLE', term: 0 },
  ])('term($index)', ({ index, error, term }) => {
    const s = storage345();
    let t = 0;
    expect(codeOf(() => { t = s.term(index); })).toBe(error);
    expect(t).toBe(term);
  });

  it('a fresh storage is empty with first index 1 and a zero hard state', () => {
    const s = new MemoryStorage();
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(0);
    expect(s.term(0)).toBe(0);
    expect(s.initialState().hardState).toEqual({ term: 0, vote: 0, commit: 0 });
    s.setHardState({ term: 3, vote: 2, commit: 0 });
    expect(s.initialState().hardState).toEqual({ term: 3, vote: 2, commit: 0 });
  });

  it.each([
    { sizes: [10, 10, 10], max: 68, keep: 2 }, // 34 + 34 = 68 fits exactly
    { sizes: [10, 10, 10], max: 67, keep: 1 },
    { sizes: [100], max: 1, keep: 1 },
    { sizes: [], max: 1, keep: 0 },
  ])('limitSize($sizes, $max) keeps $keep', ({ sizes, max, keep }) => {
    const ents = sizes.map((n, i) => ent(i + 1, 1, new Uint8Array(n)));
    expect(limitSize(ents, max)).toHaveLength(keep);
  });
});
