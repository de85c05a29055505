// Seeded random histories (appends, conflicting overwrites, commits, application
// and leader snapshots, releases, torn tails, restarts) checked against a plain
// in-memory model after every restart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry, HardState } from '../../../../manager/raft/core/types.js';
import { RaftDisk, type OpenResult } from '../../../../manager/raft/storage/index.js';
import { cleanupTempDirs, ent, logOf, plain, snap, tempDir, walFiles } from './helpers.js';

afterEach(cleanupTempDirs);

function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296 * n) | 0;
  };
}

describe('random histories match the model across restarts', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}`, () => {
      const rand = rng(seed);
      const dir = tempDir();
      const opts = { noSync: true, logger: () => {}, segmentBytes: 150 + rand(500), keepSnapshots: 1 + rand(3) };
      // Model: entries after `base` (the last leader snapshot), the newest snapshot, the hard state.
      let base = 0;
      let log: Entry[] = [];
      let snapAt = { index: 0, term: 0 };
      let hs: HardState = { term: 1, vote: 1, commit: 0 };
      const last = () => base + log.length;
      const termAt = (i: number) => (i === base ? snapAt.term : log[i - base - 1]!.term);
      const payloadSize = () => (rand(4) === 0 ? 0 : rand(60));

      let r: OpenResult = RaftDisk.open(dir, opts);
      let reopens = 0;
      const check = (ctx: string) => {
        expect(r.snapshot?.metadata.index ?? 0, ctx).toBe(snapAt.index);
        expect(r.snapshot?.metadata.term ?? 0, ctx).toBe(snapAt.term);
        expect(r.hardState, ctx).toEqual(hs);
        expect(logOf(r.storage), ctx).toEqual(log.filter((e) => e.index > snapAt.index).map(plain));
      };
      const reopen = (ctx: string) => {
        r.disk.close();
        r = RaftDisk.open(dir, opts);
        reopens++;
        check(ctx);
      };

      for (let step = 0; step < 400; step++) {
        const op = rand(100);
        const ctx = `seed ${seed} step ${step} op ${op}`;
        if (op < 40) {
          const n = 1 + rand(4);
          const es: Entry[] = [];
          for (let k = 0; k < n; k++) es.push(ent(last() + 1 + k, hs.term, payloadSize()));
          log.push(...es);
          const withHs = rand(2) === 0;
          if (withHs) hs = { ...hs, commit: hs.commit + rand(last() - hs.commit + 1) };
          r.disk.save(withHs ? hs : undefined, es, undefined, true);
        } else if (op < 50) {
          const floor = Math.max(hs.commit, snapAt.index);
          if (last() <= floor) continue;
          const from = floor + 1 + rand(last() - floor);
          hs = { term: hs.term + 1, vote: 1 + rand(3), commit: hs.commit };
          const es: Entry[] = [];
          for (let i = from; i < from + 1 + rand(3); i++) es.push(ent(i, hs.term, payloadSize()));
          log.length = from - base - 1;
          log.push(...es);
          r.disk.save(hs, es, undefined, true);
        } else if (op < 65) {
          hs = { ...hs, commit: hs.commit + rand(last() - hs.commit + 1) };
          r.disk.save(hs, [], undefined, false);
        } else if (op < 75) {
          if (hs.commit <= snapAt.index) continue;
          const idx = snapAt.index + 1 + rand(hs.commit - snapAt.index);
          snapAt = { index: idx, term: termAt(idx) };
          r.disk.saveSnapshot(snap(idx, snapAt.term, rand(200)));
          if (rand(10) < 7) r.disk.releaseTo(idx);
        } else if (op < 80) {
          // The leader sends a snapshot the log does not contain: it replaces the log.
          const idx = hs.commit + 1 + rand(10);
          hs = { term: hs.term + 1, vote: 0, commit: idx };
          snapAt = { index: idx, term: hs.term };
          base = idx;
          log = [];
          const s = snap(idx, hs.term, rand(200));
          if (rand(2) === 0) r.disk.saveSnapshot(s);
          r.disk.save(hs, [], s, true);
        } else if (op < 85) {
          r.disk.releaseTo(snapAt.index);
        } else if (op < 92) {
          reopen(ctx);
        } else {
          // A crash in the middle of the next write: garbage after the last record.
          r.disk.close();
          const files = walFiles(dir);
          const junk = Buffer.alloc(1 + rand(40));
          for (let i = 0; i < junk.length; i++) junk[i] = rand(3) === 0 ? 0 : rand(256);
          fs.appendFileSync(path.join(dir, 'wal', files[files.length - 1]!), junk);
          r = RaftDisk.open(dir, opts);
          check(`${ctx} (torn)`);
        }
      }
      reopen(`seed ${seed} end`);
      r.disk.close();
      expect(reopens).toBeGreaterThan(10);
    });
  }
});
