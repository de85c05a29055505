// Closed-loop load generator: keeps a fixed number of operations in flight
// and records the latency of each one.
//
// Each of the `concurrency` workers issues an operation, awaits it, records
// its latency and issues the next, so exactly `concurrency` operations are
// outstanding at any time (a closed loop, like etcd's `benchmark` tool).
//
// Timing: the first `warmupSeconds` are run but not counted. Operations that
// start inside the measured window are counted; once the window (duration or
// op count) is used up no new operation starts, the ones in flight are
// awaited, and `seconds` runs from the window's start to the last counted
// completion.

export interface LoadOptions {
  /** Operations kept in flight. */
  concurrency: number;
  /** Length of the measured window in seconds (ignored when `ops` is set). */
  durationSeconds?: number;
  /** Stop after this many measured operations instead of after a duration. */
  ops?: number;
  /** Run this long before measuring; 0 for none. */
  warmupSeconds?: number;
  /** Give up after this many errors (default: unlimited). */
  maxErrors?: number;
}

export interface LoadResult {
  ops: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** The first error's message, if any. */
  firstError?: string;
}

/** A growable array of float64 samples (latencies in ns), no per-push allocation. */
class Samples {
  private buf = new Float64Array(1 << 14);
  length = 0;

  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }

  sorted(): Float64Array {
    return this.buf.slice(0, this.length).sort();
  }
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

export async function runLoad(op: () => Promise<void>, opts: LoadOptions): Promise<LoadResult> {
  const concurrency = Math.max(1, Math.floor(opts.concurrency));
  const warmupNs = BigInt(Math.round((opts.warmupSeconds ?? 0) * 1e9));
  const byCount = opts.ops !== undefined;
  const durationNs = BigInt(Math.round((opts.durationSeconds ?? 5) * 1e9));
  const maxErrors = opts.maxErrors ?? Infinity;

  const samples = new Samples();
  let errors = 0;
  let firstError: string | undefined;
  let started = 0; // measured operations started (for the op-count mode)
  let lastDone = 0n;
  let stop = false;

  const t0 = process.hrtime.bigint();
  const measureStart = t0 + warmupNs;
  const measureEnd = measureStart + durationNs;

  const worker = async (): Promise<void> => {
    while (!stop) {
      const start = process.hrtime.bigint();
      const measured = start >= measureStart;
      if (measured) {
        if (byCount) {
          if (started >= opts.ops!) return;
        } else if (start >= measureEnd) {
          return;
        }
        started++;
      }
      let failed = false;
      try {
        await op();
      } catch (err) {
        failed = true;
        errors++;
        if (firstError === undefined) firstError = err instanceof Error ? err.message : String(err);
        if (errors >= maxErrors) stop = true;
      }
      if (!measured) continue;
      const end = process.hrtime.bigint();
      if (end > lastDone) lastDone = end;
      if (!failed) samples.push(Number(end - start));
    }
  };

  const workers: Promise<void>[] = [];
  for (let i = 0; i < concurrency; i++) workers.push(worker());
  await Promise.all(workers);

  const sorted = samples.sorted();
  const seconds = lastDone > measureStart ? Number(lastDone - measureStart) / 1e9 : 0;
  const ops = sorted.length;
  return {
    ops,
    seconds,
    opsPerSec: seconds > 0 ? ops / seconds : 0,
    p50Ms: percentile(sorted, 50) / 1e6,
    p99Ms: percentile(sorted, 99) / 1e6,
    maxMs: ops > 0 ? sorted[ops - 1]! / 1e6 : NaN,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}
