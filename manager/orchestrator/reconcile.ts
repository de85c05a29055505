// The orchestrators as one pure pass: services, tasks and nodes in, the task
// writes that bring the cluster closer to what the services ask out. Level
// triggered: the leader runs it after any change (and a new leader at once),
// so a write lost with a leader change is simply decided again.
//
//   replicated      keeps slots 1..N live; scale-down shuts the slots that
//                   hurt readiness and spread least
//   global          one live task per eligible node
//   replicated job  runs tasks until total completions, max concurrent at once
//   global job      one completion per eligible node
//   restarts        an ended task is replaced per the restart policy
//   node down/drain tasks there are shut down and replaced elsewhere
//   reaper          keeps `historyLimit` ended tasks per slot (per node for
//                   global services); tasks of removed services and of slots a
//                   scale-down dropped go once ended, as in Swarm
//   rolling update  tasks of an older task template are replaced a few at a
//                   time (update.ts)
import { api } from '../../proto/services.js';
import type { NodeObject, ServiceObject, TaskObject } from '../cluster/tables.js';
import { matchConstraint, parseConstraints, type Constraint, type SchedulerNode } from '../scheduler/index.js';
import { decideRestart, isJob } from './restart.js';
import { S, hasEnded, isLive, stateOf, toBeRemoved } from './states.js';
import { templateChanges } from '../../proto/templatechange.js';
import { isRollback, planUpdate, statusOf } from './update.js';

export interface OrchestratorInput {
  services: readonly ServiceObject[];
  tasks: readonly TaskObject[];
  nodes: readonly NodeObject[];
  /** The scheduler's view of the same nodes (for constraints of global services). */
  schedulerNodes: readonly SchedulerNode[];
  now: number;
  /** Ended tasks kept per slot (Swarm's task history retention limit). */
  historyLimit: number;
}

export type NewTask = Omit<TaskObject, 'meta'>;

export interface Plan {
  create: NewTask[];
  /** Changed copies of tasks (meta.version as read: stale ones fail and wait for the next pass). */
  update: TaskObject[];
  remove: TaskObject[];
  /** Changed copies of services (their update status; a rollback's specs), version-checked as tasks are. */
  services: ServiceObject[];
  /** When a pass is next due without any change (a rolling update's delay or monitor period ends). */
  wakeAt?: number;
}

export const DEFAULT_HISTORY_LIMIT = 5;

type NodeIssue = { reason: string } | undefined;

export function reconcile(input: OrchestratorInput, newId: () => string): Plan {
  return new Pass(input, newId).run();
}

class Pass {
  private readonly plan: Plan = { create: [], update: [], remove: [], services: [] };
  /** Per service and spec version: were its tasks made from an older template than the service's? */
  private readonly outdatedCache = new Map<string, boolean>();
  private readonly updated = new Map<string, TaskObject>();
  private readonly nodes = new Map<string, NodeObject>();
  private readonly schedNodes = new Map<string, SchedulerNode>();
  private readonly tasksBySvc = new Map<string, TaskObject[]>();

  constructor(private readonly in_: OrchestratorInput, private readonly newId: () => string) {
    for (const n of in_.nodes) this.nodes.set(n.id, n);
    for (const n of in_.schedulerNodes) this.schedNodes.set(n.id, n);
    for (const t of in_.tasks) {
      let l = this.tasksBySvc.get(t.serviceId);
      if (!l) this.tasksBySvc.set(t.serviceId, (l = []));
      l.push(t);
    }
  }

  run(): Plan {
    const known = new Set<string>();
    for (const svc of this.in_.services) {
      known.add(svc.id);
      const tasks = this.tasksBySvc.get(svc.id) ?? [];
      if (svc.spec?.global) this.global(svc, tasks, false);
      else if (svc.spec?.globalJob) this.global(svc, tasks, true);
      else if (svc.spec?.replicatedJob) this.replicatedJob(svc, tasks);
      else this.replicated(svc, tasks);
      this.reap(svc, tasks);
    }
    for (const [svcId, tasks] of this.tasksBySvc) if (!known.has(svcId)) this.removedService(tasks);
    this.plan.update = [...this.updated.values()];
    return this.plan;
  }

  // ---- building blocks ----

  /** The task as this pass has changed it so far. */
  private cur(t: TaskObject): TaskObject {
    return this.updated.get(t.id) ?? t;
  }

  private change(t: TaskObject, fn: (c: TaskObject) => void): void {
    // A shallow copy: fn sets top-level fields only, and what it shares is frozen.
    const c = { ...this.cur(t) } as TaskObject;
    fn(c);
    this.updated.set(t.id, c);
  }

  /** The managers no longer want it to run. */
  private shutdown(t: TaskObject, reason: string, desired: number = S.TASK_SHUTDOWN): void {
    this.change(t, (c) => {
      c.desiredState = desired;
      c.shutdownReason = reason;
      // Never given to a node: no agent will ever report on it, so its status ends here.
      if (!c.nodeId || (stateOf(c) < S.TASK_ASSIGNED && !hasEnded(c))) {
        c.status = { ...(c.status ?? {}), state: S.TASK_SHUTDOWN, message: reason, timestamp: this.in_.now } as never;
      }
    });
  }

  private newTask(svc: ServiceObject, slot: number, nodeId: string, history: number[] = [], notBefore = 0): void {
    const delayed = notBefore > this.in_.now;
    this.plan.create.push({
      id: this.newId(),
      serviceId: svc.id,
      serviceName: svc.spec?.name ?? '',
      slot,
      nodeId,
      desiredState: S.TASK_RUNNING,
      status: {
        state: S.TASK_PENDING,
        message: delayed ? `restart delay: starts after ${Math.round((notBefore - this.in_.now) / 100) / 10} s` : 'pending task scheduling',
        err: '', exitCode: 0, timestamp: this.in_.now, containerId: '',
      },
      spec: structuredClone(svc.spec?.taskTemplate) as never,
      serviceVersion: Number(svc.meta.version),
      restartHistory: history,
      notBefore: delayed ? notBefore : 0,
      shutdownReason: '',
    } as unknown as NewTask);
  }

  /** Why tasks on this task's node cannot go on there, if they cannot. */
  private nodeIssue(t: TaskObject): NodeIssue {
    if (!t.nodeId) return undefined;
    const n = this.nodes.get(t.nodeId);
    if (!n) return { reason: 'node removed from the cluster' };
    if (n.status?.state === api.NodeState.NODE_DOWN) return { reason: `node ${n.description?.hostname || n.id} is down` };
    if (Number(n.spec?.availability) === api.NodeAvailability.AVAILABILITY_DRAIN) return { reason: `node ${n.description?.hostname || n.id} is drained` };
    return undefined;
  }

  /** Newest first (the store's version orders writes; creation time breaks nothing). */
  private static newestFirst(a: TaskObject, b: TaskObject): number {
    return Number(b.meta.createdAt) - Number(a.meta.createdAt) || Number(b.meta.version) - Number(a.meta.version);
  }

  /**
   * Of several live tasks in one slot keep the newest made from the service's template (the
   * newest of all when none is); shut the rest. Returns the keeper. With start-first updates,
   * tasks of an older template run on while the keeper is not running (its replacement is
   * starting, or failed and the update paused).
   */
  private single(svc: ServiceObject, live: TaskObject[]): TaskObject | undefined {
    if (live.length <= 1) return live[0];
    live.sort(Pass.newestFirst);
    const current = live.find((t) => !this.outdated(svc, t));
    const keeper = current ?? live[0]!;
    const overlap = !!current && this.startFirst(svc) && stateOf(keeper) !== S.TASK_RUNNING;
    for (const extra of live) {
      if (extra === keeper || (overlap && this.outdated(svc, extra))) continue;
      this.shutdown(extra, 'superseded by another task of its slot');
    }
    return keeper;
  }

  /** The service's current update (or rollback) settings say start-first. */
  private startFirst(svc: ServiceObject): boolean {
    const cfg = isRollback(statusOf(svc).state) ? svc.spec?.rollbackConfig : svc.spec?.updateConfig;
    return Number(cfg?.order) === api.UpdateOrder.UPDATE_ORDER_START_FIRST;
  }

  /** Made from an older task template than the service's (one comparison per spec version). */
  private outdated(svc: ServiceObject, t: TaskObject): boolean {
    const key = `${svc.id}:${Number(t.serviceVersion)}`;
    let v = this.outdatedCache.get(key);
    if (v === undefined) {
      v = Number(t.serviceVersion) !== Number(svc.meta.version) && templateChanges(t.spec, svc.spec?.taskTemplate).length > 0;
      this.outdatedCache.set(key, v);
    }
    return v;
  }

  /**
   * The rolling update's step for this pass: replace some tasks of older templates, and write
   * the service's update status (or roll it back) when that changes. `units`: the live task of
   * each slot or node; `replacement` makes the new task for one.
   */
  private rollingUpdate(svc: ServiceObject, tasks: TaskObject[], units: TaskObject[], replacement: (t: TaskObject) => void): void {
    const live = units.filter((t) => isLive(this.cur(t)));
    const d = planUpdate({ svc, units: live, tasks, outdated: (t) => this.outdated(svc, t), now: this.in_.now });
    for (const t of d.replace) {
      if (!d.startFirst) this.shutdown(t, 'replaced by the service\'s new spec');
      replacement(t);
    }
    if (d.wakeAt !== undefined) this.plan.wakeAt = Math.min(this.plan.wakeAt ?? d.wakeAt, d.wakeAt);
    if (!d.status) return;
    const next = { ...svc, updateStatus: d.status } as ServiceObject;
    if (d.rollback) {
      next.spec = svc.previousSpec as never;
      next.previousSpec = svc.spec as never;
    }
    this.plan.services.push(next);
  }

  /**
   * A live task's fate: its node is gone or drained (replace it at once), it
   * ended (the restart policy decides), or it is fine. Returns true when the
   * slot still holds a live task afterwards (the old one or a replacement).
   */
  private supervise(svc: ServiceObject, t: TaskObject, replace: (history: number[], notBefore: number) => void): boolean {
    const issue = this.nodeIssue(t);
    if (issue && !(hasEnded(t) && stateOf(t) === S.TASK_COMPLETE && isJob(svc))) {
      this.shutdown(t, issue.reason);
      // A node going away is not the task's failure: its history is not charged.
      replace([...(t.restartHistory ?? []).map(Number)], 0);
      return true;
    }
    if (!hasEnded(t)) return true;
    const d = decideRestart(svc, t, this.in_.now);
    if (!d.restart) {
      // Say why nothing happens any more (written once: the pass is idempotent).
      if (d.why && d.why !== 'completed' && this.cur(t).shutdownReason !== d.why) this.change(t, (c) => { c.shutdownReason = d.why!; });
      return true;
    }
    this.shutdown(t, `restarting: task ${stateNameOf(t)}`);
    replace(d.history!, d.notBefore!);
    return true;
  }

  // ---- modes ----

  private replicated(svc: ServiceObject, tasks: TaskObject[]): void {
    const want = Number(svc.spec?.replicated?.replicas ?? 1);
    const bySlot = new Map<number, TaskObject[]>();
    for (const t of tasks) {
      if (!isLive(t)) continue;
      const s = Number(t.slot);
      let l = bySlot.get(s);
      if (!l) bySlot.set(s, (l = []));
      l.push(t);
    }
    const slots = new Map<number, TaskObject>();
    for (const [slot, live] of bySlot) slots.set(slot, this.single(svc, live)!);

    // Scale down first: shut the slots whose loss hurts least.
    if (slots.size > want) {
      const perNode = new Map<string, number>();
      for (const t of slots.values()) if (t.nodeId) perNode.set(t.nodeId, (perNode.get(t.nodeId) ?? 0) + 1);
      const rank = (t: TaskObject): number => (stateOf(t) === S.TASK_RUNNING && !this.nodeIssue(t) ? 1 : 0);
      const victims = [...slots.entries()].sort(([sa, a], [sb, b]) =>
        rank(a) - rank(b)
        || (perNode.get(b.nodeId) ?? 0) - (perNode.get(a.nodeId) ?? 0)
        || sb - sa,
      ).slice(0, slots.size - want);
      for (const [slot, t] of victims) {
        // REMOVE, not SHUTDOWN: the slot is gone, so is its history once this task has ended (Swarm's rule).
        this.shutdown(t, 'scaled down', S.TASK_REMOVE);
        slots.delete(slot);
        if (t.nodeId) perNode.set(t.nodeId, (perNode.get(t.nodeId) ?? 1) - 1);
      }
    }
    for (const [slot, t] of slots) this.supervise(svc, t, (h, nb) => this.newTask(svc, slot, '', h, nb));
    // Fill the lowest free slot numbers.
    let missing = want - slots.size;
    for (let slot = 1; missing > 0; slot++) {
      if (slots.has(slot)) continue;
      this.newTask(svc, slot, '');
      missing--;
    }
    this.rollingUpdate(svc, tasks, [...slots.values()], (t) => this.newTask(svc, Number(t.slot), ''));
  }

  private eligible(svc: ServiceObject, node: NodeObject, constraints: Constraint[] | undefined): boolean {
    if (node.status?.state === api.NodeState.NODE_DOWN) return false;
    if (Number(node.spec?.availability) === api.NodeAvailability.AVAILABILITY_DRAIN) return false;
    if (!constraints) return false;
    const sn = this.schedNodes.get(node.id);
    return !!sn && constraints.every((c) => matchConstraint(c, sn));
  }

  private global(svc: ServiceObject, tasks: TaskObject[], job: boolean): void {
    let constraints: Constraint[] | undefined;
    try {
      constraints = parseConstraints(svc.spec?.taskTemplate?.placement?.constraints ?? []);
    } catch {
      constraints = undefined; // validated at the API edge; a bad one places nothing
    }
    const byNode = new Map<string, TaskObject[]>();
    const units: TaskObject[] = [];
    const completedOn = new Set<string>();
    for (const t of tasks) {
      if (job && stateOf(t) === S.TASK_COMPLETE) completedOn.add(t.nodeId);
      if (!isLive(t)) continue;
      let l = byNode.get(t.nodeId);
      if (!l) byNode.set(t.nodeId, (l = []));
      l.push(t);
    }
    for (const node of this.in_.nodes) {
      const live = byNode.get(node.id) ?? [];
      byNode.delete(node.id);
      if (!this.eligible(svc, node, constraints)) {
        const why = this.nodeIssue({ nodeId: node.id } as TaskObject)?.reason ?? `node ${node.description?.hostname || node.id} no longer satisfies the service's constraints`;
        for (const t of live) if (!(job && stateOf(t) === S.TASK_COMPLETE)) this.shutdown(t, why);
        continue;
      }
      const t = this.single(svc, live);
      if (!t) {
        if (!job || !completedOn.has(node.id)) this.newTask(svc, 0, node.id);
        continue;
      }
      this.supervise(svc, t, (h, nb) => this.newTask(svc, 0, node.id, h, nb));
      if (!job) units.push(t);
    }
    if (!job) this.rollingUpdate(svc, tasks, units, (t) => this.newTask(svc, 0, t.nodeId));
    // Tasks on nodes that left the cluster.
    for (const live of byNode.values()) for (const t of live) this.shutdown(t, 'node removed from the cluster');
  }

  private replicatedJob(svc: ServiceObject, tasks: TaskObject[]): void {
    const total = Number(svc.spec?.replicatedJob?.totalCompletions ?? 1);
    const concurrent = Number(svc.spec?.replicatedJob?.maxConcurrent ?? 1);
    const bySlot = new Map<number, TaskObject[]>();
    let maxSlot = 0;
    for (const t of tasks) {
      maxSlot = Math.max(maxSlot, Number(t.slot));
      if (!isLive(t)) continue;
      let l = bySlot.get(Number(t.slot));
      if (!l) bySlot.set(Number(t.slot), (l = []));
      l.push(t);
    }
    let completed = 0;
    let active = 0;
    for (const [slot, live] of bySlot) {
      const t = this.single(svc, live)!;
      if (stateOf(t) === S.TASK_COMPLETE) {
        completed++;
        continue;
      }
      let replaced = false;
      this.supervise(svc, t, (h, nb) => {
        replaced = true;
        this.newTask(svc, slot, '', h, nb);
      });
      // A failed task the policy gave up on holds its slot but runs nothing.
      if (replaced || !hasEnded(t)) active++;
    }
    const start = Math.max(0, Math.min(concurrent - active, total - completed - active));
    for (let i = 0; i < start; i++) this.newTask(svc, ++maxSlot, '');
  }

  // ---- the reaper ----

  private reap(svc: ServiceObject, tasks: TaskObject[]): void {
    const limit = this.in_.historyLimit;
    const dropped = svc.spec?.replicated ? this.droppedSlots(svc, tasks) : new Set<number>();
    const groups = new Map<string, TaskObject[]>();
    for (const t0 of tasks) {
      const t = this.cur(t0);
      if (isLive(t)) continue;
      if (toBeRemoved(t) || dropped.has(Number(t.slot))) {
        // Told to go, or of a slot no task will hold again: no history to keep.
        if (this.gone(t)) {
          this.updated.delete(t.id);
          this.plan.remove.push(t);
        }
        continue;
      }
      const key = svc.spec?.global || svc.spec?.globalJob ? `n:${t.nodeId}` : `s:${t.slot}`;
      let l = groups.get(key);
      if (!l) groups.set(key, (l = []));
      l.push(t);
    }
    for (const dead of groups.values()) {
      if (dead.length <= limit) continue;
      dead.sort(Pass.newestFirst);
      for (const t of dead.slice(limit)) {
        // One still stopping on a reachable node stays until its agent reports the end.
        if (!hasEnded(t) && t.nodeId && !this.nodeIssue(t) && stateOf(t) >= S.TASK_ASSIGNED) continue;
        this.updated.delete(t.id);
        this.plan.remove.push(t);
      }
    }
  }

  /** Slots of a replicated service that hold no live task after this pass (a scale-down dropped them). */
  private droppedSlots(svc: ServiceObject, tasks: TaskObject[]): Set<number> {
    const held = new Set<number>();
    for (const t of tasks) if (isLive(this.cur(t))) held.add(Number(t.slot));
    for (const t of this.plan.create) if (t.serviceId === svc.id) held.add(Number(t.slot));
    const out = new Set<number>();
    for (const t of tasks) if (!held.has(Number(t.slot))) out.add(Number(t.slot));
    return out;
  }

  /** No agent will report on it any more: it ended, was never placed, or its node is gone. */
  private gone(t: TaskObject): boolean {
    return hasEnded(t) || !t.nodeId || stateOf(t) < S.TASK_ASSIGNED || !!this.nodeIssue(t);
  }

  private removedService(tasks: TaskObject[]): void {
    for (const t0 of tasks) {
      const t = this.cur(t0);
      if (!toBeRemoved(t)) this.shutdown(t, 'service removed', S.TASK_REMOVE);
      if (this.gone(this.cur(t))) {
        this.updated.delete(t.id);
        this.plan.remove.push(t0);
      }
    }
  }
}

function stateNameOf(t: TaskObject): string {
  const st = stateOf(t);
  if (st === S.TASK_COMPLETE) return 'completed';
  if (st === S.TASK_FAILED) return `failed${t.status?.exitCode ? ` (exit ${t.status.exitCode})` : ''}`;
  if (st === S.TASK_REJECTED) return 'rejected';
  if (st === S.TASK_ORPHANED) return 'orphaned';
  return 'ended';
}
