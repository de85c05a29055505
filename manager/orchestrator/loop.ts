// The leader's orchestration loop: after any change to services, tasks or
// nodes (at once after a quiet spell, so a `service create` or `scale` is
// acted on without delay; debounced while changes keep coming, so a burst of
// status updates makes few passes), run the
// orchestrators (reconcile.ts), write their plan, then place pending tasks
// with the scheduler and write its decisions. Runs only while leading
// (LeadershipGate); every write is version-checked, so a stale decision
// fails and is made again on the next pass.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store, StoreEvent } from '../store/index.js';
import { schedule, type PendingTask, type SchedulerNode } from '../scheduler/index.js';
import { clustersTable, nodesTable, servicesTable, tasksTable, type NodeObject, type TaskObject } from '../cluster/tables.js';
import { newObjectId } from '../cluster/ids.js';
import { toSchedulerNodes } from './nodes.js';
import { DEFAULT_HISTORY_LIMIT, reconcile } from './reconcile.js';
import { S, stateOf } from './states.js';
import { isPaused, isUpdating, statusOf } from './update.js';

export interface OrchestratorOptions {
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void; debug(o: object, m?: string): void };
  /** Within this long of the previous pass, wait this long after a change for more (default 15 ms). */
  debounceMs?: number;
  now?: () => number;
}

export interface PassStats {
  created: number;
  updated: number;
  removed: number;
  assigned: number;
  failed: number;
}

export class Orchestrator {
  private readonly now: () => number;
  private readonly debounceMs: number;
  /** Passes run so far (tests and benches read it). */
  passes = 0;
  /**
   * Services under a rolling update (or one paused) as of the last pass: their tasks reaching
   * running matter (the next lane may go; a start-first replacement's old task may stop).
   */
  private updating = new Set<string>();
  private waiting = false;

  constructor(private readonly store: Store, private readonly opts: OrchestratorOptions) {
    this.now = opts.now ?? Date.now;
    this.debounceMs = opts.debounceMs ?? 15;
  }

  /** Waiting for a change or a timer, with nothing left to do (tests read it). */
  get idle(): boolean {
    return this.waiting;
  }

  async run(signal: AbortSignal): Promise<void> {
    let dirty = true;
    let wake: (() => void) | undefined;
    const poke = () => {
      dirty = true;
      wake?.();
    };
    const pump = async () => {
      while (!signal.aborted) {
        const w = this.store.watch({ table: ['services', 'tasks', 'nodes', 'clusters'], signal });
        try {
          for await (const ev of w) if (relevant(ev) || this.updateProgress(ev)) poke();
        } catch {
          // Overflowed or replaced by a snapshot: a full pass reads everything anyway.
        }
        poke();
      }
    };
    void pump();
    let wakeAt: number | undefined;
    let lastPassEnd = Number.NEGATIVE_INFINITY;
    while (!signal.aborted) {
      if (!dirty && (wakeAt === undefined || wakeAt > this.now())) {
        this.waiting = true;
        await new Promise<void>((resolve) => {
          const delay = wakeAt === undefined ? 60_000 : Math.max(0, wakeAt - this.now());
          const t = setTimeout(finish, delay);
          const onAbort = () => finish();
          signal.addEventListener('abort', onAbort, { once: true });
          wake = finish;
          function finish() {
            clearTimeout(t);
            signal.removeEventListener('abort', onAbort);
            resolve();
          }
        });
        wake = undefined;
        this.waiting = false;
        if (signal.aborted) break;
      }
      // A change soon after the last pass (or during it) is likely part of a burst: let the rest
      // arrive. Either way, yield to the pump first: it reads the events of an applied entry one
      // per turn of the microtask queue, so a pass that ran at once would see a few of them, and
      // the next few would start another pass, and so on (one raft entry of 90 tasks, 45 passes).
      if (this.now() - lastPassEnd < this.debounceMs) await sleep(this.debounceMs, undefined, { signal }).catch(() => undefined);
      else await new Promise((r) => setImmediate(r));
      if (signal.aborted) break;
      dirty = false;
      try {
        wakeAt = await this.pass();
      } catch (e) {
        this.opts.logger.warn({ err: String(e) }, 'orchestration pass failed; retrying');
        wakeAt = this.now() + 500;
      }
      lastPassEnd = this.now();
    }
  }

  /** One pass: orchestrate, then schedule. Returns when the next pass is due without any change. */
  async pass(): Promise<number | undefined> {
    this.passes++;
    const started = performance.now();
    const now = this.now();
    const { services, tasks, nodes, limit } = this.store.view((r) => ({
      services: r.list(servicesTable),
      tasks: r.list(tasksTable),
      nodes: r.list(nodesTable),
      limit: r.list(clustersTable)[0]?.spec?.orchestration?.taskHistoryLimit,
    }));
    const historyLimit = limit === undefined || limit === null || Number(limit) < 0 ? DEFAULT_HISTORY_LIMIT : Number(limit);
    const plan = reconcile({ services, tasks, nodes, schedulerNodes: toSchedulerNodes(nodes, tasks), now, historyLimit }, newObjectId);
    this.updating = new Set(services.filter((s) => isUpdating(statusOf(s).state) || isPaused(statusOf(s).state)).map((s) => s.id));
    const stats: PassStats = { created: 0, updated: 0, removed: 0, assigned: 0, failed: 0 };
    stats.assigned += this.placeNew(plan, tasks, nodes, now);
    if (plan.create.length + plan.update.length + plan.remove.length + plan.services.length > 0) {
      const res = await this.store.batch(async (b) => {
        for (const t of plan.update) await b.update((tx) => void tx.update(tasksTable, t));
        for (const t of plan.remove) await b.update((tx) => tx.delete(tasksTable, t));
        for (const t of plan.create) await b.update((tx) => void tx.create(tasksTable, t as TaskObject));
        for (const s of plan.services) await b.update((tx) => void tx.update(servicesTable, s));
      });
      for (const s of plan.services) this.opts.logger.info({ service: s.spec?.name, update: s.updateStatus?.message }, 'rolling update');
      stats.created = plan.create.length;
      stats.updated = plan.update.length;
      stats.removed = plan.remove.length;
      stats.failed += res.failed.length;
    }
    const pendingWake = await this.schedulePending(now, stats);
    const wakeAt = plan.wakeAt === undefined ? pendingWake : Math.min(pendingWake ?? plan.wakeAt, plan.wakeAt);
    // Every pass, including those with nothing to write: a burst of them is a cost to see.
    this.opts.logger.debug({ ...stats, ms: Math.round((performance.now() - started) * 10) / 10 }, 'orchestration pass');
    return wakeAt;
  }

  /** A task of a service under a rolling update started running: the update may go on. */
  private updateProgress(ev: StoreEvent): boolean {
    if (ev.table !== 'tasks' || ev.kind !== 'update' || !ev.oldObject) return false;
    const t = ev.object as TaskObject;
    return this.updating.has(t.serviceId) && stateOf(t) === S.TASK_RUNNING && stateOf(ev.oldObject as TaskObject) !== S.TASK_RUNNING;
  }

  /**
   * Place the tasks this pass creates before they are written, so each is
   * written once, already assigned (or pending with the reason nothing fits),
   * rather than created pending and assigned by a second write. Returns how
   * many it placed.
   */
 private placeNew(plan: { create: unknown[]; update: TaskObject[]; remove: TaskObject[] }, tasks: TaskObject[], nodes: NodeObject[], now: number): number {
    const fresh = (plan.create as TaskObject[]).filter((t) => schedulable(t, now));
    if (fresh.length === 0) return 0;
    // The nodes as they will be once the plan is written: shut-down tasks updated, removed ones gone.
    const changed = new Map(plan.update.map((t) => [t.id, t]));
    const gone = new Set(plan.remove.map((t) => t.id));
    const after = tasks.filter((t) => !gone.has(t.id)).map((t) => changed.get(t.id) ?? t);
    const { assignments, unplaced } = place(toSchedulerNodes(nodes, after), fresh);
    let n = 0;
    for (const t of fresh) {
      const node = assignments.get(t.id);
      if (node) {
        t.nodeId = node;
        t.status = { ...t.status, state: S.TASK_ASSIGNED, message: 'assigned', err: '', timestamp: now } as never;
        n++;
      } else {
        t.status = { ...t.status, message: unplaced.get(t.id)! } as never;
      }
    }
    return n;
  }

  /** Place pending tasks; write assignments and, where nothing fits, the reason. */
  private async schedulePending(now: number, stats: PassStats): Promise<number | undefined> {
    const { tasks, nodes } = this.store.view((r) => ({ tasks: r.list(tasksTable), nodes: r.list(nodesTable) }));
    let wakeAt: number | undefined;
    const all: TaskObject[] = [];
    for (const t of tasks) {
      if (stateOf(t) !== S.TASK_PENDING || Number(t.desiredState) > S.TASK_RUNNING) continue;
      const nb = Number(t.notBefore ?? 0);
      if (nb > now) {
        wakeAt = Math.min(wakeAt ?? nb, nb);
        continue;
      }
      all.push(t);
    }
    if (all.length === 0) return wakeAt;
    const { assignments, unplaced } = place(toSchedulerNodes(nodes, tasks), all);
    const res = await this.store.batch(async (b) => {
      for (const t of all) {
        const node = assignments.get(t.id);
        const reason = unplaced.get(t.id);
        if (!node && (reason === undefined || reason === t.status?.message)) continue;
        await b.update((tx) => {
          const next = { ...t } as TaskObject; // top-level fields change; the rest stays shared (frozen)
          if (node) {
            next.nodeId = node;
            next.status = { ...next.status, state: S.TASK_ASSIGNED, message: 'assigned', err: '', timestamp: now } as never;
          } else {
            next.status = { ...next.status, message: reason!, timestamp: Number(next.status?.timestamp ?? now) } as never;
          }
          tx.update(tasksTable, next);
        });
        if (node) stats.assigned++;
      }
    });
    stats.failed += res.failed.length;
    return wakeAt;
  }
}

/** Pending, wanted running, and not held back by a restart delay. */
function schedulable(t: TaskObject, now: number): boolean {
  return stateOf(t) === S.TASK_PENDING && Number(t.desiredState) <= S.TASK_RUNNING && Number(t.notBefore ?? 0) <= now;
}

/** The scheduler's verdict on pending tasks: free ones in one batch; ones pinned to a node (global services) by that node alone. */
function place(snodes: SchedulerNode[], pending: TaskObject[]): { assignments: Map<string, string>; unplaced: Map<string, string> } {
  const free = pending.filter((t) => !t.nodeId);
  const { assignments, unplaced } = schedule(snodes, free.map(pendingOf));
  const byId = new Map<string, SchedulerNode>(snodes.map((n) => [n.id, n]));
  for (const t of pending) {
    if (!t.nodeId) continue;
    const n = byId.get(t.nodeId);
    const r = n ? schedule([n], [pendingOf(t)]) : undefined;
    if (r?.assignments.has(t.id)) assignments.set(t.id, t.nodeId);
    else unplaced.set(t.id, r?.unplaced.get(t.id) ?? 'node not found');
  }
  return { assignments, unplaced };
}

function pendingOf(t: TaskObject): PendingTask {
  const p = t.spec?.placement;
  const r = t.spec?.resources?.reservations;
  return {
    id: t.id,
    serviceId: t.serviceId,
    constraints: p?.constraints ?? [],
    preferences: (p?.preferences ?? []).map((x) => ({ spread: x.spread ?? '' })),
    reservations: { nanoCpus: Number(r?.nanoCpus ?? 0), memoryBytes: Number(r?.memoryBytes ?? 0) },
    maxReplicasPerNode: Number(p?.maxReplicas ?? 0),
    platforms: (p?.platforms ?? []).map((x) => ({ os: x.os ?? '', arch: x.architecture ?? '' })),
  };
}

/**
 * Changes that cannot alter a decision are not worth a pass: a task's progress
 * from pending to running on its node (the scheduler wrote `assigned` itself,
 * the agent reports the rest; only the end of a task, a new desired state or
 * a move matters), and node heartbeats that change nothing the pass reads.
 */
export function relevant(ev: StoreEvent): boolean {
  if (ev.kind !== 'update' || !ev.oldObject) return true;
  if (ev.table === 'tasks') {
    const a = ev.oldObject as TaskObject;
    const b = ev.object as TaskObject;
    const progress = stateOf(a) >= S.TASK_PENDING && stateOf(b) <= S.TASK_RUNNING && stateOf(b) >= stateOf(a);
    const samePlace = a.nodeId === b.nodeId || stateOf(a) === S.TASK_PENDING;
    return !(progress && samePlace && a.desiredState === b.desiredState);
  }
  if (ev.table !== 'nodes') return true;
  const a = ev.oldObject as unknown as { spec?: unknown; status?: { state?: unknown }; description?: unknown; role?: unknown };
  const b = ev.object as unknown as typeof a;
  return a.status?.state !== b.status?.state || JSON.stringify(a.spec) !== JSON.stringify(b.spec)
    || JSON.stringify(a.description) !== JSON.stringify(b.description) || a.role !== b.role;
}
