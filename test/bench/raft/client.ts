// Load-generator process of `bench:raft`, one per load level:
//
//   node dist/test/bench/raft/client.js '<ClientJob as JSON>'
//
// Builds the system's BenchClient from clientArgs, checks one put/get round
// trip, runs the closed-loop load and prints one JSON line (ClientReport) on
// stdout. Runs apart from the servers so that neither steals the other's
// event loop; its CPU use is reported so a saturated client shows.

import crypto from 'node:crypto';
import type { TransportKind } from '../lib/grpc-unary.js';
import { runLoad, type LoadResult } from '../lib/load.js';
import { registry } from './registry.js';
import type { BenchClient } from './systems.js';

export interface ClientJob {
  system: string;
  clientArgs: unknown;
  transport: TransportKind;
  mode: 'put' | 'get';
  concurrency: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** Keys are keyPrefix + counter, distinct per op for puts. */
  keyPrefix: string;
  valueSize: number;
  /** For get: how many keys to write first (not timed); reads pick among them. */
  preload?: number;
}

export interface ClientReport {
  ok: boolean;
  error?: string;
  result?: LoadResult;
  /** Client process CPU (user+sys) over warm-up + measurement, as % of one core. */
  clientCpuPct?: number;
  /** The same CPU divided by the operations completed in that time, in microseconds. */
  clientCpuUsPerOp?: number;
}

const VALUE_POOL = 1024; // distinct random values, reused round-robin

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as ClientJob;
  const entry = registry[job.system];
  if (!entry) throw new Error(`unknown system ${job.system}`);
  const client: BenchClient = await entry.client(job.clientArgs, { transport: job.transport });
  try {
    const values = Array.from({ length: VALUE_POOL }, () => crypto.randomBytes(job.valueSize));

    // Round trip check, outside the measurement.
    const checkKey = Buffer.from(job.keyPrefix + 'check');
    await client.put(checkKey, values[0]!);
    await client.get(checkKey);
    if (client.getValue) {
      const got = await client.getValue(checkKey);
      if (!got || !got.equals(values[0]!)) throw new Error('round-trip check failed: read back a different value');
    }

    let op: () => Promise<void>;
    if (job.mode === 'put') {
      let n = 0;
      op = () => {
        const i = n++;
        return client.put(Buffer.from(job.keyPrefix + i), values[i & (VALUE_POOL - 1)]!);
      };
    } else {
      const count = Math.max(1, job.preload ?? 1000);
      const keys = Array.from({ length: count }, (_, i) => Buffer.from(job.keyPrefix + i));
      let next = 0;
      await runLoad(
        () => {
          const i = next++;
          return client.put(keys[i]!, values[i & (VALUE_POOL - 1)]!);
        },
        { concurrency: Math.min(64, count), ops: count, maxErrors: 10 },
      ).then((r) => {
        if (r.errors > 0) throw new Error(`preload failed: ${r.firstError}`);
      });
      op = () => client.get(keys[(Math.random() * count) | 0]!);
    }

    let completed = 0;
    const inner = op;
    const counted = (): Promise<void> => inner().then(() => void completed++);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const result = await runLoad(counted, {
      concurrency: job.concurrency,
      durationSeconds: job.durationSeconds,
      warmupSeconds: job.warmupSeconds,
      maxErrors: 1000,
    });
    const wallUs = Number(process.hrtime.bigint() - t0) / 1e3;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = cpu.user + cpu.system;
    const report: ClientReport = {
      ok: true,
      result,
      clientCpuPct: (100 * cpuUs) / wallUs,
      clientCpuUsPerOp: completed > 0 ? cpuUs / completed : NaN,
    };
    process.stdout.write(JSON.stringify(report) + '\n');
  } finally {
    client.close();
  }
}

main().catch((err: unknown) => {
  const report: ClientReport = { ok: false, error: err instanceof Error ? err.message : String(err) };
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exitCode = 1;
});
