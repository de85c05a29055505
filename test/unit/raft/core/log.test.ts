// RaftLog: the stable + unstable log, conflict detection and the commit rule.
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RaftError } from '../../../../manager/raft/core/index.js';
import { RaftLog } from '../../../../manager/raft/core/log.js';
import { ent } from './harness.js';

/** A log whose entries 1..n have the given terms, all stable, committed up to `commit`. */
function logOf(terms: number[], commit = 0): RaftLog {
  const s = new MemoryStorage();
  s.append(terms.map((t, i) => ent(i + 1, t)));
  const l = new RaftLog(s, Number.MAX_SAFE_INTEGER);
  l.committed = commit;
  return l;
}

const termsOf = (l: RaftLog) => l.allEntries().map((e) => e.term);

describe('RaftLog', () => {
  // Log terms: [1, 2, 2, 4, 4, 4, 5]
  it.each([
    { index: 7, term: 5, hint: 7 },
    { index: 7, term: 4, hint: 6 },
    { index: 7, term: 3, hint: 3 },
    { index: 7, term: 1, hint: 1 },
    { index: 7, term: 0, hint: 0 },
    { index: 5, term: 3, hint: 3 },
    { index: 9, term: 1, hint: 9 }, // past the end: nothing to say
  ])('findConflictByTerm($index, $term) = $hint', ({ index, term, hint }) => {
    expect(logOf([1, 2, 2, 4, 4, 4, 5]).findConflictByTerm(index, term)).toBe(hint);
  });

  // Log: last index 3, last term 2.
  it.each([
    { lastIndex: 2, term: 3, ok: true },
    { lastIndex: 3, term: 3, ok: true },
    { lastIndex: 4, term: 3, ok: true },
    { lastIndex: 2, term: 2, ok: false },
    { lastIndex: 3, term: 2, ok: true },
    { lastIndex: 4, term: 2, ok: true },
    { lastIndex: 9, term: 1, ok: false },
  ])('isUpToDate(lastIndex $lastIndex, term $term) = $ok', ({ lastIndex, term, ok }) => {
    expect(logOf([1, 2, 2]).isUpToDate(lastIndex, term)).toBe(ok);
  });

  // Log terms [1, 2, 3], committed 1.
  it.each([
    { name: 'mismatching previous term', index: 3, logTerm: 2, ents: [ent(4, 4)], commit: 3, result: undefined, terms: [1, 2, 3], committed: 1 },
    { name: 'previous index past the end', index: 4, logTerm: 3, ents: [ent(5, 4)], commit: 3, result: undefined, terms: [1, 2, 3], committed: 1 },
    { name: 'heartbeat-like, no entries', index: 3, logTerm: 3, ents: [], commit: 3, result: 3, terms: [1, 2, 3], committed: 3 },
    { name: 'commit capped by the last new entry', index: 1, logTerm: 1, ents: [ent(2, 2)], commit: 3, result: 2, terms: [1, 2, 3], committed: 2 },
    { name: 'extension', index: 3, logTerm: 3, ents: [ent(4, 3), ent(5, 3)], commit: 4, result: 5, terms: [1, 2, 3, 3, 3], committed: 4 },
    { name: 'conflict truncates the suffix', index: 1, logTerm: 1, ents: [ent(2, 4)], commit: 1, result: 2, terms: [1, 4], committed: 1 },
    { name: 'already-present entries are not rewritten', index: 1, logTerm: 1, ents: [ent(2, 2), ent(3, 3)], commit: 0, result: 3, terms: [1, 2, 3], committed: 1 },
  ])('maybeAppend: $name', ({ index, logTerm, ents, commit, result, terms, committed }) => {
    const l = logOf([1, 2, 3], 1);
    expect(l.maybeAppend(index, logTerm, commit, ents)).toBe(result);
    expect(termsOf(l)).toEqual(terms);
    expect(l.committed).toBe(committed);
  });

  it('refuses to overwrite a committed entry', () => {
    const l = logOf([1, 2, 3], 2);
    expect(() => l.maybeAppend(1, 1, 2, [ent(2, 5)])).toThrow(RaftError);
  });

  // Log terms [1, 1, 2, 3], committed 1.
  it.each([
    { maxIndex: 4, term: 3, committed: 4, ok: true },
    { maxIndex: 3, term: 3, committed: 1, ok: false }, // entry 3 is of term 2: counting replicas is not enough
    { maxIndex: 2, term: 1, committed: 2, ok: true },
    { maxIndex: 1, term: 1, committed: 1, ok: false }, // not beyond the commit index
  ])('maybeCommit($maxIndex, term $term): $ok', ({ maxIndex, term, committed, ok }) => {
    const l = logOf([1, 1, 2, 3], 1);
    expect(l.maybeCommit(maxIndex, term)).toBe(ok);
    expect(l.committed).toBe(committed);
  });

  it('unstable entries become stable only if the persisted (index, term) still matches', () => {
    const l = logOf([1, 1]);
    l.append([ent(3, 2), ent(4, 2)]);
    expect(l.unstableEntries().map((e) => e.index)).toEqual([3, 4]);
    // Meanwhile the tail was replaced by a newer leader's entry at index 4.
    l.append([ent(4, 3)]);
    l.stableTo(4, 2); // the driver reports the old write: ignored
    expect(l.unstableEntries().map((e) => `${e.index}@${e.term}`)).toEqual(['3@2', '4@3']);
    l.stableTo(3, 2);
    expect(l.unstableEntries().map((e) => `${e.index}@${e.term}`)).toEqual(['4@3']);
    l.stableTo(4, 3);
    expect(l.unstableEntries()).toEqual([]);
  });

  it('nextEnts hands out committed entries after applied, capped in size', () => {
    const s = new MemoryStorage();
    s.append([1, 2, 3, 4].map((i) => ent(i, 1, new Uint8Array(100))));
    const l = new RaftLog(s, 250); // two entries of 124 bytes fit
    l.committed = 4;
    expect(l.nextEnts().map((e) => e.index)).toEqual([1, 2]);
    l.appliedTo(2);
    expect(l.nextEnts().map((e) => e.index)).toEqual([3, 4]);
    l.appliedTo(4);
    expect(l.hasNextEnts()).toBe(false);
    expect(() => l.appliedTo(5)).toThrow(RaftError);
  });
});
