// Measures how long this disk takes to make a small append durable: the floor
// under every raft commit, printed by the benchmark next to its results.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Appends 256 bytes and fdatasyncs, `samples` times, in a temp file in `dir` (deleted afterwards). */
export function measureFdatasync(dir: string, samples: number): { p50Ms: number; p99Ms: number } {
  const n = Math.max(1, Math.floor(samples));
  const file = path.join(dir, `.fsyncprobe-${process.pid}-${Date.now()}.tmp`);
  const buf = Buffer.alloc(256, 0xa5);
  const times = new Float64Array(n);
  const fd = fs.openSync(file, 'wx');
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      fs.writeSync(fd, buf, 0, buf.length, i * buf.length);
      fs.fdatasyncSync(fd);
      times[i] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  times.sort();
  const at = (q: number) => times[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}
