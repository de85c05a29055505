// The orchestrators' pure pass: table-driven cases of what each mode, the
// restart supervisor, node failures and the reaper decide, plus a check that a
// plan applied and reconciled again asks for nothing more.
import { describe, expect, it } from 'vitest';
import { api } from '../../../proto/services.js';
import type { NodeObject, ServiceObject, TaskObject } from '../../../manager/cluster/tables.js';
import { reconcile, type Plan } from '../../../manager/orchestrator/reconcile.js';
import { toSchedulerNodes } from '../../../manager/orchestrator/nodes.js';

const S = api.TaskState;
const NOW = 1_000_000;
let seq = 0;

function node(id: string, o: { down?: boolean; drain?: boolean; labels?: Record<string, string> } = {}): NodeObject {
  return {
    id, meta: { version: 1, createdAt: 1, updatedAt: 1 }, role: api.NodeRole.ROLE_WORKER,
    spec: { labels: o.labels ?? {}, desiredRole: 0, availability: o.drain ? api.NodeAvailability.AVAILABILITY_DRAIN : 0 },
    description: { hostname: id, platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 4e9 } },
    status: { state: o.down ? api.NodeState.NODE_DOWN : api.NodeState.NODE_READY },
  } as unknown as NodeObject;
}

type Mode = { replicated?: { replicas: number }; global?: object; replicatedJob?: { maxConcurrent: number; totalCompletions: number }; globalJob?: object };

function service(id: string, mode: Mode, o: { restart?: { condition?: number; maxAttempts?: number; delayMs?: number; windowMs?: number }; constraints?: string[] } = {}): ServiceObject {
  return {
    id, meta: { version: 7, createdAt: 1, updatedAt: 1 },
    spec: {
      name: id, ...mode,
      taskTemplate: {
        container: { image: 'busybox' },
        restartPolicy: { condition: api.RestartCondition.RESTART_ANY, delayMs: 5000, maxAttempts: 0, windowMs: 0, ...(o.restart ?? {}) },
        placement: { constraints: o.constraints ?? [] },
      },
    },
  } as unknown as ServiceObject;
}

function task(svc: string, o: { slot?: number; node?: string; state?: number; desired?: number; history?: number[]; exit?: number }): TaskObject {
  seq++;
  return {
    id: `t${seq}`, meta: { version: seq, createdAt: seq, updatedAt: seq }, serviceId: svc, serviceName: svc,
    slot: o.slot ?? 0, nodeId: o.node ?? '', desiredState: o.desired ?? S.TASK_RUNNING,
    status: { state: o.state ?? S.TASK_RUNNING, exitCode: o.exit ?? 0 }, restartHistory: o.history ?? [],
    spec: { container: { image: 'busybox' } },
  } as unknown as TaskObject;
}

function run(services: ServiceObject[], tasks: TaskObject[], nodes: NodeObject[], historyLimit = 5): Plan {
  let n = 0;
  return reconcile({ services, tasks, nodes, schedulerNodes: toSchedulerNodes(nodes, tasks), now: NOW, historyLimit }, () => `new${++n}`);
}

const slotsOf = (p: Plan) => p.create.map((t) => Number(t.slot)).sort((a, b) => a - b);
const shutdownIds = (p: Plan) => p.update.filter((t) => Number(t.desiredState) > S.TASK_RUNNING).map((t) => t.id).sort();

describe('replicated services', () => {
  const nodes = [node('a'), node('b')];
  it('creates the missing slots, lowest numbers first, pending and unassigned', () => {
    const svc = service('web', { replicated: { replicas: 3 } });
    const keep = task('web', { slot: 2, node: 'a' });
    const p = run([svc], [keep], nodes);
    expect(slotsOf(p)).toEqual([1, 3]);
    for (const t of p.create) {
      expect(t.nodeId).toBe('');
      expect(t.status?.state).toBe(S.TASK_PENDING);
      expect(Number(t.serviceVersion)).toBe(7);
    }
    expect(p.update).toEqual([]);
  });

  it('scales down by the tasks whose loss hurts least: not running first, then the busiest node', () => {
    const svc = service('web', { replicated: { replicas: 2 } });
    const pending = task('web', { slot: 1, state: S.TASK_PENDING });
    const a1 = task('web', { slot: 2, node: 'a' });
    const a2 = task('web', { slot: 3, node: 'a' });
    const b1 = task('web', { slot: 4, node: 'b' });
    const p = run([svc], [pending, a1, a2, b1], nodes);
    // Their slots are gone: told to go (REMOVE, as Swarm), and one never placed is deleted at once
    // (nobody would report on it); the other once its agent reports its end.
    expect(p.update.map((t) => [t.id, t.desiredState, t.shutdownReason])).toEqual([[a2.id, S.TASK_REMOVE, 'scaled down']]);
    expect(p.remove.map((t) => t.id)).toEqual([pending.id]);
    expect(p.create).toEqual([]);
  });

  it('keeps the newest of two live tasks in one slot', () => {
    const svc = service('web', { replicated: { replicas: 1 } });
    const old = task('web', { slot: 1, node: 'a' });
    const young = task('web', { slot: 1, node: 'b' });
    expect(shutdownIds(run([svc], [old, young], nodes))).toEqual([old.id]);
  });
});

describe('restart supervisor', () => {
  const nodes = [node('a')];
  const cases: Array<{ name: string; cond: number; state: number; max?: number; history?: number[]; window?: number; restarts: boolean; why?: RegExp }> = [
    { name: 'any: a failed task is replaced', cond: api.RestartCondition.RESTART_ANY, state: S.TASK_FAILED, restarts: true },
    { name: 'any: a completed task is replaced', cond: api.RestartCondition.RESTART_ANY, state: S.TASK_COMPLETE, restarts: true },
    { name: 'on-failure: a failed task is replaced', cond: api.RestartCondition.RESTART_ON_FAILURE, state: S.TASK_FAILED, restarts: true },
    { name: 'on-failure: a completed task is not', cond: api.RestartCondition.RESTART_ON_FAILURE, state: S.TASK_COMPLETE, restarts: false },
    { name: 'none: a failed task is not', cond: api.RestartCondition.RESTART_NONE, state: S.TASK_FAILED, restarts: false, why: /condition is none/ },
    { name: 'max attempts reached', cond: api.RestartCondition.RESTART_ANY, state: S.TASK_FAILED, max: 2, history: [NOW - 50, NOW - 10], restarts: false, why: /exhausted: 2 restarts.*max attempts 2/ },
    { name: 'max attempts not reached', cond: api.RestartCondition.RESTART_ANY, state: S.TASK_FAILED, max: 3, history: [NOW - 50, NOW - 10], restarts: true },
    { name: 'attempts outside the window do not count', cond: api.RestartCondition.RESTART_ANY, state: S.TASK_FAILED, max: 2, window: 30, history: [NOW - 50, NOW - 10], restarts: true },
    { name: 'a rejected task counts as failed', cond: api.RestartCondition.RESTART_ON_FAILURE, state: S.TASK_REJECTED, restarts: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const svc = service('job', { replicated: { replicas: 1 } }, { restart: { condition: c.cond, maxAttempts: c.max ?? 0, windowMs: c.window ?? 0, delayMs: 3000 } });
      const t = task('job', { slot: 1, node: 'a', state: c.state, history: c.history, exit: 1 });
      const p = run([svc], [t], nodes);
      if (c.restarts) {
        expect(shutdownIds(p)).toEqual([t.id]);
        expect(p.create).toHaveLength(1);
        const n = p.create[0]!;
        expect(Number(n.slot)).toBe(1);
        expect(Number(n.notBefore)).toBe(NOW + 3000);
        expect(n.restartHistory?.map(Number).at(-1)).toBe(NOW);
        expect(n.status?.message).toMatch(/restart delay/);
      } else {
        expect(p.create).toEqual([]);
        expect(shutdownIds(p)).toEqual([]);
        if (c.why) expect(p.update.find((x) => x.id === t.id)?.shutdownReason).toMatch(c.why);
      }
    });
  }

  it('carries the history from task to replacement so a new leader counts the same', () => {
    const svc = service('s', { replicated: { replicas: 1 } }, { restart: { maxAttempts: 3 } });
    let tasks = [task('s', { slot: 1, node: 'a', state: S.TASK_FAILED })];
    let restarts = 0;
    for (let i = 0; i < 10; i++) {
      const p = run([svc], tasks, nodes);
      if (p.create.length === 0) break;
      restarts++;
      // The replacement runs and fails too.
      tasks = p.create.map((t) => ({ ...(t as TaskObject), meta: { version: 100 + i, createdAt: 100 + i, updatedAt: 0 }, nodeId: 'a', status: { state: S.TASK_FAILED } }) as TaskObject);
    }
    expect(restarts).toBe(3);
  });
});

describe('node failures', () => {
  it.each([
    ['down', node('a', { down: true }), /node a is down/],
    ['drained', node('a', { drain: true }), /node a is drained/],
  ])('tasks of a %s node are shut down and replaced without charging the restart history', (_n, bad, reason) => {
    const svc = service('web', { replicated: { replicas: 2 } }, { restart: { maxAttempts: 1 } });
    const there = task('web', { slot: 1, node: 'a' });
    const fine = task('web', { slot: 2, node: 'b' });
    const p = run([svc], [there, fine], [bad, node('b')]);
    expect(shutdownIds(p)).toEqual([there.id]);
    expect(p.update[0]!.shutdownReason).toMatch(reason);
    expect(slotsOf(p)).toEqual([1]);
    expect(p.create[0]!.restartHistory).toEqual([]);
    expect(Number(p.create[0]!.notBefore)).toBe(0);
  });

  it('a removed node counts as gone', () => {
    const svc = service('web', { replicated: { replicas: 1 } });
    const p = run([svc], [task('web', { slot: 1, node: 'ghost' })], [node('b')]);
    expect(p.update[0]!.shutdownReason).toMatch(/removed/);
    expect(p.create).toHaveLength(1);
  });
});

describe('global services', () => {
  it('one task per eligible node: not on drained, down or non-matching nodes', () => {
    const svc = service('agent', { global: {} }, { constraints: ['node.labels.zone==eu'] });
    const nodes = [node('a', { labels: { zone: 'eu' } }), node('b', { labels: { zone: 'us' } }), node('c', { labels: { zone: 'eu' }, drain: true }), node('d', { labels: { zone: 'eu' }, down: true })];
    const p = run([svc], [], nodes);
    expect(p.create.map((t) => t.nodeId)).toEqual(['a']);
    expect(Number(p.create[0]!.slot)).toBe(0);
  });

  it('follows a node that drains and one that joins', () => {
    const svc = service('agent', { global: {} });
    const onA = task('agent', { node: 'a' });
    const p = run([svc], [onA], [node('a', { drain: true }), node('b')]);
    expect(shutdownIds(p)).toEqual([onA.id]);
    expect(p.create.map((t) => t.nodeId)).toEqual(['b']);
  });
});

describe('jobs', () => {
  it('a replicated job runs up to max concurrent until the total is reached', () => {
    const svc = service('j', { replicatedJob: { maxConcurrent: 2, totalCompletions: 5 } });
    const done = task('j', { slot: 1, node: 'a', state: S.TASK_COMPLETE });
    const running = task('j', { slot: 2, node: 'a' });
    const p = run([svc], [done, running], [node('a')]);
    expect(slotsOf(p)).toEqual([3]);
  });

  it('a finished replicated job starts nothing', () => {
    const svc = service('j', { replicatedJob: { maxConcurrent: 2, totalCompletions: 2 } });
    const p = run([svc], [task('j', { slot: 1, state: S.TASK_COMPLETE, node: 'a' }), task('j', { slot: 2, state: S.TASK_COMPLETE, node: 'a' })], [node('a')]);
    expect(p.create).toEqual([]);
    expect(p.update).toEqual([]);
  });

  it('a global job completes once per node', () => {
    const svc = service('g', { globalJob: {} });
    const p = run([svc], [task('g', { node: 'a', state: S.TASK_COMPLETE })], [node('a'), node('b')]);
    expect(p.create.map((t) => t.nodeId)).toEqual(['b']);
  });
});

describe('the reaper', () => {
  it('keeps the history limit of ended tasks per slot, deleting the oldest', () => {
    const svc = service('web', { replicated: { replicas: 1 } });
    const dead = Array.from({ length: 7 }, () => task('web', { slot: 1, node: 'a', state: S.TASK_FAILED, desired: S.TASK_SHUTDOWN }));
    const live = task('web', { slot: 1, node: 'a' });
    const p = run([svc], [...dead, live], [node('a')], 5);
    expect(p.remove.map((t) => t.id).sort()).toEqual([dead[0]!.id, dead[1]!.id].sort());
  });

  it('a task still stopping on a reachable node waits for its end', () => {
    const svc = service('web', { replicated: { replicas: 0 } });
    const stopping = task('web', { slot: 1, node: 'a', state: S.TASK_RUNNING, desired: S.TASK_SHUTDOWN });
    const p = run([svc], [stopping], [node('a')], 0);
    expect(p.remove).toEqual([]);
  });

  it('a slot a scale-down dropped keeps no history: its ended tasks go, its stopping one once ended', () => {
    const svc = service('web', { replicated: { replicas: 1 } });
    const kept = task('web', { slot: 1, node: 'a' });
    const keptHistory = task('web', { slot: 1, node: 'a', state: S.TASK_FAILED, desired: S.TASK_SHUTDOWN });
    const stopping = task('web', { slot: 2, node: 'a', desired: S.TASK_REMOVE });
    const stopped = task('web', { slot: 3, node: 'a', state: S.TASK_SHUTDOWN, desired: S.TASK_REMOVE });
    const oldHistory = task('web', { slot: 3, node: 'a', state: S.TASK_FAILED, desired: S.TASK_SHUTDOWN });
    const p = run([svc], [kept, keptHistory, stopping, stopped, oldHistory], [node('a')]);
    expect(p.remove.map((t) => t.id).sort()).toEqual([stopped.id, oldHistory.id].sort());
    expect(p.update).toEqual([]);
    // Its agent reports the end: then it goes too.
    const ended = { ...stopping, status: { ...stopping.status, state: S.TASK_SHUTDOWN } } as TaskObject;
    expect(run([svc], [kept, keptHistory, ended], [node('a')]).remove.map((t) => t.id)).toEqual([ended.id]);
  });

  it('a job\'s completed tasks are not reaped as a dropped slot (they count its completions)', () => {
    const svc = service('j', { replicatedJob: { maxConcurrent: 1, totalCompletions: 2 } });
    const done = [task('j', { slot: 1, node: 'a', state: S.TASK_COMPLETE }), task('j', { slot: 2, node: 'a', state: S.TASK_COMPLETE })];
    expect(run([svc], done, [node('a')]).remove).toEqual([]);
  });

  it('tasks of a removed service are told to go, and deleted once ended', () => {
    const running = task('old', { slot: 1, node: 'a' });
    const ended = task('old', { slot: 2, node: 'a', state: S.TASK_COMPLETE });
    const p = run([], [running, ended], [node('a')]);
    expect(p.update.map((t) => [t.id, t.desiredState])).toEqual([[running.id, S.TASK_REMOVE]]);
    expect(p.remove.map((t) => t.id)).toEqual([ended.id]);
  });
});

it('a plan applied and reconciled again asks for nothing more (idempotent)', () => {
  const svcs = [service('web', { replicated: { replicas: 4 } }), service('g', { global: {} }), service('j', { replicatedJob: { maxConcurrent: 2, totalCompletions: 3 } })];
  const nodes = [node('a'), node('b', { drain: true }), node('c')];
  let tasks: TaskObject[] = [task('web', { slot: 6, node: 'a' }), task('web', { slot: 1, node: 'b' }), task('web', { slot: 2, node: 'a', state: S.TASK_FAILED })];
  for (let round = 0; round < 3; round++) {
    const p = run(svcs, tasks, nodes);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    for (const t of p.update) byId.set(t.id, t);
    for (const t of p.remove) byId.delete(t.id);
    for (const t of p.create) byId.set(t.id, { ...(t as TaskObject), id: `r${round}-${t.id}`, meta: { version: 1000 + seq, createdAt: 1000 + seq++, updatedAt: 0 } });
    tasks = [...byId.values()];
  }
  const last = run(svcs, tasks, nodes);
  expect(last).toEqual({ create: [], update: [], remove: [], services: [] });
  const live = tasks.filter((t) => Number(t.desiredState) <= S.TASK_RUNNING);
  expect(live.filter((t) => t.serviceId === 'web')).toHaveLength(4);
  expect(live.filter((t) => t.serviceId === 'g').map((t) => t.nodeId).sort()).toEqual(['a', 'c']);
});
