// Rolling updates as the orchestrators' passes make them: a small simulated
// cluster applies each plan (its agents start tasks, or fail them, when told),
// time moves on, and the next pass decides again. Each case reads as what an
// operator sees: how many tasks of which spec run after each step.
import { describe, expect, it } from 'vitest';
import { api } from '../../../proto/services.js';
import type { NodeObject, ServiceObject, TaskObject } from '../../../manager/cluster/tables.js';
import { reconcile, type Plan } from '../../../manager/orchestrator/reconcile.js';
import { toSchedulerNodes } from '../../../manager/orchestrator/nodes.js';

const S = api.TaskState;
const U = api.UpdateState;

function node(id: string): NodeObject {
  return {
    id, meta: { version: 1, createdAt: 1, updatedAt: 1 }, role: api.NodeRole.ROLE_WORKER,
    spec: { labels: {}, desiredRole: 0, availability: 0 },
    description: { hostname: id, platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 4e9 } },
    status: { state: api.NodeState.NODE_READY },
  } as unknown as NodeObject;
}

interface UpdateCfg { parallelism?: number; delayMs?: number; monitorMs?: number; failureAction?: number; maxFailureRatio?: number; order?: number }

/** A simulated cluster: the store's services and tasks, a clock, and agents that start what is placed. */
class Sim {
  now = 1_000_000;
  version = 100;
  svc: ServiceObject;
  tasks: TaskObject[] = [];
  nodes = [node('a'), node('b'), node('c')];
  /** Images whose tasks fail when started (as a container exiting 1 at once), and how many more times. */
  failing = new Map<string, number>();
  private seq = 0;
  private nodeTurn = 0;
  last!: Plan;

  constructor(mode: 'replicated' | 'global', replicas: number, update: UpdateCfg = {}, rollback: UpdateCfg = {}) {
    this.svc = {
      id: 'web', meta: { version: ++this.version, createdAt: 1, updatedAt: 1 },
      spec: {
        name: 'web', ...(mode === 'global' ? { global: {} } : { replicated: { replicas } }),
        taskTemplate: { container: { image: 'app:1' }, restartPolicy: { condition: api.RestartCondition.RESTART_NONE } },
        updateConfig: { parallelism: 1, delayMs: 0, monitorMs: 0, failureAction: api.UpdateFailureAction.FAILURE_ACTION_PAUSE, maxFailureRatio: 0, order: api.UpdateOrder.UPDATE_ORDER_STOP_FIRST, ...update },
        rollbackConfig: { parallelism: 1, delayMs: 0, monitorMs: 0, failureAction: api.UpdateFailureAction.FAILURE_ACTION_PAUSE, maxFailureRatio: 0, order: api.UpdateOrder.UPDATE_ORDER_STOP_FIRST, ...rollback },
      },
      previousSpec: null, updateStatus: null,
    } as unknown as ServiceObject;
    this.settle();
  }

  /** What the control API does on `service update --image`: the new spec, the old kept, an update started. */
  updateImage(image: string): void {
    const spec = structuredClone(this.svc.spec!);
    spec.taskTemplate!.container!.image = image;
    this.svc = { ...this.svc, meta: { ...this.svc.meta, version: ++this.version }, previousSpec: this.svc.spec, spec, updateStatus: { state: U.UPDATE_UPDATING, startedAt: this.now, completedAt: 0, message: 'update in progress' } } as ServiceObject;
  }

  /** One pass, its plan applied as the store and the loop would. */
  pass(): Plan {
    const p = reconcile({ services: [this.svc], tasks: this.tasks, nodes: this.nodes, schedulerNodes: toSchedulerNodes(this.nodes, this.tasks), now: this.now, historyLimit: 5 }, () => `t${++this.seq}`);
    const byId = new Map(this.tasks.map((t) => [t.id, t]));
    for (const t of p.update) byId.set(t.id, t);
    for (const t of p.remove) byId.delete(t.id);
    for (const t of p.create) {
      const placed = t.nodeId || this.nodes[this.nodeTurn++ % this.nodes.length]!.id;
      byId.set(t.id, { ...t, nodeId: placed, meta: { version: ++this.version, createdAt: this.now, updatedAt: this.now }, status: { ...t.status, state: S.TASK_ASSIGNED, timestamp: this.now } } as TaskObject);
    }
    this.tasks = [...byId.values()];
    for (const s of p.services) this.svc = { ...s, meta: { ...s.meta, version: ++this.version } } as ServiceObject;
    this.last = p;
    return p;
  }

  /** The agents: assigned tasks start (or fail at once), stopped ones end. */
  agents(): void {
    this.tasks = this.tasks.map((t) => {
      const st = Number(t.status?.state);
      if (Number(t.desiredState) > S.TASK_RUNNING && st <= S.TASK_RUNNING) return { ...t, status: { ...t.status, state: S.TASK_SHUTDOWN, timestamp: this.now } } as TaskObject;
      if (st === S.TASK_ASSIGNED && Number(t.desiredState) === S.TASK_RUNNING) {
        const img = t.spec?.container?.image ?? '';
        const left = this.failing.get(img) ?? 0;
        const fails = left > 0;
        if (fails) this.failing.set(img, left - 1);
        return { ...t, status: { ...t.status, state: fails ? S.TASK_FAILED : S.TASK_RUNNING, err: fails ? 'task: non-zero exit (1)' : '', timestamp: this.now, startedAt: fails ? 0 : this.now } } as TaskObject;
      }
      return t;
    });
  }

  /** The running tasks of an image exit 1 now, as containers that ran a while (the agent keeps their start). */
  crash(image: string): void {
    this.tasks = this.tasks.map((t) => (Number(t.status?.state) === S.TASK_RUNNING && t.spec?.container?.image === image
      ? { ...t, status: { ...t.status, state: S.TASK_FAILED, err: 'task: non-zero exit (1)', timestamp: this.now } } as TaskObject : t));
  }

  /** Passes and agent rounds until nothing changes (time stands still). */
  settle(): void {
    for (let i = 0; i < 20; i++) {
      const p = this.pass();
      const before = JSON.stringify(this.tasks.map((t) => [t.id, t.status?.state]));
      this.agents();
      if (p.create.length + p.update.length + p.remove.length + p.services.length === 0 && before === JSON.stringify(this.tasks.map((t) => [t.id, t.status?.state]))) return;
    }
    throw new Error('no steady state after 20 rounds');
  }

  /** Live tasks' images, as `service ps` would show the running ones: image -> count. */
  running(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.tasks) {
      if (Number(t.desiredState) > S.TASK_RUNNING || Number(t.status?.state) !== S.TASK_RUNNING) continue;
      const img = t.spec?.container?.image ?? '';
      out[img] = (out[img] ?? 0) + 1;
    }
    return out;
  }

  get state(): number {
    return Number(this.svc.updateStatus?.state ?? 0);
  }
}

describe('rolling updates (stop-first)', () => {
  it('replaces parallelism tasks at a time, each batch once the last one runs, then completes', () => {
    const sim = new Sim('replicated', 5, { parallelism: 2 });
    expect(sim.running()).toEqual({ 'app:1': 5 });
    sim.updateImage('app:2');
    const p = sim.pass();
    expect(p.update.filter((t) => Number(t.desiredState) === S.TASK_SHUTDOWN)).toHaveLength(2);
    expect(p.create.map((t) => t.spec?.container?.image)).toEqual(['app:2', 'app:2']);
    // Not running yet: the next pass waits.
    expect(sim.pass().create).toHaveLength(0);
    sim.agents();
    expect(sim.running()).toEqual({ 'app:1': 3, 'app:2': 2 });
    sim.pass();
    sim.agents();
    expect(sim.running()).toEqual({ 'app:1': 1, 'app:2': 4 });
    sim.settle();
    expect(sim.running()).toEqual({ 'app:2': 5 });
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
    expect(sim.svc.updateStatus?.message).toBe('update completed');
    // The replaced tasks stay in their slots' history, shut down.
    expect(sim.tasks.filter((t) => Number(t.status?.state) === S.TASK_SHUTDOWN).map((t) => t.spec?.container?.image)).toEqual(Array(5).fill('app:1'));
  });

  it('parallelism 0 replaces every task at once', () => {
    const sim = new Sim('replicated', 4, { parallelism: 0 });
    sim.updateImage('app:2');
    expect(sim.pass().create).toHaveLength(4);
  });

  it('waits the delay after a batch runs before the next, and asks for a pass when it ends', () => {
    const sim = new Sim('replicated', 2, { parallelism: 1, delayMs: 10_000 });
    sim.updateImage('app:2');
    sim.pass();
    sim.agents();
    const running = sim.now;
    sim.now += 4_000;
    const p = sim.pass();
    expect(p.create).toHaveLength(0);
    expect(p.wakeAt).toBe(running + 10_000);
    sim.now = running + 10_000;
    expect(sim.pass().create).toHaveLength(1);
  });

  it('completes only once the new tasks have run for the monitor period', () => {
    const sim = new Sim('replicated', 1, { monitorMs: 5_000 });
    sim.updateImage('app:2');
    sim.settle();
    expect(sim.running()).toEqual({ 'app:2': 1 });
    expect(sim.state).toBe(U.UPDATE_UPDATING);
    expect(sim.last.wakeAt).toBe(sim.now + 5_000);
    sim.now += 5_000;
    sim.pass();
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
  });

  it('a new task failing pauses the update (failure action pause), naming it; old tasks run on', () => {
    const sim = new Sim('replicated', 4, { parallelism: 1 });
    sim.failing.set('app:bad', Infinity);
    sim.updateImage('app:bad');
    sim.settle();
    expect(sim.state).toBe(U.UPDATE_PAUSED);
    expect(sim.svc.updateStatus?.message).toMatch(/^update paused: task t\d+ failed: task: non-zero exit \(1\)$/);
    expect(sim.running()).toEqual({ 'app:1': 3 });
    // Paused means paused: later passes replace nothing more.
    sim.now += 60_000;
    expect(sim.pass().create).toHaveLength(0);
  });

  it.each([
    ['within the monitor period after it started counts: the update pauses', 4_999, U.UPDATE_PAUSED],
    ['after it ran for the monitor period does not count: the update goes on', 5_000, U.UPDATE_UPDATING],
  ])('a new task failing %s', (_name, ranMs, state) => {
    const sim = new Sim('replicated', 3, { parallelism: 1, delayMs: 60_000, monitorMs: 5_000 });
    sim.updateImage('app:2');
    sim.pass();
    sim.agents();
    expect(sim.running()).toEqual({ 'app:1': 2, 'app:2': 1 });
    sim.now += ranMs;
    sim.crash('app:2');
    sim.pass();
    expect(sim.state).toBe(state);
  });

  it('failures up to max_failure_ratio of the slots are tolerated', () => {
    const sim = new Sim('replicated', 4, { parallelism: 4, maxFailureRatio: 0.5 });
    // Two of the four new tasks fail: 0.5 is not above the limit.
    sim.failing.set('app:2', 2);
    sim.updateImage('app:2');
    sim.settle();
    expect(sim.running()).toEqual({ 'app:2': 2 });
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
    // A third would be.
    const again = new Sim('replicated', 4, { parallelism: 4, maxFailureRatio: 0.5 });
    again.failing.set('app:2', 3);
    again.updateImage('app:2');
    again.settle();
    expect(again.state).toBe(U.UPDATE_PAUSED);
  });

  it('failure action continue goes on through failures', () => {
    const sim = new Sim('replicated', 3, { failureAction: api.UpdateFailureAction.FAILURE_ACTION_CONTINUE });
    sim.failing.set('app:bad', Infinity);
    sim.updateImage('app:bad');
    sim.settle();
    expect(sim.running()).toEqual({});
    expect(sim.tasks.filter((t) => Number(t.status?.state) === S.TASK_FAILED)).toHaveLength(3);
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
  });

  it('failure action rollback returns to the previous spec with the rollback settings, then completes the rollback', () => {
    const sim = new Sim('replicated', 3, { failureAction: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK }, { parallelism: 0 });
    sim.failing.set('app:bad', Infinity);
    sim.updateImage('app:bad');
    sim.pass();
    sim.agents();
    const p = sim.pass();
    expect(p.services[0]?.updateStatus?.state).toBe(U.UPDATE_ROLLBACK_STARTED);
    expect(sim.svc.spec?.taskTemplate?.container?.image).toBe('app:1');
    expect(sim.svc.previousSpec?.taskTemplate?.container?.image).toBe('app:bad');
    expect(sim.svc.updateStatus?.message).toMatch(/^update rolled back: task t\d+ failed/);
    sim.settle();
    expect(sim.running()).toEqual({ 'app:1': 3 });
    expect(sim.state).toBe(U.UPDATE_ROLLBACK_COMPLETED);
  });
});

describe('rolling updates (start-first)', () => {
  it('starts the new task before stopping the old one', () => {
    const sim = new Sim('replicated', 2, { order: api.UpdateOrder.UPDATE_ORDER_START_FIRST });
    sim.updateImage('app:2');
    const p = sim.pass();
    expect(p.create).toHaveLength(1);
    expect(p.update).toHaveLength(0);
    // Both run while the new one starts: 3 live tasks for 2 slots.
    sim.agents();
    expect(sim.running()).toEqual({ 'app:1': 2, 'app:2': 1 });
    const p2 = sim.pass();
    expect(p2.update.filter((t) => Number(t.desiredState) === S.TASK_SHUTDOWN).map((t) => t.spec?.container?.image)).toEqual(['app:1']);
    sim.settle();
    expect(sim.running()).toEqual({ 'app:2': 2 });
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
  });

  it('a replacement that fails leaves the old task running', () => {
    const sim = new Sim('replicated', 2, { order: api.UpdateOrder.UPDATE_ORDER_START_FIRST });
    sim.failing.set('app:bad', Infinity);
    sim.updateImage('app:bad');
    sim.settle();
    expect(sim.state).toBe(U.UPDATE_PAUSED);
    expect(sim.running()).toEqual({ 'app:1': 2 });
    // Rolled back by hand (the control API swaps the specs): the old task keeps its slot, the failed one goes.
    const spec = sim.svc.previousSpec!;
    sim.svc = { ...sim.svc, meta: { ...sim.svc.meta, version: 900 }, spec, previousSpec: sim.svc.spec, updateStatus: { state: U.UPDATE_ROLLBACK_STARTED, startedAt: sim.now, completedAt: 0, message: '' } } as ServiceObject;
    sim.settle();
    expect(sim.running()).toEqual({ 'app:1': 2 });
    expect(sim.state).toBe(U.UPDATE_ROLLBACK_COMPLETED);
    expect(sim.tasks.filter((t) => Number(t.desiredState) <= S.TASK_RUNNING).map((t) => t.spec?.container?.image)).toEqual(['app:1', 'app:1']);
  });
});

describe('rolling updates of a global service', () => {
  it('replaces one node\'s task at a time, on the same node', () => {
    const sim = new Sim('global', 0);
    expect(sim.running()).toEqual({ 'app:1': 3 });
    sim.updateImage('app:2');
    const p = sim.pass();
    expect(p.create).toHaveLength(1);
    const replaced = p.update.find((t) => Number(t.desiredState) === S.TASK_SHUTDOWN)!;
    expect(p.create[0]!.nodeId).toBe(replaced.nodeId);
    sim.settle();
    expect(sim.running()).toEqual({ 'app:2': 3 });
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
  });
});

describe('what is not an update', () => {
  it('a scale, or a spec version with the same template, replaces nothing and starts no update', () => {
    const sim = new Sim('replicated', 2);
    sim.svc = { ...sim.svc, meta: { ...sim.svc.meta, version: 500 }, spec: { ...sim.svc.spec, replicated: { replicas: 3 } } } as ServiceObject;
    const p = sim.pass();
    expect(p.create).toHaveLength(1);
    expect(p.update).toHaveLength(0);
    expect(p.services).toHaveLength(0);
  });

  it('tasks of an older template with no update under way start one', () => {
    const sim = new Sim('replicated', 1);
    const spec = structuredClone(sim.svc.spec!);
    spec.taskTemplate!.container!.image = 'app:2';
    sim.svc = { ...sim.svc, meta: { ...sim.svc.meta, version: 600 }, spec } as ServiceObject;
    const p = sim.pass();
    expect(p.services[0]?.updateStatus?.state).toBe(U.UPDATE_UPDATING);
    sim.settle();
    expect(sim.running()).toEqual({ 'app:2': 1 });
    expect(sim.state).toBe(U.UPDATE_COMPLETED);
  });
});
