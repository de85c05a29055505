import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType } from '../../../../manager/raft/core/types.js';
import { crc32, crc32Js } from '../../../../manager/raft/storage/crc.js';
import { measureFdatasync, RaftDisk } from '../../../../manager/raft/storage/index.js';
import {
  cleanupTempDirs, ent, ents, logOf, plain, quiet, snap, snapFiles, tempDir, walFiles, withDisk,
} from './helpers.js';

afterEach(cleanupTempDirs);

function flipByte(file: string, offset: number): void {
  const b = fs.readFileSync(file);
  b[offset] = b[offset]! ^ 0x40;
  fs.writeFileSync(file, b);
}

describe('crc32', () => {
  it('the JS version matches zlib.crc32 for every length, offset and seed', () => {
    const b = new Uint8Array(1100).map((_, i) => (i * 131 + 17) & 0xff);
    for (let len = 0; len <= 1000; len += len < 40 ? 1 : 97) {
      for (const start of [0, 3]) {
        const view = b.subarray(start, start + len);
        expect(crc32Js(b, start, start + len)).toBe(zlib.crc32(view));
        expect(crc32Js(b, start, start + len, 0x12345678)).toBe(zlib.crc32(view, 0x12345678));
        expect(crc32(b, start, start + len)).toBe(zlib.crc32(view));
      }
    }
    expect(crc32Js(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe('RaftDisk basics', () => {
  it('creates a fresh node and stays fresh until something is saved', () => {
    const dir = path.join(tempDir(), 'does', 'not', 'exist');
    withDisk(dir, quiet, (r) => {
      expect(r.fresh).toBe(true);
      expect(r.snapshot).toBeUndefined();
      expect(r.hardState).toEqual({ term: 0, vote: 0, commit: 0 });
      expect(logOf(r.storage)).toEqual([]);
    });
    expect(walFiles(dir)).toEqual(['0000000000000001-0000000000000001.wal']);
    withDisk(dir, quiet, (r) => expect(r.fresh).toBe(true));
    withDisk(dir, quiet, (r) => r.disk.save({ term: 1, vote: 1, commit: 0 }, [], undefined, true));
    withDisk(dir, quiet, (r) => expect(r.fresh).toBe(false));
  });

  it('round-trips hard state, entries and a snapshot across reopen', () => {
    const dir = tempDir();
    const first = [...ents(1, 9, 1, 20), { index: 10, term: 1, type: EntryType.ConfChange, data: new Uint8Array(0) }];
    withDisk(dir, {}, (r) => r.disk.save({ term: 1, vote: 2, commit: 8 }, first, undefined, true));
    withDisk(dir, {}, (r) => {
      expect(r.fresh).toBe(false);
      expect(r.hardState).toEqual({ term: 1, vote: 2, commit: 8 });
      expect(r.storage.initialState().hardState).toEqual({ term: 1, vote: 2, commit: 8 });
      expect(logOf(r.storage)).toEqual(first.map(plain));
      // A snapshot from the leader that the log does not contain replaces the whole log.
      const s = snap(20, 3, 1000, [1, 2, 5], [7, 9]);
      r.disk.saveSnapshot(s);
      r.disk.save({ term: 3, vote: 0, commit: 20 }, [], s, true);
    });
    withDisk(dir, {}, (r) => {
      expect(r.snapshot?.metadata).toEqual({ index: 20, term: 3, confState: { voters: [1, 2, 5], learners: [7, 9] } });
      expect(Array.from(r.snapshot!.data)).toEqual(Array.from(snap(20, 3, 1000).data));
      expect(r.storage.snapshot().metadata.index).toBe(20);
      expect(r.storage.initialState().confState).toEqual({ voters: [1, 2, 5], learners: [7, 9] });
      expect(r.storage.firstIndex()).toBe(21);
      expect(r.storage.lastIndex()).toBe(20);
      expect(r.storage.term(20)).toBe(3);
      expect(r.hardState).toEqual({ term: 3, vote: 0, commit: 20 });
      r.disk.save({ term: 3, vote: 0, commit: 22 }, ents(21, 25, 3), undefined, true);
    });
    withDisk(dir, {}, (r) => {
      expect(r.snapshot?.metadata.index).toBe(20);
      expect(logOf(r.storage)).toEqual(ents(21, 25, 3).map(plain));
      expect(r.hardState.commit).toBe(22);
    });
  });

  it('keeps 64-bit terms and indexes near 2^53 and multi-MiB snapshot data exact', () => {
    const dir = tempDir();
    const big = Number.MAX_SAFE_INTEGER - 10;
    const s = snap(big, 2 ** 40 + 3, 5 * 1024 * 1024, [2 ** 52 + 1, 1], [2 ** 33]);
    withDisk(dir, quiet, (r) => {
      r.disk.save({ term: 2 ** 40 + 3, vote: 2 ** 52 + 1, commit: big }, [], s, true);
      r.disk.save(undefined, [ent(big + 1, 2 ** 40 + 3), ent(big + 2, 2 ** 40 + 3)], undefined, true);
    });
    withDisk(dir, quiet, (r) => {
      expect(r.snapshot!.metadata).toEqual(s.metadata);
      expect(Buffer.from(r.snapshot!.data).equals(Buffer.from(s.data))).toBe(true);
      expect(r.hardState).toEqual({ term: 2 ** 40 + 3, vote: 2 ** 52 + 1, commit: big });
      expect(logOf(r.storage)).toEqual([ent(big + 1, 2 ** 40 + 3), ent(big + 2, 2 ** 40 + 3)].map(plain));
    });
  });

  it('writes one batch of 256 entries of 256 bytes with one fdatasync', () => {
    const dir = tempDir();
    withDisk(dir, {}, (r) => {
      const before = r.disk.stats();
      r.disk.save({ term: 1, vote: 1, commit: 0 }, ents(1, 256, 1, 256), undefined, true);
      const after = r.disk.stats();
      expect(after.syncs - before.syncs).toBe(1);
      expect(after.bytesWritten - before.bytesWritten).toBe(256 * (26 + 256) + 33);
      // Nothing new to write and nothing unsynced: no further fdatasync.
      r.disk.save(undefined, [], undefined, true);
      expect(r.disk.stats().syncs).toBe(after.syncs);
      // mustSync false leaves it to a later save (or close) to sync.
      r.disk.save({ term: 1, vote: 1, commit: 5 }, [], undefined, false);
      expect(r.disk.stats().syncs).toBe(after.syncs);
      r.disk.save(undefined, [ent(257, 1)], undefined, true);
      expect(r.disk.stats().syncs).toBe(after.syncs + 1);
    });
  });

  it('refuses use after close', () => {
    const { disk } = RaftDisk.open(tempDir(), quiet);
    disk.close();
    disk.close();
    expect(() => disk.save(undefined, [ent(1, 1)], undefined, true)).toThrowError(expect.objectContaining({ code: 'STOPPED' }));
  });

  it('rejects bad options', () => {
    expect(() => RaftDisk.open(tempDir(), { keepSnapshots: 0 })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });
});

describe('overwriting a log suffix', () => {
  type Run = [from: number, to: number, term: number];
  const cases: { name: string; writes: Run[]; want: Run[] }[] = [
    { name: 'replace the tail', writes: [[1, 10, 1], [6, 8, 2]], want: [[1, 5, 1], [6, 8, 2]] },
    { name: 'replace from the first entry', writes: [[1, 5, 1], [1, 3, 2]], want: [[1, 3, 2]] },
    { name: 'replace only the last entry', writes: [[1, 5, 1], [5, 5, 2]], want: [[1, 4, 1], [5, 5, 2]] },
    { name: 'replace then extend', writes: [[1, 10, 1], [4, 4, 2], [5, 12, 3]], want: [[1, 3, 1], [4, 4, 2], [5, 12, 3]] },
    { name: 'repeated conflicts', writes: [[1, 6, 1], [3, 9, 2], [5, 5, 3], [4, 7, 4]], want: [[1, 2, 1], [3, 3, 2], [4, 7, 4]] },
  ];
  for (const segmentBytes of [64 * 1024 * 1024, 200]) {
    for (const c of cases) {
      it(`${c.name} (segmentBytes ${segmentBytes})`, () => {
        const dir = tempDir();
        const opts = { ...quiet, segmentBytes };
        for (const [from, to, term] of c.writes) {
          // One save per reopen, so overwrites also land in later segments than the entries they replace.
          withDisk(dir, opts, (r) => r.disk.save({ term, vote: 1, commit: 0 }, ents(from, to, term, 30), undefined, true));
        }
        const want = c.want.flatMap(([from, to, term]) => ents(from, to, term, 30)).map(plain);
        withDisk(dir, opts, (r) => expect(logOf(r.storage)).toEqual(want));
        if (segmentBytes === 200) expect(walFiles(dir).length).toBeGreaterThan(1);
      });
    }
  }
});

describe('segments', () => {
  it('rolls over at the configured size and replays across segments', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 512 };
    const all = ents(1, 300, 2, 40);
    withDisk(dir, opts, (r) => {
      for (let i = 0; i < all.length; i += 3) r.disk.save({ term: 2, vote: 1, commit: i }, all.slice(i, i + 3), undefined, true);
      // A batch larger than a segment still goes into one segment, in one write.
      r.disk.save(undefined, ents(301, 330, 2, 100), undefined, true);
    });
    const files = walFiles(dir);
    expect(files.length).toBeGreaterThan(20);
    const firsts = files.map((f) => parseInt(f.split('-')[1]!, 16));
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
    for (const f of files.slice(0, -2)) expect(fs.statSync(path.join(dir, 'wal', f)).size).toBeLessThan(512 + 3 * 66 + 33);
    withDisk(dir, opts, (r) => {
      expect(logOf(r.storage)).toEqual([...all, ...ents(301, 330, 2, 100)].map(plain));
      expect(r.hardState.commit).toBe(297);
    });
  });

  it('a missing segment in the middle is CORRUPT', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 256 };
    withDisk(dir, opts, (r) => { for (let i = 1; i <= 40; i++) r.disk.save(undefined, [ent(i, 1, 40)], undefined, true); });
    fs.rmSync(path.join(dir, 'wal', walFiles(dir)[2]!));
    expect(() => RaftDisk.open(dir, opts)).toThrowError(expect.objectContaining({ code: 'CORRUPT' }));
  });

  it('an empty sealed segment, or one whose header disagrees with its name, is CORRUPT', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 256 };
    withDisk(dir, opts, (r) => { for (let i = 1; i <= 20; i++) r.disk.save(undefined, [ent(i, 1, 40)], undefined, true); });
    const files = walFiles(dir).map((f) => path.join(dir, 'wal', f));
    const saved = fs.readFileSync(files[1]!);
    fs.truncateSync(files[1]!, 0);
    expect(() => RaftDisk.open(dir, opts)).toThrowError(/sealed segment is empty/);
    fs.writeFileSync(files[1]!, saved);
    const renamed = files[1]!.replace(/-([0-9a-f]{16})\.wal$/, '-00000000000000ff.wal');
    fs.renameSync(files[1]!, renamed);
    expect(() => RaftDisk.open(dir, opts)).toThrowError(/file name disagrees/);
  });

  it('a last segment whose header was torn while rolling is dropped', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 256 };
    withDisk(dir, opts, (r) => { for (let i = 1; i <= 10; i++) r.disk.save({ term: 1, vote: 0, commit: i }, [ent(i, 1, 40)], undefined, true); });
    const files = walFiles(dir);
    // Simulate the crash: a next segment with only part of its header.
    const last = files[files.length - 1]!;
    const seq = parseInt(last.split('-')[0]!, 16) + 1;
    const torn = path.join(dir, 'wal', `${seq.toString(16).padStart(16, '0')}-${(11).toString(16).padStart(16, '0')}.wal`);
    fs.writeFileSync(torn, fs.readFileSync(path.join(dir, 'wal', files[0]!)).subarray(0, 30));
    withDisk(dir, opts, (r) => {
      expect(logOf(r.storage)).toEqual(ents(1, 10, 1, 40).map(plain));
      r.disk.save(undefined, ents(11, 20, 1, 40), undefined, true);
    });
    withDisk(dir, opts, (r) => expect(logOf(r.storage)).toEqual(ents(1, 20, 1, 40).map(plain)));
  });

  it('a fresh node whose only segment header was torn opens fresh again', () => {
    const dir = tempDir();
    withDisk(dir, quiet, () => {});
    const f = path.join(dir, 'wal', walFiles(dir)[0]!);
    fs.truncateSync(f, 10);
    withDisk(dir, quiet, (r) => {
      expect(r.fresh).toBe(true);
      r.disk.save({ term: 1, vote: 1, commit: 0 }, [ent(1, 1)], undefined, true);
    });
    withDisk(dir, quiet, (r) => expect(logOf(r.storage)).toEqual([plain(ent(1, 1))]));
  });
});

describe('snapshots', () => {
  /** Log 1..20 at term 1 with application snapshots at 10 and 15, released as they are made. */
  function twoSnapshots(dir: string, opts: object) {
    withDisk(dir, opts, (r) => {
      r.disk.save({ term: 1, vote: 1, commit: 20 }, ents(1, 20, 1, 30), undefined, true);
      for (const i of [10, 15]) {
        r.disk.saveSnapshot(snap(i, 1));
        r.disk.releaseTo(i);
      }
    });
  }

  it('saveSnapshotAsync writes the file saveSnapshot would, byte for byte, and it loads back', async () => {
    const [a, b] = [tempDir(), tempDir()];
    // Over a MiB: the checksum is computed in several slices.
    const big = snap(10, 1, 3_000_000);
    for (const dir of [a, b]) {
      const r = RaftDisk.open(dir, quiet);
      r.disk.save({ term: 1, vote: 1, commit: 20 }, ents(1, 20, 1, 30), undefined, true);
      if (dir === a) r.disk.saveSnapshot(big);
      else expect(await r.disk.saveSnapshotAsync(big)).toBe(true);
      r.disk.save(undefined, [], big, true);
      r.disk.close();
    }
    const [fa, fb] = [snapFiles(a), snapFiles(b)];
    expect(fb).toEqual(fa);
    expect(fs.readFileSync(path.join(b, 'snap', fb[0]!)).equals(fs.readFileSync(path.join(a, 'snap', fa[0]!)))).toBe(true);
    withDisk(b, quiet, (r) => {
      expect(r.snapshot?.metadata.index).toBe(10);
      expect(Buffer.from(r.snapshot!.data).equals(Buffer.from(big.data))).toBe(true);
      expect(logOf(r.storage)).toEqual(ents(11, 20, 1, 30).map(plain));
    });
  });

  it('saveSnapshotAsync on a disk closed meanwhile says so and leaves the file to open()', async () => {
    const dir = tempDir();
    const r = RaftDisk.open(dir, quiet);
    r.disk.save({ term: 1, vote: 1, commit: 20 }, ents(1, 20, 1, 30), undefined, true);
    const p = r.disk.saveSnapshotAsync(snap(10, 1, 2_000_000));
    r.disk.close();
    expect(await p).toBe(false);
    // No WAL record points at it, but it fits the WAL: a valid snapshot of committed entries.
    withDisk(dir, quiet, (o) => expect(o.snapshot?.metadata.index).toBe(10));
  });

  it('loads the newest snapshot and the entries after it', () => {
    const dir = tempDir();
    twoSnapshots(dir, quiet);
    expect(snapFiles(dir).length).toBe(2);
    withDisk(dir, quiet, (r) => {
      expect(r.snapshot?.metadata.index).toBe(15);
      expect(logOf(r.storage)).toEqual(ents(16, 20, 1, 30).map(plain));
    });
  });

  for (const damage of ['flip a data byte', 'flip the checksum', 'truncate', 'empty file']) {
    it(`falls back to the older snapshot when the newest is damaged (${damage})`, () => {
      const dir = tempDir();
      const warnings: string[] = [];
      const opts = { noSync: true, segmentBytes: 300, logger: (m: string) => warnings.push(m) };
      twoSnapshots(dir, opts);
      const newest = path.join(dir, 'snap', snapFiles(dir)[1]!);
      const size = fs.statSync(newest).size;
      if (damage === 'flip a data byte') flipByte(newest, size - 20);
      if (damage === 'flip the checksum') flipByte(newest, size - 1);
      if (damage === 'truncate') fs.truncateSync(newest, size - 7);
      if (damage === 'empty file') fs.truncateSync(newest, 0);
      withDisk(dir, opts, (r) => {
        expect(r.snapshot?.metadata.index).toBe(10);
        expect(logOf(r.storage)).toEqual(ents(11, 20, 1, 30).map(plain));
      });
      expect(warnings.some((w) => w.includes(newest))).toBe(true);
      // The damaged file goes once a newer snapshot is released.
      withDisk(dir, opts, (r) => {
        r.disk.saveSnapshot(snap(18, 1));
        r.disk.releaseTo(18);
      });
      expect(snapFiles(dir)).toEqual(['0000000000000001-000000000000000a.snap', '0000000000000001-0000000000000012.snap']);
      withDisk(dir, opts, (r) => expect(r.snapshot?.metadata.index).toBe(18));
    });
  }

  it('is CORRUPT when no intact snapshot fits the WAL', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 200, keepSnapshots: 1 };
    withDisk(dir, opts, (r) => {
      for (let i = 1; i <= 40; i++) r.disk.save({ term: 1, vote: 1, commit: i }, [ent(i, 1, 30)], undefined, true);
      r.disk.saveSnapshot(snap(30, 1));
      r.disk.releaseTo(30);
    });
    fs.truncateSync(path.join(dir, 'snap', snapFiles(dir)[0]!), 5);
    expect(() => RaftDisk.open(dir, opts)).toThrowError(expect.objectContaining({ code: 'CORRUPT' }));
  });

  it('keeps only the newest keepSnapshots snapshot files', () => {
    for (const keep of [1, 2, 3]) {
      const dir = tempDir();
      withDisk(dir, { ...quiet, keepSnapshots: keep }, (r) => {
        r.disk.save({ term: 1, vote: 1, commit: 50 }, ents(1, 50, 1), undefined, true);
        for (const i of [10, 20, 30, 40]) {
          r.disk.saveSnapshot(snap(i, 1));
          r.disk.releaseTo(i);
        }
      });
      expect(snapFiles(dir).map((n) => parseInt(n.split('-')[1]!, 16))).toEqual([10, 20, 30, 40].slice(-keep));
    }
  });

  it('ignores and removes leftover .tmp files', () => {
    const dir = tempDir();
    withDisk(dir, quiet, (r) => {
      r.disk.save({ term: 1, vote: 1, commit: 5 }, ents(1, 5, 1), undefined, true);
      r.disk.saveSnapshot(snap(5, 1));
      r.disk.releaseTo(5);
    });
    // A crash in the middle of writing a newer snapshot, and a stray temp file in the WAL directory.
    const tmp = path.join(dir, 'snap', '0000000000000002-0000000000000009.snap.tmp');
    fs.writeFileSync(tmp, Buffer.alloc(100, 7));
    fs.writeFileSync(path.join(dir, 'wal', 'x.wal.tmp'), 'junk');
    withDisk(dir, quiet, (r) => {
      expect(r.snapshot?.metadata.index).toBe(5);
      expect(r.storage.lastIndex()).toBe(5);
    });
    expect(fs.existsSync(tmp)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'wal', 'x.wal.tmp'))).toBe(false);
  });

  it('drops a snapshot saved but never referenced by the WAL (crash before save)', () => {
    const dir = tempDir();
    withDisk(dir, quiet, (r) => {
      r.disk.save({ term: 1, vote: 1, commit: 10 }, ents(1, 10, 1), undefined, true);
      r.disk.saveSnapshot(snap(30, 2));
    });
    withDisk(dir, quiet, (r) => {
      expect(r.snapshot).toBeUndefined();
      expect(logOf(r.storage)).toEqual(ents(1, 10, 1).map(plain));
    });
    expect(snapFiles(dir)).toEqual([]);
  });

  it('save() writes the snapshot file itself when saveSnapshot was not called', () => {
    const dir = tempDir();
    withDisk(dir, quiet, (r) => r.disk.save({ term: 2, vote: 0, commit: 7 }, [], snap(7, 2), true));
    expect(snapFiles(dir)).toEqual(['0000000000000002-0000000000000007.snap']);
    withDisk(dir, quiet, (r) => expect(r.snapshot?.metadata.index).toBe(7));
  });

  it('a leader snapshot replaces a conflicting log; a matching one keeps the suffix', () => {
    const dir = tempDir();
    withDisk(dir, quiet, (r) => r.disk.save({ term: 1, vote: 1, commit: 10 }, ents(1, 30, 1), undefined, true));
    withDisk(dir, quiet, (r) => r.disk.save({ term: 3, vote: 0, commit: 20 }, [], snap(20, 3), true));
    withDisk(dir, quiet, (r) => {
      expect(r.snapshot?.metadata).toMatchObject({ index: 20, term: 3 });
      expect(r.storage.lastIndex()).toBe(20);
      r.disk.save({ term: 3, vote: 0, commit: 20 }, ents(21, 30, 3), undefined, true);
      // Same term at the snapshot's index: the log agrees with it, entries after stay.
      r.disk.save(undefined, [], snap(25, 3), true);
    });
    withDisk(dir, quiet, (r) => {
      expect(r.snapshot?.metadata.index).toBe(25);
      expect(r.hardState.commit).toBe(25); // raised to the snapshot, which is committed by definition
      expect(logOf(r.storage)).toEqual(ents(26, 30, 3).map(plain));
    });
  });
});

describe('releaseTo', () => {
  it('deletes old segments and the node still reopens correctly', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 400, keepSnapshots: 1 };
    withDisk(dir, opts, (r) => {
      // The hard state is written once, early: after release it must survive via segment headers.
      r.disk.save({ term: 4, vote: 2, commit: 0 }, [], undefined, true);
      for (let i = 1; i <= 300; i++) r.disk.save(undefined, [ent(i, 4, 30)], undefined, true);
    });
    const before = walFiles(dir).length;
    withDisk(dir, opts, (r) => {
      r.disk.saveSnapshot(snap(250, 4));
      r.disk.releaseTo(250);
    });
    const after = walFiles(dir);
    expect(after.length).toBeLessThan(before);
    expect(parseInt(after[0]!.split('-')[1]!, 16)).toBeLessThanOrEqual(250);
    expect(after.length).toBeLessThan(before / 4);
    withDisk(dir, opts, (r) => {
      expect(r.snapshot?.metadata.index).toBe(250);
      expect(r.hardState).toEqual({ term: 4, vote: 2, commit: 250 });
      expect(logOf(r.storage)).toEqual(ents(251, 300, 4, 30).map(plain));
      r.disk.save(undefined, ents(301, 320, 4, 30), undefined, true);
    });
    withDisk(dir, opts, (r) => expect(logOf(r.storage)).toEqual(ents(251, 320, 4, 30).map(plain)));
  });

  it('keeps the segments an older retained snapshot needs', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 400, keepSnapshots: 2 };
    withDisk(dir, opts, (r) => {
      r.disk.save({ term: 4, vote: 2, commit: 300 }, [], undefined, true);
      for (let i = 1; i <= 300; i += 2) r.disk.save(undefined, ents(i, i + 1, 4, 30), undefined, true);
      for (const i of [100, 250]) {
        r.disk.saveSnapshot(snap(i, 4));
        r.disk.releaseTo(i);
      }
    });
    expect(parseInt(walFiles(dir)[0]!.split('-')[1]!, 16)).toBeLessThanOrEqual(100);
    expect(parseInt(walFiles(dir)[1]!.split('-')[1]!, 16)).toBeGreaterThan(100);
    withDisk(dir, opts, (r) => expect(r.snapshot?.metadata.index).toBe(250));
    fs.truncateSync(path.join(dir, 'snap', snapFiles(dir)[1]!), 100);
    withDisk(dir, opts, (r) => {
      expect(r.snapshot?.metadata.index).toBe(100);
      expect(logOf(r.storage)).toEqual(ents(101, 300, 4, 30).map(plain));
    });
  });

  it('is a no-op without a snapshot at or below the index', () => {
    const dir = tempDir();
    const opts = { ...quiet, segmentBytes: 200 };
    withDisk(dir, opts, (r) => {
      for (let i = 1; i <= 30; i++) r.disk.save(undefined, [ent(i, 1, 30)], undefined, true);
      const n = walFiles(dir).length;
      r.disk.releaseTo(30);
      expect(walFiles(dir).length).toBe(n);
    });
  });
});

describe('measureFdatasync', () => {
  it('reports latencies and leaves no file behind', () => {
    const dir = tempDir();
    const r = measureFdatasync(dir, 20);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
