// Disk probe: how long one small write + fdatasync takes on a filesystem.
//
// A raft log can acknowledge nothing faster than its disk syncs, so the
// benches print this next to their figures. Two patterns:
//  - "prealloc": overwrite successive 256-byte blocks of a file whose blocks
//    are already allocated (what a WAL with preallocated segments does, e.g.
//    etcd's 64 MB segments): fdatasync flushes data only.
//  - "append": extend the file by 256 bytes each time: fdatasync must also
//    flush the new size, i.e. a journal commit on ext4.

import fs from 'node:fs';
import path from 'node:path';
import { percentile } from './load.js';

export interface SyncProbeResult {
  mode: 'prealloc' | 'append';
  samples: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
}

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/** True when dir lives on tmpfs/ramfs, where fdatasync costs nothing. */
export function isMemoryFs(dir: string): boolean {
  try {
    const st = fs.statfsSync(dir);
    return st.type === TMPFS_MAGIC || st.type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

export function probeFdatasync(
  dir: string,
  mode: 'prealloc' | 'append',
  samples = 1000,
  blockSize = 256,
): SyncProbeResult {
  const file = path.join(dir, `fsync-probe-${process.pid}-${mode}.dat`);
  const block = Buffer.alloc(blockSize, 0x5a);
  const fd = fs.openSync(file, 'w+');
  try {
    if (mode === 'prealloc') {
      // Allocate and persist every block first so that the timed syncs
      // carry no metadata change.
      const zeros = Buffer.alloc(1 << 16);
      const total = samples * blockSize;
      for (let off = 0; off < total; off += zeros.length) {
        fs.writeSync(fd, zeros, 0, Math.min(zeros.length, total - off), off);
      }
      fs.fsyncSync(fd);
    }
    const lat = new Float64Array(samples);
    for (let i = 0; i < samples; i++) {
      const t = process.hrtime.bigint();
      fs.writeSync(fd, block, 0, blockSize, i * blockSize);
      fs.fdatasyncSync(fd);
      lat[i] = Number(process.hrtime.bigint() - t) / 1e6;
    }
    let sum = 0;
    for (const v of lat) sum += v;
    lat.sort();
    return { mode, samples, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99), meanMs: sum / samples };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}
