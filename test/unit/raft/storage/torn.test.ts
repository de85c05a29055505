// Crash and bit-rot damage to the WAL: torn tails are cut, damage before intact
// data is refused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Entry, HardState } from '../../../../manager/raft/core/types.js';
import { recordEnd } from '../../../../manager/raft/storage/codec.js';
import { RaftDisk } from '../../../../manager/raft/storage/index.js';
import { cleanupTempDirs, ent, ents, logOf, plain, quiet, tempDir, walFiles, withDisk } from './helpers.js';

afterEach(cleanupTempDirs);

type Rec = { kind: 'header' } | { kind: 'entry'; e: Entry } | { kind: 'hs'; hs: HardState };

/** One segment holding: header, 3 entries, hs, 2 entries, 1 entry, hs. Records listed in order. */
function buildWal(): { bytes: Buffer; recs: Rec[]; ends: number[] } {
  const dir = tempDir();
  const hs1 = { term: 1, vote: 1, commit: 2 };
  const hs2 = { term: 2, vote: 1, commit: 5 };
  withDisk(dir, quiet, (r) => {
    r.disk.save(hs1, ents(1, 3, 1, 10), undefined, true);
    r.disk.save(undefined, [ent(4, 2, 12), ent(5, 2, 3)], undefined, true);
    r.disk.save(hs2, [ent(6, 2, 0)], undefined, true);
  });
  const bytes = fs.readFileSync(path.join(dir, 'wal', walFiles(dir)[0]!));
  const recs: Rec[] = [
    { kind: 'header' },
    ...ents(1, 3, 1, 10).map((e) => ({ kind: 'entry' as const, e })),
    { kind: 'hs', hs: hs1 },
    { kind: 'entry', e: ent(4, 2, 12) }, { kind: 'entry', e: ent(5, 2, 3) }, { kind: 'entry', e: ent(6, 2, 0) },
    { kind: 'hs', hs: hs2 },
  ];
  const ends: number[] = [];
  for (let off = 0; off < bytes.length;) ends.push((off = recordEnd(bytes, off)));
  expect(ends.length).toBe(recs.length);
  expect(ends[ends.length - 1]).toBe(bytes.length);
  return { bytes, recs, ends };
}

/** What a replay of the first `n` records must yield. */
function expected(recs: Rec[], n: number): { log: ReturnType<typeof plain>[]; hs: HardState } {
  let hs: HardState = { term: 0, vote: 0, commit: 0 };
  const log: Entry[] = [];
  for (const r of recs.slice(0, n)) {
    if (r.kind === 'entry') log.push(r.e);
    if (r.kind === 'hs') hs = r.hs;
  }
  return { log: log.map(plain), hs };
}

function dirWithSegment(bytes: Uint8Array): { dir: string; file: string } {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'wal'), { recursive: true });
  const file = path.join(dir, 'wal', '0000000000000001-0000000000000001.wal');
  fs.writeFileSync(file, bytes);
  return { dir, file };
}

describe('torn tail of the last segment', () => {
  let wal: ReturnType<typeof buildWal>;
  beforeAll(() => { wal = buildWal(); });
  afterEach(cleanupTempDirs);

  // Cut anywhere inside the last three records (the last two saves), then optionally
  // pad with what a crash may leave in the unwritten part: zeros or stale garbage.
  const pads: { name: string; fill: (n: number) => Buffer }[] = [
    { name: 'cut', fill: () => Buffer.alloc(0) },
    { name: 'cut + zeros', fill: (n) => Buffer.alloc(n, 0) },
    { name: 'cut + 0xff', fill: (n) => Buffer.alloc(n, 0xff) },
  ];
  for (const pad of pads) {
    it(`${pad.name}: every byte offset reopens with exactly the intact prefix`, () => {
      const { bytes, recs, ends } = wal;
      const from = ends[ends.length - 5]!; // end of hs1: the first save is whole in every case
      let checked = 0;
      for (let cut = from; cut < bytes.length; cut++) {
        const good = ends.filter((e) => e <= cut).length;
        const goodLen = ends[good - 1]!;
        const damaged = Buffer.concat([bytes.subarray(0, cut), pad.fill(bytes.length - cut)]);
        const { dir, file } = dirWithSegment(damaged);
        const warnings: string[] = [];
        const opts = { noSync: true, logger: (m: string) => warnings.push(m) };
        const want = expected(recs, good);
        const next = want.log.length + 1;
        withDisk(dir, opts, (r) => {
          expect(logOf(r.storage), `cut at ${cut}`).toEqual(want.log);
          expect(r.hardState).toEqual(want.hs);
          expect(fs.statSync(file).size).toBe(goodLen);
          r.disk.save({ ...want.hs, term: 9 }, [ent(next, 9)], undefined, true);
        });
        if (damaged.length > goodLen) expect(warnings.join('\n')).toContain(`offset ${goodLen}`);
        withDisk(dir, opts, (r) => {
          expect(logOf(r.storage)).toEqual([...want.log, plain(ent(next, 9))]);
          expect(r.hardState.term).toBe(9);
        });
        checked++;
      }
      expect(checked).toBeGreaterThan(80);
    });
  }

  it('a flipped byte anywhere in the last record truncates it', () => {
    const { bytes, recs, ends } = wal;
    const start = ends[ends.length - 2]!;
    for (let at = start; at < bytes.length; at++) {
      const damaged = Buffer.from(bytes);
      damaged[at] = damaged[at]! ^ 0x10;
      const { dir, file } = dirWithSegment(damaged);
      withDisk(dir, quiet, (r) => {
        expect(logOf(r.storage), `flip at ${at}`).toEqual(expected(recs, recs.length - 1).log);
        expect(r.hardState).toEqual(expected(recs, recs.length - 1).hs);
      });
      expect(fs.statSync(file).size).toBe(start);
    }
  });

  it('a flipped byte in the last two records (both bad, nothing valid after) truncates both', () => {
    const { bytes, recs, ends } = wal;
    const damaged = Buffer.from(bytes);
    damaged[ends[ends.length - 3]! + 6] ^= 1;
    damaged[ends[ends.length - 2]! + 6] ^= 1;
    const { dir, file } = dirWithSegment(damaged);
    withDisk(dir, quiet, (r) => expect(logOf(r.storage)).toEqual(expected(recs, recs.length - 2).log));
    expect(fs.statSync(file).size).toBe(ends[ends.length - 3]);
  });
});

describe('damage before intact records', () => {
  let wal: ReturnType<typeof buildWal>;
  beforeAll(() => { wal = buildWal(); });

  // Record-relative positions: length prefix (low and high byte), kind, first body byte, last body byte, checksum.
  const positions: { name: string; at: (start: number, end: number) => number }[] = [
    { name: 'length low byte', at: (s) => s },
    { name: 'length high byte', at: (s) => s + 3 },
    { name: 'kind', at: (s) => s + 4 },
    { name: 'first body byte', at: (s) => s + 5 },
    { name: 'last body byte', at: (_s, e) => e - 5 },
    { name: 'checksum', at: (_s, e) => e - 1 },
  ];
  for (const pos of positions) {
    it(`a flipped ${pos.name} in any middle record is CORRUPT, naming file and offset`, () => {
      const { bytes, ends } = wal;
      for (let r = 0; r < ends.length - 1; r++) {
        const start = r === 0 ? 0 : ends[r - 1]!;
        const damaged = Buffer.from(bytes);
        damaged[pos.at(start, ends[r]!)] ^= 0x01;
        const { dir, file } = dirWithSegment(damaged);
        let err: unknown;
        try {
          RaftDisk.open(dir, quiet).disk.close();
        } catch (e) {
          err = e;
        }
        expect(err, `record ${r}`).toMatchObject({ code: 'CORRUPT' });
        expect((err as Error).message).toContain(file);
        expect((err as Error).message).toContain(`offset ${start}`);
        // Refusing must not have modified the file.
        expect(fs.readFileSync(file).equals(damaged)).toBe(true);
      }
    });
  }

  it('damage in the last record of a sealed (non-last) segment is CORRUPT', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 200 };
    withDisk(dir, opts, (r) => { for (let i = 1; i <= 20; i++) r.disk.save(undefined, [ent(i, 1, 40)], undefined, true); });
    const first = path.join(dir, 'wal', walFiles(dir)[0]!);
    const b = fs.readFileSync(first);
    b[b.length - 3] ^= 0x01;
    fs.writeFileSync(first, b);
    expect(() => RaftDisk.open(dir, opts)).toThrowError(expect.objectContaining({ code: 'CORRUPT' }));
    // And a sealed segment cut short likewise.
    b[b.length - 3] ^= 0x01;
    fs.writeFileSync(first, b.subarray(0, b.length - 10));
    expect(() => RaftDisk.open(dir, opts)).toThrowError(/0000000000000001-0000000000000001\.wal at offset/);
  });
});
