import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MemoryStorage } from '../../../../manager/raft/core/storage.js';
import type { Entry, Snapshot } from '../../../../manager/raft/core/types.js';
import { EntryType } from '../../../../manager/raft/core/types.js';
import { RaftDisk, type RaftDiskOptions } from '../../../../manager/raft/storage/index.js';

const dirs: string[] = [];

export function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-raftdisk-'));
  dirs.push(d);
  return d;
}

export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** Deterministic payload so a test can tell entries apart by content too. */
export function payload(index: number, term: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  for (let i = 0; i < size; i++) d[i] = (index * 31 + term * 7 + i) & 0xff;
  return d;
}

export function ent(index: number, term: number, size = 8, type = EntryType.Normal): Entry {
  return { index, term, type, data: payload(index, term, size) };
}

export function ents(from: number, to: number, term: number, size = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term, size));
  return out;
}

export function snap(index: number, term: number, size = 64, voters = [1, 2, 3], learners: number[] = []): Snapshot {
  return { metadata: { index, term, confState: { voters, learners } }, data: payload(index, term + 1000, size) };
}

/** The log a MemoryStorage holds, as plain comparable objects. */
export function logOf(s: MemoryStorage): { index: number; term: number; type: number; data: number[] }[] {
  const lo = s.firstIndex();
  const hi = s.lastIndex();
  if (hi < lo) return [];
  return s.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER).map(plain);
}

export function plain(e: Entry): { index: number; term: number; type: number; data: number[] } {
  return { index: e.index, term: e.term, type: e.type, data: Array.from(e.data) };
}

export function walFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'wal')).filter((n) => n.endsWith('.wal')).sort();
}

export function snapFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'snap')).sort();
}

export const quiet: RaftDiskOptions = { noSync: true, logger: () => {} };

/** Open, run `f`, close: the usual shape of a test step. */
export function withDisk<T>(dir: string, opts: RaftDiskOptions, f: (r: ReturnType<typeof RaftDisk.open>) => T): T {
  const r = RaftDisk.open(dir, opts);
  try {
    return f(r);
  } finally {
    r.disk.close();
  }
}
