// `npm run bench:raft`: etcd and shoal's raft KV side by side.
//
//   node dist/test/bench/raft/bench.js [--systems etcd,shoal] [--duration S]
//        [--warmup S] [--dir BASE] [--transport h2|grpc-js] [--repeat R]
//        [--levels put1,put16,...] [--json]
//
// For each system: bring up a 3-node cluster on 127.0.0.1 with its data
// under BASE (default: the OS temp dir), then for each load level spawn a
// separate load-generator process (client.js) that keeps N requests in
// flight for the duration and reports throughput and latency. Also measures
// the disk's fdatasync latency, the floor under any durable write.

import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeFdatasync, isMemoryFs, type SyncProbeResult } from '../lib/fsync.js';
import { TRANSPORTS, type TransportKind } from '../lib/grpc-unary.js';
import type { LoadResult } from '../lib/load.js';
import { makeTempDir, onCleanup, removeTempDir, runCleanup } from '../lib/proc.js';
import { fmtInt, fmtMs, fmtRatio, printJson, printTable, type Column } from '../lib/table.js';
import type { ClientJob, ClientReport } from './client.js';
import { registry } from './registry.js';

interface Level {
  id: string;
  label: string;
  mode: 'put' | 'get';
  concurrency: number;
}

const LEVELS: Level[] = [
  { id: 'put1', label: 'put, 1 in flight', mode: 'put', concurrency: 1 },
  { id: 'put16', label: 'put, 16 in flight', mode: 'put', concurrency: 16 },
  { id: 'put64', label: 'put, 64 in flight', mode: 'put', concurrency: 64 },
  { id: 'put256', label: 'put, 256 in flight', mode: 'put', concurrency: 256 },
  { id: 'get64', label: 'linearizable get, 64 in flight', mode: 'get', concurrency: 64 },
];

/** A system whose start() takes longer than this is skipped. */
const START_TIMEOUT_S = 90;

interface Options {
  systems: string[];
  durationSeconds: number;
  warmupSeconds: number;
  baseDir: string;
  json: boolean;
  valueSize: number;
  fsyncSamples: number;
  transport: TransportKind;
  repeat: number;
  levels: Level[];
}

interface LevelResult extends LoadResult {
  level: string;
  label: string;
  mode: 'put' | 'get';
  concurrency: number;
  clientCpuPct: number;
  clientCpuUsPerOp: number;
  /** ops/s of every run of this level (with --repeat); the median run is reported. */
  runsOpsPerSec: number[];
}

interface SystemReport {
  name: string;
  skipped?: string;
  failed?: string;
  notes: string[];
  levels: LevelResult[];
}

const USAGE = `usage: bench.js [--systems etcd,shoal] [--duration S] [--warmup S] [--dir BASE]
                [--transport h2|grpc-js] [--repeat R] [--levels IDS] [--json]
  --systems   systems to run, comma separated (default: ${Object.keys(registry).join(',')})
  --duration  measured seconds per load level (default 5)
  --warmup    unmeasured seconds before each level (default 0.5)
  --dir       base dir for data dirs and the fdatasync probe (default ${os.tmpdir()})
  --transport gRPC client transport: h2 (raw node:http2, default) or grpc-js
  --repeat    runs per level; the run with the median ops/s is shown (default 1)
  --levels    load levels to run, comma separated (default: ${LEVELS.map((l) => l.id).join(',')})
  --json      also print the results as JSON`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    systems: Object.keys(registry),
    durationSeconds: 5,
    warmupSeconds: 0.5,
    baseDir: os.tmpdir(),
    json: false,
    valueSize: 256,
    fsyncSamples: 1000,
    transport: 'h2',
    repeat: 1,
    levels: LEVELS,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    const num = (): number => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${flag}: not a number\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--systems':
        o.systems = value().split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case '--duration':
        o.durationSeconds = num();
        break;
      case '--warmup':
        o.warmupSeconds = num();
        break;
      case '--dir':
        o.baseDir = path.resolve(value());
        break;
      case '--transport': {
        const t = value() as TransportKind;
        if (!TRANSPORTS.includes(t)) throw new Error(`--transport: one of ${TRANSPORTS.join(', ')}\n${USAGE}`);
        o.transport = t;
        break;
      }
      case '--repeat':
        o.repeat = Math.max(1, Math.floor(num()));
        break;
      case '--levels': {
        const ids = value().split(',').map((s) => s.trim()).filter(Boolean);
        for (const id of ids) {
          if (!LEVELS.some((l) => l.id === id)) throw new Error(`--levels: unknown level ${id}\n${USAGE}`);
        }
        o.levels = LEVELS.filter((l) => ids.includes(l.id));
        break;
      }
      case '--json':
        o.json = true;
        break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  for (const s of o.systems) {
    if (!registry[s]) throw new Error(`unknown system ${s} (known: ${Object.keys(registry).join(', ')})`);
  }
  return o;
}

// ---- client processes --------------------------------------------------------

const CLIENT_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'client.js');
let activeChild: ChildProcess | undefined;

function runClient(job: ClientJob): Promise<ClientReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT_JS, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] });
    activeChild = child;
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const limitMs = (job.durationSeconds + job.warmupSeconds + 120) * 1000;
    const timer = setTimeout(() => {
      if (child.pid !== undefined) child.kill('SIGKILL');
    }, limitMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      activeChild = undefined;
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as ClientReport);
      } catch {
        reject(new Error(`client exited (${code ?? signal}) without a report${out ? ': ' + out.slice(-500) : ''}`));
      }
    });
  });
}

// ---- per system ------------------------------------------------------------------

async function benchSystem(name: string, opts: Options): Promise<SystemReport> {
  const report: SystemReport = { name, notes: [], levels: [] };
  const system = registry[name]!.system();
  const workDir = makeTempDir(opts.baseDir, `shoal-bench-${name}-`);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await system.stop();
  };
  onCleanup(stop);

  log(`[${name}] starting a 3-node cluster under ${workDir}`);
  let clientArgs: unknown;
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`start did not finish in ${START_TIMEOUT_S} s`)), START_TIMEOUT_S * 1000);
    });
    const started = await Promise.race([system.start(workDir), timeout]).finally(() => clearTimeout(timer));
    clientArgs = started.clientArgs;
    report.notes.push(...(started.notes ?? []));
  } catch (err) {
    report.skipped = err instanceof Error ? err.message : String(err);
    log(`[${name}] skipped: ${report.skipped}`);
    await stop().catch(() => undefined);
    removeTempDir(workDir);
    return report;
  }

  try {
    for (const level of opts.levels) {
      const job: ClientJob = {
        system: name,
        clientArgs,
        transport: opts.transport,
        mode: level.mode,
        concurrency: level.concurrency,
        durationSeconds: opts.durationSeconds,
        warmupSeconds: opts.warmupSeconds,
        keyPrefix: `bench/${level.id}/`,
        valueSize: opts.valueSize,
        preload: 1000,
      };
      const runs: LevelResult[] = [];
      for (let rep = 0; rep < opts.repeat; rep++) {
        const nth = opts.repeat > 1 ? ` (run ${rep + 1}/${opts.repeat})` : '';
        log(`[${name}] ${level.label}: ${opts.warmupSeconds}s warm-up + ${opts.durationSeconds}s${nth}`);
        const r = await runClient({ ...job, keyPrefix: `${job.keyPrefix}${rep}/` });
        if (!r.ok || !r.result) throw new Error(`${level.label}: ${r.error ?? 'no result'}`);
        if (r.result.errors > 0) {
          log(`[${name}] ${level.label}: ${r.result.errors} errors, first: ${r.result.firstError}`);
        }
        runs.push({
          level: level.id,
          label: level.label,
          mode: level.mode,
          concurrency: level.concurrency,
          ...r.result,
          clientCpuPct: r.clientCpuPct ?? NaN,
          clientCpuUsPerOp: r.clientCpuUsPerOp ?? NaN,
          runsOpsPerSec: [],
        });
      }
      const byRate = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec);
      const median = byRate[(byRate.length - 1) >> 1]!;
      median.runsOpsPerSec = runs.map((r) => r.opsPerSec);
      report.levels.push(median);
    }
  } catch (err) {
    report.failed = err instanceof Error ? err.message : String(err);
    log(`[${name}] failed: ${report.failed}`);
  } finally {
    log(`[${name}] stopping`);
    await stop();
    removeTempDir(workDir);
  }
  return report;
}

function log(msg: string): void {
  process.stderr.write(msg + '\n');
}

// ---- output ------------------------------------------------------------------------

function printResults(reports: SystemReport[], sync: SyncProbeResult[], opts: Options): void {
  const shown = reports.filter((r) => r.levels.length > 0);
  const columns: Column[] = [{ header: 'load' }];
  for (const r of shown) {
    columns.push({ header: `${r.name} ops/s` }, { header: 'p50 ms' }, { header: 'p99 ms' }, { header: 'cli cpu' }, { header: 'us/op' });
  }
  const etcd = shown.find((r) => r.name === 'etcd');
  const others = shown.filter((r) => r !== etcd);
  if (etcd) for (const r of others) columns.push({ header: `${r.name}/etcd` });

  const rows = opts.levels.map((level) => {
    const row = [level.label];
    for (const r of shown) {
      const l = r.levels.find((x) => x.level === level.id);
      if (!l) {
        row.push('-', '-', '-', '-', '-');
        continue;
      }
      row.push(fmtInt(l.opsPerSec) + (l.errors ? ` (${l.errors} err)` : ''), fmtMs(l.p50Ms), fmtMs(l.p99Ms), `${Math.round(l.clientCpuPct)}%`, fmtInt(l.clientCpuUsPerOp));
    }
    if (etcd) {
      const e = etcd.levels.find((x) => x.level === level.id);
      for (const r of others) {
        const l = r.levels.find((x) => x.level === level.id);
        row.push(l && e ? fmtRatio(l.opsPerSec, e.opsPerSec) : '-');
      }
    }
    return row;
  });

  process.stdout.write(
    `\nraft KV bench: 3 nodes on 127.0.0.1, ${opts.valueSize}-byte values, distinct key per put, ` +
      `${opts.durationSeconds}s per level after ${opts.warmupSeconds}s warm-up,\n` +
      `load from one separate client process (gRPC transport: ${opts.transport})` +
      (opts.repeat > 1 ? `, median of ${opts.repeat} runs per level` : '') +
      '\n\n',
  );
  if (shown.length > 0) printTable(columns, rows);
  for (const s of sync) {
    process.stdout.write(
      `fdatasync, ${s.samples} x 256 B (${s.mode}) on ${opts.baseDir}: p50 ${fmtMs(s.p50Ms)} ms, p99 ${fmtMs(s.p99Ms)} ms\n`,
    );
  }
  for (const r of reports) {
    for (const n of r.notes) process.stdout.write(`${r.name}: ${n}\n`);
    if (r.skipped) process.stdout.write(`${r.name}: skipped: ${r.skipped}\n`);
    if (r.failed) process.stdout.write(`${r.name}: failed: ${r.failed}\n`);
  }
  process.stdout.write(
    'cli cpu, us/op = CPU of the load-generator process, as % of one core and per completed request\n',
  );
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (isMemoryFs(opts.baseDir)) {
    log(`warning: ${opts.baseDir} is a memory filesystem; fdatasync is free there, use --dir on a real disk`);
  }
  onCleanup(() => {
    if (activeChild?.pid !== undefined && activeChild.exitCode === null) activeChild.kill('SIGKILL');
  });

  const probeDir = makeTempDir(opts.baseDir, 'shoal-bench-fsync-');
  log(`fdatasync probe (${opts.fsyncSamples} samples x 2) in ${probeDir}`);
  const sync = [probeFdatasync(probeDir, 'prealloc', opts.fsyncSamples), probeFdatasync(probeDir, 'append', opts.fsyncSamples)];
  removeTempDir(probeDir);

  const reports: SystemReport[] = [];
  for (const name of opts.systems) reports.push(await benchSystem(name, opts));

  printResults(reports, sync, opts);
  if (opts.json) printJson({ options: opts, fdatasync: sync, systems: reports });
  if (reports.every((r) => r.levels.length === 0)) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanup());
