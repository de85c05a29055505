// Memory of the lab's processes from /proc: RSS (VmRSS of /proc/<pid>/status)
// and PSS (Pss of /proc/<pid>/smaps_rollup: shared pages divided among their
// sharers, so PSS adds up across processes and RSS does not).
import { readFileSync, readdirSync } from 'node:fs';
import { CONTAINERD_PROC, shimPids } from '../../../deploy/lab/containerd.js';
import type { ServicesCluster } from '../../system/services/harness.js';

export interface Mem {
  rssKiB: number;
  pssKiB: number;
}

function kib(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** RSS and PSS of one process, undefined when it is gone. */
export function memOf(pid: number | null | undefined): Mem | undefined {
  if (!pid) return undefined;
  try {
    const rss = kib(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
    const pss = kib(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
    return { rssKiB: rss, pssKiB: pss };
  } catch {
    return undefined;
  }
}

/** Children (recursively) of the given pids, from /proc/<pid>/stat. */
export function descendantsOf(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = readFileSync(`/proc/${ent}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const l = children.get(ppid);
      if (l) l.push(Number(ent));
      else children.set(ppid, [Number(ent)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const todo = [...roots];
  while (todo.length > 0) {
    for (const ch of children.get(todo.pop()!) ?? []) {
      out.push(ch);
      todo.push(ch);
    }
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

export interface HostMem {
  shoald?: Mem;
  containerd?: Mem;
  /** containerd-shim-runc-v2 processes of this host's containerd. */
  shims: { count: number; pssKiB: number };
  /**
   * What runs under the shims besides the containers' own processes: the log
   * pipeline shoal's runtime uses (binary:// logger: sh + 2 mawk per container).
   */
  loggers: { count: number; pssKiB: number };
  /** The containers' processes (tini + sleep). */
  containers: { count: number; pssKiB: number };
}

export function hostMem(c: ServicesCluster, host: string): HostMem {
  const ctd = c.containerd(host);
  const shims = shimPids(ctd.socket);
  const sum = (pids: number[]) => pids.reduce((n, p) => n + (memOf(p)?.pssKiB ?? 0), 0);
  const under = descendantsOf(shims);
  const loggers = under.filter((p) => ['sh', 'mawk', 'shoal-logger'].includes(comm(p)));
  const rest = under.filter((p) => !loggers.includes(p));
  return {
    shoald: memOf(c.lab.procPid(host)),
    containerd: memOf(c.lab.procPid(host, CONTAINERD_PROC)),
    shims: { count: shims.length, pssKiB: sum(shims) },
    loggers: { count: loggers.length, pssKiB: sum(loggers) },
    containers: { count: rest.length, pssKiB: sum(rest) },
  };
}

export function clusterMem(c: ServicesCluster): Record<string, HostMem> {
  return Object.fromEntries(c.hosts.map((h) => [h, hostMem(c, h)]));
}

/** The machine's CPU use (% of all cores, from /proc/stat) over the next ms milliseconds. */
export async function machineBusy(ms: number): Promise<number> {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    return { idle: f[3]! + f[4]!, all: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.all > a.all ? (100 * (1 - (b.idle - a.idle) / (b.all - a.all))) : NaN;
}

/**
 * Waits until the machine is quiet: its CPU busy (all cores) at most maxBusyPct over one window of
 * windowMs, so that a step does not start while the last one's work (containerd's garbage
 * collection, exits still being reaped, logs being written) still runs. Gives up after timeoutMs.
 */
export async function machineQuiet(maxBusyPct: number, windowMs: number, timeoutMs: number): Promise<{ ms: number; busyPct: number; quiet: boolean }> {
  const t0 = performance.now();
  for (;;) {
    const busyPct = await machineBusy(windowMs);
    const ms = performance.now() - t0;
    if (busyPct <= maxBusyPct) return { ms, busyPct, quiet: true };
    if (ms >= timeoutMs) return { ms, busyPct, quiet: false };
  }
}

/** CPU seconds of a process (all its threads), or of one thread of it (`tid`; the main thread's is the pid). */
export function cpuSeconds(pid: number | null | undefined, tid?: number): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 (utime, stime) are at 11 and 12 after the state field
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds used: every host's shoald, every host's containerd, this process, the whole machine (busy time of all cores). */
export interface CpuUse {
  shoald: number;
  /** The shoalds' main threads (JavaScript); the rest is V8's helpers (GC, compiling) and the libuv pool. */
  shoaldMain: number;
  /** Each host's shoald. */
  shoaldByHost: Record<string, number>;
  containerd: number;
  bench: number;
  machine: number;
  wall: number;
}

function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100;
}

export function cpuSnap(c: ServicesCluster): CpuUse {
  const u = process.cpuUsage();
  const byHost = Object.fromEntries(c.hosts.map((h) => [h, cpuSeconds(c.lab.procPid(h))]));
  return {
    shoald: Object.values(byHost).reduce((n, x) => n + x, 0),
    shoaldMain: c.hosts.reduce((n, h) => {
      const pid = c.lab.procPid(h);
      return n + cpuSeconds(pid, pid ?? undefined);
    }, 0),
    shoaldByHost: byHost,
    containerd: c.hosts.reduce((n, h) => n + cpuSeconds(c.lab.procPid(h, CONTAINERD_PROC)), 0),
    bench: (u.user + u.system) / 1e6,
    machine: machineBusySeconds(),
    wall: performance.now() / 1000,
  };
}

export function cpuSince(c: ServicesCluster, a: CpuUse): CpuUse {
  const b = cpuSnap(c);
  const byHost = Object.fromEntries(Object.entries(b.shoaldByHost).map(([h, x]) => [h, x - (a.shoaldByHost[h] ?? NaN)]));
  return { shoald: b.shoald - a.shoald, shoaldMain: b.shoaldMain - a.shoaldMain, shoaldByHost: byHost, containerd: b.containerd - a.containerd, bench: b.bench - a.bench, machine: b.machine - a.machine, wall: b.wall - a.wall };
}
