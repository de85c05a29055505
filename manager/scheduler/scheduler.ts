// One scheduling pass: pending tasks in, placement decisions out. Pure: no I/O, inputs never mutated.
//
// Tasks are batched into groups of identical placement (same service, same placement fields), as
// swarmkit does, so filters run once per group, not per task. Within a group each task goes to the
// eligible node with the fewest tasks of the service, then the fewest tasks overall, then the lowest
// id. Nodes enter a group's heap lazily: those already running the service first, then the others
// in global load order (order.ts) only while they could beat the heap's top, so a group costs
// O(tasks log tasks) plus the nodes it skips, not O(nodes). Spread preferences add a tree above the
// heaps, swarmkit's way: at each level the value group with the fewest tasks of the service wins.

import {
  attributeGroup,
  firstFailedConstraint,
  normalizeArch,
  parseConstraints,
  parsePreference,
  type Attribute,
  type Constraint,
} from './constraint.js';
import { MinHeap } from './heap.js';
import { LoadOrder, type LoadWalk } from './order.js';
import type { PendingTask, ScheduleResult, SchedulerNode } from './types.js';

// Verdicts of the filters that do not depend on load, cached per (constraints, platforms): many
// groups share them (most often: none at all).
const OK = 0;
const NOT_READY = 1;
const DRAINED = 2;
const PAUSED = 3;
const BAD_PLATFORM = 4;
const CONSTRAINT = 8; // + index of the first constraint the node fails

interface Group {
  serviceId: string;
  /** The first task of the group: the others have the same placement fields. */
  spec: PendingTask;
  tasks: PendingTask[];
}

/** A group of nodes sharing a spread attribute value (or, without preferences, all nodes). */
interface Branch {
  key: string | undefined;
  /** Tasks of the service in the subtree, counting nodes that cannot take more: they are there. */
  svc: number;
  /** Inner branch: child groups by load. */
  children?: MinHeap<Branch>;
  /** Leaf branch: nodes that have taken or may take tasks of this group. */
  heap?: MinHeap<number>;
  /** Leaf branch: untouched candidates, least loaded first (-1: none left). */
  source?: () => number;
}

/** The tree of attribute values for a list of spread preferences, the same for every group. */
interface Skeleton {
  keys: Array<string | undefined>;
  parent: Int32Array;
  /** Children of each skeleton node, empty for leaves. */
  children: number[][];
  /** Leaf skeleton node of each cluster node. */
  leafOf: Int32Array;
}

/**
 * Place pending tasks on nodes. The same input (including order) always gives the same output.
 * Tasks that fit nowhere come back in `unplaced` with the reason; bad task data never throws (an
 * unparsable constraint becomes its tasks' reason).
 */
export function schedule(nodes: readonly SchedulerNode[], tasks: readonly PendingTask[]): ScheduleResult {
  const result: ScheduleResult = { assignments: new Map(), unplaced: new Map() };
  if (tasks.length === 0) return result;
  new Pass(nodes).run(groupTasks(tasks), result);
  return result;
}

class Pass {
  /** Nodes sorted by id: an index is also the final tie-break. */
  private readonly nodes: SchedulerNode[];
  private readonly freeCpu: Float64Array;
  private readonly freeMem: Float64Array;
  private readonly total: Int32Array;
  private readonly os: string[];
  private readonly arch: string[];
  private readonly order: LoadOrder;
  /** Tasks of the current group's service per node; 0 outside the nodes the group touched. */
  private readonly svc: Int32Array;
  private readonly startTotal: Int32Array;
  private readonly startSvc: Int32Array;
  /** Per pending service: node index -> its tasks there, kept current as groups place tasks. */
  private readonly perService = new Map<string, Map<number, number>>();
  /** Groups of each service not yet scheduled: the last one need not record its counts. */
  private readonly groupsLeft = new Map<string, number>();
  private readonly verdictCache = new Map<string, Int32Array>();
  private readonly skeletonCache = new Map<string, Skeleton>();

  // The current group's needs, read by the hot comparisons below.
  private needCpu = 0;
  private needMem = 0;
  private max = 0;

  constructor(input: readonly SchedulerNode[]) {
    this.nodes = [...input].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const n = this.nodes.length;
    this.freeCpu = new Float64Array(n);
    this.freeMem = new Float64Array(n);
    this.total = new Int32Array(n);
    this.svc = new Int32Array(n);
    this.startTotal = new Int32Array(n);
    this.startSvc = new Int32Array(n);
    this.os = [];
    this.arch = [];
    this.nodes.forEach((node, i) => {
      this.freeCpu[i] = node.resources.nanoCpus - node.reserved.nanoCpus;
      this.freeMem[i] = node.resources.memoryBytes - node.reserved.memoryBytes;
      this.total[i] = node.totalTasks;
      this.os.push(node.platform.os.toLowerCase());
      this.arch.push(normalizeArch(node.platform.arch));
    });
    this.order = new LoadOrder(this.total);
  }

  run(groups: Group[], result: ScheduleResult): void {
    for (const g of groups) {
      this.perService.set(g.serviceId, new Map());
      this.groupsLeft.set(g.serviceId, (this.groupsLeft.get(g.serviceId) ?? 0) + 1);
    }
    this.nodes.forEach((node, i) => {
      for (const [sid, count] of node.tasksByService) {
        if (count > 0) this.perService.get(sid)?.set(i, count);
      }
    });
    for (const g of groups) this.group(g, result);
  }

  private readonly fits = (i: number): boolean =>
    (this.needCpu === 0 || this.freeCpu[i]! >= this.needCpu) && (this.needMem === 0 || this.freeMem[i]! >= this.needMem);

  /** Fewest tasks of the service, then fewest tasks, then lowest id. */
  private readonly less = (a: number, b: number): boolean => {
    const sa = this.svc[a]!;
    const sb = this.svc[b]!;
    if (sa !== sb) return sa < sb;
    const ta = this.total[a]!;
    const tb = this.total[b]!;
    return ta !== tb ? ta < tb : a < b;
  };

  private group(g: Group, result: ScheduleResult): void {
    let constraints: Constraint[];
    let prefs: Attribute[];
    try {
      constraints = parseConstraints(g.spec.constraints ?? []);
      prefs = (g.spec.preferences ?? []).map(parsePreference);
    } catch (err) {
      const reason = (err as Error).message;
      for (const t of g.tasks) result.unplaced.set(t.id, reason);
      return;
    }
    const verdict = this.verdicts(g.spec, constraints);
    const r = g.spec.reservations;
    this.needCpu = Math.max(0, r?.nanoCpus ?? 0);
    this.needMem = Math.max(0, r?.memoryBytes ?? 0);
    this.max = Math.max(0, g.spec.maxReplicasPerNode ?? 0);

    // Nodes already running the service (that pass the static filters) are the group's first
    // candidates: the load order below knows nothing of per-service counts.
    const touched: number[] = [];
    const seeds: number[] = [];
    const existing = this.perService.get(g.serviceId)!;
    for (const [i, count] of existing) {
      if (verdict[i] !== OK) continue;
      this.svc[i] = count;
      this.startSvc[i] = count;
      this.startTotal[i] = this.total[i]!;
      touched.push(i);
      if (this.open(i)) seeds.push(i);
    }

    const root = prefs.length === 0 ? this.flatRoot(verdict, seeds, touched) : this.tree(prefs, verdict, seeds, touched);

    let placed = 0;
    for (; placed < g.tasks.length; placed++) {
      const i = this.place(root);
      if (i < 0) break;
      result.assignments.set(g.tasks[placed]!.id, this.nodes[i]!.id);
    }
    if (placed < g.tasks.length) {
      const reason = this.explain(verdict, constraints);
      for (let k = placed; k < g.tasks.length; k++) result.unplaced.set(g.tasks[k]!.id, reason);
    }

    // Hand the group's placements on: load order for every later group, counts for later groups of
    // the same service (another spec version; usually there is none, and Map writes are not free).
    const left = this.groupsLeft.get(g.serviceId)! - 1;
    this.groupsLeft.set(g.serviceId, left);
    for (const i of touched) {
      this.order.move(i, this.startTotal[i]!, this.total[i]!);
      if (left > 0 && this.svc[i]! !== this.startSvc[i]!) existing.set(i, this.svc[i]!);
      this.svc[i] = 0;
    }
  }

  /** Resources and max replicas: the filters that change as tasks are placed. */
  private open(i: number): boolean {
    return this.fits(i) && (this.max === 0 || this.svc[i]! < this.max);
  }

  private flatRoot(verdict: Int32Array, seeds: number[], touched: number[]): Branch {
    const walk = this.order.walk();
    const svc = this.svc;
    const startTotal = this.startTotal;
    const startSvc = this.startSvc;
    const total = this.total;
    const source = (): number => {
      for (;;) {
        const i = walk.next();
        // svc > 0: a seed, already in the heap (or full).
        if (i < 0 || (verdict[i] === OK && svc[i] === 0)) {
          if (i >= 0) {
            startTotal[i] = total[i]!;
            startSvc[i] = 0;
            touched.push(i);
          }
          return i;
        }
      }
    };
    return { key: undefined, svc: 0, heap: new MinHeap(seeds, this.less), source };
  }

  /** Build the preference tree for one group: one pass over all nodes in load order. */
  private tree(prefs: Attribute[], verdict: Int32Array, seeds: number[], touched: number[]): Branch {
    const skel = this.skeleton(prefs);
    const size = skel.keys.length;
    const svcSum = new Float64Array(size);
    const lists: number[][] = Array.from({ length: size }, () => []);
    const seedLists: number[][] = Array.from({ length: size }, () => []);
    for (const i of touched) {
      // Every node already running the service weighs in its group, open or not.
      for (let s = skel.leafOf[i]!; s >= 0; s = skel.parent[s]!) svcSum[s]! += this.svc[i]!;
    }
    for (const i of seeds) seedLists[skel.leafOf[i]!]!.push(i);
    const walk: LoadWalk = this.order.walk();
    for (let i = walk.next(); i >= 0; i = walk.next()) {
      if (verdict[i] === OK && this.svc[i] === 0) {
        lists[skel.leafOf[i]!]!.push(i);
        this.startTotal[i] = this.total[i]!;
        this.startSvc[i] = 0;
        touched.push(i);
      }
    }
    const build = (s: number): Branch | undefined => {
      const kids = skel.children[s]!;
      if (kids.length === 0) {
        const list = lists[s]!;
        if (list.length === 0 && seedLists[s]!.length === 0) return undefined;
        let at = 0;
        return {
          key: skel.keys[s],
          svc: svcSum[s]!,
          heap: new MinHeap(seedLists[s]!, this.less),
          source: () => (at < list.length ? list[at++]! : -1),
        };
      }
      const children: Branch[] = [];
      for (const k of kids) {
        const b = build(k);
        if (b !== undefined) children.push(b);
      }
      if (children.length === 0) return undefined;
      return { key: skel.keys[s], svc: svcSum[s]!, children: new MinHeap(children, branchLess) };
    };
    return build(0) ?? { key: undefined, svc: 0, children: new MinHeap<Branch>([], branchLess) };
  }

  /** Place one task in the subtree; returns the node index, or -1 when nothing there can take it. */
  private place(b: Branch): number {
    if (b.children !== undefined) {
      const heap = b.children;
      for (;;) {
        const top = heap.peek();
        if (top === undefined) return -1;
        const i = this.place(top);
        if (i < 0) {
          heap.pop();
          continue;
        }
        top.svc++;
        heap.updateTop();
        return i;
      }
    }
    const heap = b.heap!;
    let next = -2; // -2: not fetched yet
    for (;;) {
      if (next === -2) next = b.source!();
      const top = heap.peek();
      // An untouched node has no task of the service: it beats the top unless the top has none too
      // and is less loaded.
      if (next >= 0 && (top === undefined || this.less(next, top))) {
        const i = next;
        next = -2;
        if (!this.fits(i)) continue; // max replicas cannot bite: it has none of the service yet
        this.assign(i);
        heap.push(i);
        return i;
      }
      if (top === undefined) return -1;
      if (!this.open(top)) {
        heap.pop();
        continue;
      }
      this.assign(top);
      heap.updateTop();
      // A fetched candidate that lost goes back; sources cannot un-read, so keep it in the heap.
      if (next >= 0) heap.push(next);
      return top;
    }
  }

  private assign(i: number): void {
    this.svc[i]!++;
    this.total[i]!++;
    this.freeCpu[i]! -= this.needCpu;
    this.freeMem[i]! -= this.needMem;
  }

  private verdicts(spec: PendingTask, constraints: readonly Constraint[]): Int32Array {
    const platforms = (spec.platforms ?? []).map((p) => ({ os: p.os.toLowerCase(), arch: normalizeArch(p.arch) }));
    const key = constraints.map((c) => c.text).join('\u0000') + '\u0001' + platforms.map((p) => `${p.os}/${p.arch}`).join('\u0000');
    const hit = this.verdictCache.get(key);
    if (hit !== undefined) return hit;
    const out = new Int32Array(this.nodes.length);
    for (let i = 0; i < this.nodes.length; i++) {
      const n = this.nodes[i]!;
      if (!n.ready) out[i] = NOT_READY;
      else if (n.availability !== 'active') out[i] = n.availability === 'drain' ? DRAINED : PAUSED;
      else {
        const c = constraints.length === 0 ? -1 : firstFailedConstraint(constraints, n);
        if (c >= 0) out[i] = CONSTRAINT + c;
        else if (platforms.length > 0 && !platforms.some((p) => this.platformMatches(p, i))) out[i] = BAD_PLATFORM;
      }
    }
    this.verdictCache.set(key, out);
    return out;
  }

  /** An empty os or arch on either side matches anything: images and nodes do not always say. */
  private platformMatches(p: { os: string; arch: string }, i: number): boolean {
    const os = this.os[i]!;
    const arch = this.arch[i]!;
    return (p.os === '' || os === '' || p.os === os) && (p.arch === '' || arch === '' || p.arch === arch);
  }

  private skeleton(prefs: Attribute[]): Skeleton {
    const cacheKey = JSON.stringify(prefs);
    const hit = this.skeletonCache.get(cacheKey);
    if (hit !== undefined) return hit;
    const keys: Array<string | undefined> = [undefined];
    const parents: number[] = [-1];
    const children: number[][] = [[]];
    const index: Array<Map<string | undefined, number>> = [new Map()];
    const leafOf = new Int32Array(this.nodes.length);
    this.nodes.forEach((node, i) => {
      let s = 0;
      for (const attr of prefs) {
        const k = attributeGroup(attr, node);
        let child = index[s]!.get(k);
        if (child === undefined) {
          child = keys.length;
          keys.push(k);
          parents.push(s);
          children.push([]);
          index.push(new Map());
          index[s]!.set(k, child);
          children[s]!.push(child);
        }
        s = child;
      }
      leafOf[i] = s;
    });
    const skel: Skeleton = { keys, parent: Int32Array.from(parents), children, leafOf };
    this.skeletonCache.set(cacheKey, skel);
    return skel;
  }

  /**
   * Why a group's remaining tasks fit nowhere, counting each node under the first filter of the
   * pipeline (ready, availability, constraints, resources, platform, max replicas) that rejects it.
   * Only runs when a group is stuck, so it can afford a pass over every node.
   */
  private explain(verdict: Int32Array, constraints: readonly Constraint[]): string {
    const n = this.nodes.length;
    if (n === 0) return 'no suitable node (no nodes in the cluster)';
    let notReady = 0;
    let drained = 0;
    let paused = 0;
    let unsatisfied = 0;
    let resources = 0;
    let platform = 0;
    let maxed = 0;
    const perConstraint = constraints.map(() => 0);
    for (let i = 0; i < n; i++) {
      const v = verdict[i]!;
      if (v === NOT_READY) notReady++;
      else if (v === DRAINED) drained++;
      else if (v === PAUSED) paused++;
      else if (v >= CONSTRAINT) {
        unsatisfied++;
        perConstraint[v - CONSTRAINT]!++;
      } else if (!this.fits(i)) resources++;
      else if (v === BAD_PLATFORM) platform++;
      else if (this.max !== 0 && this.svc[i]! >= this.max) maxed++;
    }
    if (unsatisfied === n) {
      const checked = `${plural(n, 'node')} checked`;
      const failing = constraints.filter((_, k) => perConstraint[k]! > 0);
      if (failing.length === 1) return `no node satisfies ${failing[0]!.text}: ${checked}`;
      const detail = constraints
        .map((c, k) => (perConstraint[k]! > 0 ? `${c.text} ruled out ${perConstraint[k]}` : ''))
        .filter((s) => s !== '')
        .join(', ');
      return `no node satisfies ${failing.map((c) => c.text).join(' and ')}: ${checked} (${detail})`;
    }
    const parts: string[] = [];
    if (notReady > 0) parts.push(`${plural(notReady, 'node')} not ready`);
    if (drained > 0) parts.push(`${plural(drained, 'node')} drained`);
    if (paused > 0) parts.push(`${plural(paused, 'node')} paused`);
    if (unsatisfied > 0) parts.push(`scheduling constraints not satisfied on ${plural(unsatisfied, 'node')}`);
    if (resources > 0) parts.push(`insufficient resources on ${plural(resources, 'node')}`);
    if (platform > 0) parts.push(`unsupported platform on ${plural(platform, 'node')}`);
    if (maxed > 0) parts.push(`max replicas per node (${this.max}) reached on ${plural(maxed, 'node')}`);
    return `no suitable node (${parts.join('; ')})`;
  }
}

// Nodes missing the attribute form a group of their own, after every named value on ties (as in
// Swarm, that group gets tasks in the same proportion as any other).
const branchLess = (a: Branch, b: Branch): boolean => {
  if (a.svc !== b.svc) return a.svc < b.svc;
  if (a.key === undefined) return false;
  if (b.key === undefined) return true;
  return a.key < b.key;
};

const plural = (n: number, one: string): string => `${n} ${n === 1 ? one : one + 's'}`;

function groupTasks(tasks: readonly PendingTask[]): Group[] {
  const byService = new Map<string, Group[]>();
  for (const t of tasks) {
    let list = byService.get(t.serviceId);
    if (list === undefined) {
      list = [];
      byService.set(t.serviceId, list);
    }
    let group: Group | undefined;
    for (const g of list) {
      if (samePlacement(g.spec, t)) {
        group = g;
        break;
      }
    }
    if (group === undefined) {
      group = { serviceId: t.serviceId, spec: t, tasks: [] };
      list.push(group);
    }
    group.tasks.push(t);
  }
  // Groups compete for resources: their order must not depend on the order tasks came in.
  const out: Group[] = [];
  for (const id of [...byService.keys()].sort()) out.push(...byService.get(id)!);
  return out;
}

function samePlacement(a: PendingTask, b: PendingTask): boolean {
  return (
    (a.reservations?.nanoCpus ?? 0) === (b.reservations?.nanoCpus ?? 0) &&
    (a.reservations?.memoryBytes ?? 0) === (b.reservations?.memoryBytes ?? 0) &&
    (a.maxReplicasPerNode ?? 0) === (b.maxReplicasPerNode ?? 0) &&
    sameList(a.constraints, b.constraints, (x, y) => x === y) &&
    sameList(a.preferences, b.preferences, (x, y) => x.spread === y.spread) &&
    sameList(a.platforms, b.platforms, (x, y) => x.os === y.os && x.arch === y.arch)
  );
}

function sameList<T>(a: readonly T[] | undefined, b: readonly T[] | undefined, eq: (x: T, y: T) => boolean): boolean {
  if (a === b) return true;
  const n = a?.length ?? 0;
  if (n !== (b?.length ?? 0)) return false;
  for (let i = 0; i < n; i++) if (!eq(a![i]!, b![i]!)) return false;
  return true;
}
