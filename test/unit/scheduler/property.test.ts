// Random clusters and workloads (seeded): no assignment may break a filter, no node may end up over
// its resources, a task left pending must really fit nowhere, and the fast scheduler must decide
// exactly what a slow, obviously-correct one decides (full scan of every node for every task).
import { describe, expect, it } from 'vitest';
import { schedule, type PendingTask, type Platform, type SchedulerNode } from '../../../manager/scheduler/index.js';
import { mulberry32 } from '../../support/random.js';

const CPU = 1e9;
const GIB = 1024 ** 3;

const SERVICES = ['s0', 's1', 's2', 's3', 's4'];
const PLATFORMS: Platform[] = [
  { os: 'linux', arch: 'x86_64' },
  { os: 'linux', arch: 'aarch64' },
  { os: 'windows', arch: 'amd64' },
];
const CONSTRAINTS = [
  'node.role==manager',
  'node.role!=manager',
  'node.labels.zone==a',
  'node.labels.zone!=b',
  'node.labels.disk==ssd',
  'node.platform.arch==amd64',
  'node.hostname!=h1',
  'node.id!=n02',
];
const SPREADS = ['node.labels.zone', 'node.labels.disk', 'node.role'];

function randomCase(seed: number): { nodes: SchedulerNode[]; tasks: PendingTask[] } {
  const r = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const nodes: SchedulerNode[] = [];
  // Every fourth case is bigger: more than 32 nodes spans several words of the load order's bitsets.
  const big = seed % 4 === 0;
  const nodeCount = Math.floor(r() * (big ? 80 : 25));
  for (let i = 0; i < nodeCount; i++) {
    const cpus = (1 + Math.floor(r() * 4)) * CPU;
    const mem = (1 + Math.floor(r() * 4)) * GIB;
    const byService = new Map<string, number>();
    for (const s of SERVICES) if (r() < 0.3) byService.set(s, 1 + Math.floor(r() * 3));
    const itemised = [...byService.values()].reduce((a, b) => a + b, 0);
    const labels: Record<string, string> = {};
    if (r() < 0.8) labels.zone = pick(['a', 'b', 'c']);
    if (r() < 0.4) labels.disk = 'ssd';
    nodes.push({
      id: `n${String(i).padStart(2, '0')}`,
      hostname: `h${i}`,
      role: r() < 0.3 ? 'manager' : 'worker',
      availability: r() < 0.1 ? 'drain' : r() < 0.1 ? 'pause' : 'active',
      ready: r() >= 0.1,
      platform: pick(PLATFORMS),
      labels,
      resources: { nanoCpus: cpus, memoryBytes: mem },
      reserved: { nanoCpus: Math.floor(r() * cpus), memoryBytes: Math.floor(r() * mem) },
      tasksByService: byService,
      totalTasks: itemised + Math.floor(r() * 3),
    });
  }
  // A couple of spec versions per service, so groups of one service interact.
  const specs = new Map<string, Array<Omit<PendingTask, 'id' | 'serviceId'>>>();
  for (const s of SERVICES) {
    const versions: Array<Omit<PendingTask, 'id' | 'serviceId'>> = [];
    for (let v = 0, n = 1 + Math.floor(r() * 2); v < n; v++) {
      const spec: Omit<PendingTask, 'id' | 'serviceId'> = {};
      if (r() < 0.5) spec.constraints = Array.from({ length: 1 + Math.floor(r() * 2) }, () => pick(CONSTRAINTS));
      if (r() < 0.4) spec.preferences = Array.from({ length: 1 + Math.floor(r() * 2) }, () => ({ spread: pick(SPREADS) }));
      if (r() < 0.6) spec.reservations = { nanoCpus: Math.floor(r() * 2 * CPU), memoryBytes: r() < 0.5 ? 0 : Math.floor(r() * GIB) };
      if (r() < 0.3) spec.maxReplicasPerNode = Math.floor(r() * 4);
      if (r() < 0.3) spec.platforms = [pick(PLATFORMS), ...(r() < 0.5 ? [pick(PLATFORMS)] : [])].map((p) => ({ ...p }));
      versions.push(spec);
    }
    specs.set(s, versions);
  }
  const tasks: PendingTask[] = [];
  const taskCount = Math.floor(r() * (big ? 200 : 60));
  for (let i = 0; i < taskCount; i++) {
    const serviceId = pick(SERVICES);
    // Fresh copies: grouping must compare contents.
    const spec = structuredClone(pick(specs.get(serviceId)!));
    tasks.push({ ...spec, id: `t${i}`, serviceId });
  }
  return { nodes, tasks };
}

// --- an independent, slow model of the same rules ---

const ARCH: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64' };
const arch = (a: string): string => ARCH[a.toLowerCase()] ?? a.toLowerCase();

function attr(n: SchedulerNode, key: string): string | undefined {
  if (key === 'node.id') return n.id;
  if (key === 'node.hostname') return n.hostname;
  if (key === 'node.role') return n.role;
  if (key === 'node.platform.os') return n.platform.os;
  if (key === 'node.platform.arch') return arch(n.platform.arch);
  if (key.startsWith('node.labels.')) return n.labels[key.slice('node.labels.'.length)];
  throw new Error(`model: unknown key ${key}`);
}

function satisfies(n: SchedulerNode, c: string): boolean {
  const [key, value] = c.split(/==|!=/) as [string, string];
  const v = key === 'node.platform.arch' ? arch(value) : value.toLowerCase();
  const equal = (attr(n, key) ?? '').toLowerCase() === v;
  return c.includes('==') ? equal : !equal;
}

const platformOk = (n: SchedulerNode, t: PendingTask): boolean =>
  (t.platforms ?? []).length === 0 ||
  t.platforms!.some((p) => p.os.toLowerCase() === n.platform.os.toLowerCase() && arch(p.arch) === arch(n.platform.arch));

interface Live {
  n: SchedulerNode;
  cpu: number;
  mem: number;
  total: number;
  svc: Map<string, number>;
}

const staticOk = (l: Live, t: PendingTask): boolean =>
  l.n.ready && l.n.availability === 'active' && (t.constraints ?? []).every((c) => satisfies(l.n, c)) && platformOk(l.n, t);

function dynamicOk(l: Live, t: PendingTask): boolean {
  const cpu = t.reservations?.nanoCpus ?? 0;
  const mem = t.reservations?.memoryBytes ?? 0;
  const max = t.maxReplicasPerNode ?? 0;
  return (cpu === 0 || l.cpu >= cpu) && (mem === 0 || l.mem >= mem) && (max === 0 || (l.svc.get(t.serviceId) ?? 0) < max);
}

const placementKey = (t: PendingTask): string =>
  JSON.stringify([
    t.constraints ?? [],
    (t.preferences ?? []).map((p) => p.spread),
    t.reservations?.nanoCpus ?? 0,
    t.reservations?.memoryBytes ?? 0,
    t.maxReplicasPerNode ?? 0,
    (t.platforms ?? []).map((p) => [p.os, p.arch]),
  ]);

/** One task at a time, every node every time: the rules spelled out with no cleverness. */
function model(nodes: SchedulerNode[], tasks: PendingTask[]): Map<string, string> {
  const live: Live[] = nodes.map((n) => ({
    n,
    cpu: n.resources.nanoCpus - n.reserved.nanoCpus,
    mem: n.resources.memoryBytes - n.reserved.memoryBytes,
    total: n.totalTasks,
    svc: new Map(n.tasksByService),
  }));
  // Same batching order as documented: services by id, spec versions by first appearance.
  const groups = new Map<string, PendingTask[]>();
  for (const t of tasks) {
    const k = placementKey(t);
    const byService = [...groups.keys()].filter((g) => g.startsWith(t.serviceId + '\u0000'));
    const key = byService.find((g) => g.endsWith('\u0000' + k)) ?? `${t.serviceId}\u0000${byService.length}\u0000${k}`;
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const order = [...groups.keys()].sort((a, b) => {
    const [sa, ia] = a.split('\u0000');
    const [sb, ib] = b.split('\u0000');
    return sa! < sb! ? -1 : sa! > sb! ? 1 : Number(ia) - Number(ib);
  });
  const out = new Map<string, string>();
  for (const key of order) {
    for (const t of groups.get(key)!) {
      let pool = live.filter((l) => staticOk(l, t));
      // Walk down the preferences: the value group with the fewest tasks of the service among
      // groups that still have a node able to take the task; unlabelled last on ties.
      for (const p of t.preferences ?? []) {
        const vals = new Map<string | undefined, Live[]>();
        for (const l of pool) vals.set(attr(l.n, p.spread), [...(vals.get(attr(l.n, p.spread)) ?? []), l]);
        let best: { v: string | undefined; svc: number } | undefined;
        for (const [v, ls] of vals) {
          if (!ls.some((l) => dynamicOk(l, t))) continue;
          const svc = ls.reduce((a, l) => a + (l.svc.get(t.serviceId) ?? 0), 0);
          const better =
            best === undefined ||
            svc < best.svc ||
            (svc === best.svc && v !== undefined && (best.v === undefined || v < best.v));
          if (better) best = { v, svc };
        }
        pool = best === undefined ? [] : vals.get(best.v)!;
      }
      const cands = pool.filter((l) => dynamicOk(l, t));
      cands.sort((a, b) => {
        const sa = a.svc.get(t.serviceId) ?? 0;
        const sb = b.svc.get(t.serviceId) ?? 0;
        if (sa !== sb) return sa - sb;
        if (a.total !== b.total) return a.total - b.total;
        return a.n.id < b.n.id ? -1 : 1;
      });
      const l = cands[0];
      if (l === undefined) continue;
      out.set(t.id, l.n.id);
      l.cpu -= t.reservations?.nanoCpus ?? 0;
      l.mem -= t.reservations?.memoryBytes ?? 0;
      l.total++;
      l.svc.set(t.serviceId, (l.svc.get(t.serviceId) ?? 0) + 1);
    }
  }
  return out;
}

describe('random clusters', () => {
  const SEEDS = 400;

  it(`${SEEDS} seeds: every decision obeys the filters and matches the slow model`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const { nodes, tasks } = randomCase(seed);
      const r = schedule(nodes, tasks);
      const ctx = `seed ${seed}`;

      // Every task is decided exactly once.
      for (const t of tasks) expect(r.assignments.has(t.id) !== r.unplaced.has(t.id), ctx).toBe(true);

      // No assignment breaks a filter, given the placements before it (the result's Map keeps the
      // order decisions were made in), so no node ends up over its resources or max per node.
      const live = new Map<string, Live>(
        nodes.map((n) => [
          n.id,
          {
            n,
            cpu: n.resources.nanoCpus - n.reserved.nanoCpus,
            mem: n.resources.memoryBytes - n.reserved.memoryBytes,
            total: n.totalTasks,
            svc: new Map(n.tasksByService),
          },
        ]),
      );
      const byId = new Map(tasks.map((t) => [t.id, t]));
      for (const [taskId, nodeId] of r.assignments) {
        const t = byId.get(taskId)!;
        const l = live.get(nodeId)!;
        expect(staticOk(l, t), `${ctx}: ${taskId} on ${nodeId}`).toBe(true);
        expect(dynamicOk(l, t), `${ctx}: ${taskId} on ${nodeId} (resources, max per node)`).toBe(true);
        l.cpu -= t.reservations?.nanoCpus ?? 0;
        l.mem -= t.reservations?.memoryBytes ?? 0;
        l.svc.set(t.serviceId, (l.svc.get(t.serviceId) ?? 0) + 1);
        if ((t.reservations?.nanoCpus ?? 0) > 0) expect(l.cpu, `${ctx}: cpu of ${nodeId}`).toBeGreaterThanOrEqual(0);
        if ((t.reservations?.memoryBytes ?? 0) > 0) expect(l.mem, `${ctx}: memory of ${nodeId}`).toBeGreaterThanOrEqual(0);
      }

      // A pending task fits nowhere, even now that the pass is done.
      for (const taskId of r.unplaced.keys()) {
        const t = byId.get(taskId)!;
        for (const l of live.values()) {
          expect(staticOk(l, t) && dynamicOk(l, t), `${ctx}: ${taskId} could go to ${l.n.id}`).toBe(false);
        }
        // Each node is counted once, under one filter.
        const why = r.unplaced.get(taskId)!;
        const counted = why.startsWith('no suitable node (')
          ? [...why.matchAll(/(\d+) nodes?/g)].reduce((a, m) => a + Number(m[1]), 0)
          : Number(/: (\d+) nodes? checked/.exec(why)?.[1]);
        expect(counted, `${ctx}: ${why}`).toBe(nodes.length === 0 ? 0 : nodes.length);
      }

      // The same decisions as the model, task for task.
      expect(new Map([...r.assignments].sort()), ctx).toEqual(new Map([...model(nodes, tasks)].sort()));
    }
  });
});
