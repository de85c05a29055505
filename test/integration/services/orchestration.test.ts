// The manager side of services on one real raft member with its store on
// disk: the orchestrator loop and the scheduler place tasks, worker sessions
// (fake agents on the real Sessions) receive them and report status back in
// batches; nodes going down, restarts with their delay and max attempts,
// scale-down and service removal play out as a user would see them.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RaftNode } from '../../../manager/raft/node/index.js';
import { LeadershipGate, Store } from '../../../manager/store/index.js';
import { clusterTables, nodesTable, servicesTable, tasksTable, type NodeObject, type TaskObject } from '../../../manager/cluster/tables.js';
import { Orchestrator } from '../../../manager/orchestrator/loop.js';
import { Sessions } from '../../../manager/dispatcher/sessions.js';
import { validateServiceSpec } from '../../../manager/controlapi/servicespec.js';
import { api, type Task } from '../../../proto/services.js';
import { waitFor } from '../../support/wait.js';

const S = api.TaskState;
const quiet = { info() {}, warn() {}, debug() {} };

/** A worker as the dispatcher sees it: its session stream and what it was told. */
class FakeWorker {
  readonly call = Object.assign(new EventEmitter(), { write: (m: unknown) => this.onMessage(m as never) });
  readonly tasks = new Map<string, Task>();
  fulls = 0;

  constructor(readonly nodeId: string) {}

  private onMessage(m: { assignments?: { full: boolean; updated: Task[]; removed: string[] } }): void {
    const a = m.assignments;
    if (!a) return;
    if (a.full) {
      this.fulls++;
      this.tasks.clear();
    }
    for (const t of a.updated) this.tasks.set(t.id, t);
    for (const id of a.removed) this.tasks.delete(id);
  }

  running(): Task[] {
    return [...this.tasks.values()].filter((t) => Number(t.desiredState) <= S.TASK_RUNNING);
  }
}

describe('orchestration on a raft-backed store', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-'));
  const store = new Store({ tables: clusterTables });
  const raft = RaftNode.open({ id: 1, dataDir: dir, stateMachine: store, advertiseAddr: '127.0.0.1:1', bootstrap: { 1: '127.0.0.1:1' }, tickMs: 10 });
  store.setRaft(raft);
  const gate = new LeadershipGate(raft);
  const sessions = new Sessions({ store, isLeader: () => raft.isLeader(), notLeaderError: () => new Error('not leader'), logger: quiet });
  const orch = new Orchestrator(store, { logger: quiet });
  const workers = ['n1', 'n2', 'n3'].map((id) => new FakeWorker(id));

  const tasksOf = (svc: string) => store.view((r) => r.find(tasksTable, 'service', svc));
  const live = (svc: string) => tasksOf(svc).filter((t) => Number(t.desiredState) <= S.TASK_RUNNING);
  const svcId = (name: string) => store.view((r) => r.find(servicesTable, 'name', name)[0]!.id);

  async function report(w: FakeWorker, state: number, only?: (t: Task) => boolean, exitCode = 0): Promise<void> {
    const ts = w.running().filter((t) => Number(t.status?.state) < state && (!only || only(t)));
    await sessions.updateTaskStatus(w.nodeId, ts.map((t) => ({ taskId: t.id, status: { state, message: '', err: exitCode ? `task: non-zero exit (${exitCode})` : '', exitCode, timestamp: Date.now(), containerId: t.id } as never })));
  }

  /** Fake agents: run whatever they are given. */
  async function runAssigned(): Promise<void> {
    for (const w of workers) await report(w, S.TASK_RUNNING);
  }

  async function setNode(id: string, fn: (n: NodeObject) => void): Promise<void> {
    await store.update((tx) => {
      const n = structuredClone(tx.get(nodesTable, id)!) as NodeObject;
      fn(n);
      tx.update(nodesTable, n);
    });
  }

  async function createService(spec: object): Promise<string> {
    const s = validateServiceSpec(spec as never);
    const id = `svc-${s.name}`;
    await store.update((tx) => void tx.create(servicesTable, { id, spec: s } as never));
    return id;
  }

  beforeAll(async () => {
    raft.start({ send() {}, addPeer() {}, removePeer() {} });
    raft.campaign();
    await waitFor('leader', () => raft.isLeader() || undefined, 5000, 10);
    await store.update((tx) => {
      for (const w of workers) {
        tx.create(nodesTable, {
          id: w.nodeId, role: 0, spec: { labels: { zone: w.nodeId === 'n3' ? 'us' : 'eu' }, desiredRole: 0, availability: 0 },
          description: { hostname: w.nodeId, platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 1e9 } },
          status: { state: api.NodeState.NODE_READY },
        } as never);
      }
    });
    gate.add('orchestrator', (signal) => orch.run(signal));
    gate.start();
    for (const w of workers) sessions.open(w.nodeId, w.call as never);
  });

  afterAll(async () => {
    await gate.stop();
    sessions.closeAll();
    raft.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('6 replicas spread 2 per node, and each worker receives exactly its own tasks', async () => {
    const ac = new AbortController();
    const events: { kind: string; state: number }[] = [];
    const watch = store.watch({ table: 'tasks', signal: ac.signal });
    void (async () => {
      for await (const ev of watch) events.push({ kind: ev.kind, state: Number((ev.object as TaskObject).status?.state) });
    })().catch(() => undefined);
    const id = await createService({ name: 'web', replicated: { replicas: 6 }, taskTemplate: { container: { image: 'busybox' } } });
    await waitFor('6 assigned', () => (tasksOf(id).filter((t) => Number(t.status?.state) === S.TASK_ASSIGNED).length === 6 || undefined), 5000, 10);
    ac.abort();
    // Placed before being written: one write per task, created already assigned.
    expect(events).toEqual(Array.from({ length: 6 }, () => ({ kind: 'create', state: S.TASK_ASSIGNED })));
    await waitFor('assignments delivered', () => (workers.every((w) => w.running().length === 2) || undefined), 5000, 10);
    for (const w of workers) for (const t of w.running()) expect(t.nodeId).toBe(w.nodeId);
    expect(new Set(tasksOf(id).map((t) => Number(t.slot)))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    await runAssigned();
    expect(tasksOf(id).every((t) => Number(t.status?.state) === S.TASK_RUNNING)).toBe(true);
  });

  it('a status that would go backwards is ignored', async () => {
    const w = workers[0]!;
    const t = w.running()[0]!;
    await sessions.updateTaskStatus(w.nodeId, [{ taskId: t.id, status: { state: S.TASK_STARTING } as never }]);
    await sessions.updateTaskStatus('n2', [{ taskId: t.id, status: { state: S.TASK_FAILED } as never }]); // not its node
    expect(Number(store.view((r) => r.get(tasksTable, t.id))!.status?.state)).toBe(S.TASK_RUNNING);
  });

  it('a status said again (an agent resending after a reconnect) writes nothing: the running-since time stays', async () => {
    const w = workers[0]!;
    const t = store.view((r) => r.get(tasksTable, w.running()[0]!.id))!;
    const resent = { ...t.status, timestamp: Number(t.status?.timestamp) + 60_000 };
    await sessions.updateTaskStatus(w.nodeId, [{ taskId: t.id, status: resent as never }]);
    const after = store.view((r) => r.get(tasksTable, t.id))!;
    expect(Number(after.meta.version)).toBe(Number(t.meta.version));
    expect(Number(after.status?.timestamp)).toBe(Number(t.status?.timestamp));
    // A new message in the same state is news.
    await sessions.updateTaskStatus(w.nodeId, [{ taskId: t.id, status: { ...resent, message: 'still running' } as never }]);
    expect(store.view((r) => r.get(tasksTable, t.id))!.status?.message).toBe('still running');
  });

  it('scale 6 -> 3 shuts down 3 tasks, keeping the spread; once stopped they are deleted (their slots keep no history)', async () => {
    const id = svcId('web');
    await store.update((tx) => {
      const s = structuredClone(tx.get(servicesTable, id)!);
      s.spec!.replicated!.replicas = 3;
      tx.update(servicesTable, s);
    });
    await waitFor('3 live', () => (live(id).length === 3 || undefined), 5000, 10);
    expect(new Set(live(id).map((t) => t.nodeId)).size).toBe(3);
    await waitFor('workers told', () => (workers.reduce((n, w) => n + w.running().length, 0) === 3 || undefined), 5000, 10);
    const dropped = tasksOf(id).filter((t) => Number(t.desiredState) > S.TASK_RUNNING);
    expect(dropped.map((t) => [Number(t.desiredState), t.shutdownReason])).toEqual(dropped.map(() => [S.TASK_REMOVE, 'scaled down']));
    expect(dropped).toHaveLength(3); // still there: their workers have not reported their end
    for (const w of workers) {
      const mine = dropped.filter((t) => t.nodeId === w.nodeId);
      await sessions.updateTaskStatus(w.nodeId, mine.map((t) => ({ taskId: t.id, status: { state: S.TASK_SHUTDOWN } as never })));
      // Deleted in the write that recorded their end (no reaper pass, no second entry).
      for (const t of mine) expect(store.view((r) => r.get(tasksTable, t.id))).toBeUndefined();
    }
    expect(tasksOf(id)).toHaveLength(3);
    expect(tasksOf(id).map((t) => Number(t.slot)).sort()).toEqual([1, 2, 3]);
    await waitFor('workers told', () => (workers.every((w) => !dropped.some((t) => w.tasks.has(t.id))) || undefined), 5000, 10);
  });

  it('a node that goes down has its tasks replaced elsewhere, at once', async () => {
    const id = svcId('web');
    const onN1 = live(id).filter((t) => t.nodeId === 'n1');
    expect(onN1).toHaveLength(1);
    await setNode('n1', (n) => { n.status = { state: api.NodeState.NODE_DOWN } as never; });
    await waitFor('replaced', () => (live(id).length === 3 && live(id).every((t) => t.nodeId !== 'n1' && Number(t.status?.state) >= S.TASK_ASSIGNED) || undefined), 5000, 10);
    const old = store.view((r) => r.get(tasksTable, onN1[0]!.id))!;
    expect(old.desiredState).toBe(S.TASK_SHUTDOWN);
    expect(old.shutdownReason).toMatch(/n1 is down/);
    await runAssigned();
    await setNode('n1', (n) => { n.status = { state: api.NodeState.NODE_READY } as never; });
  });

  it('a failing task restarts after its delay and stops after max attempts', async () => {
    const id = await createService({
      name: 'crash', replicated: { replicas: 1 },
      taskTemplate: { container: { image: 'busybox' }, restartPolicy: { condition: api.RestartCondition.RESTART_ON_FAILURE, delayMs: 150, maxAttempts: 2 } },
    });
    const t0 = Date.now();
    for (let run = 0; run < 3; run++) {
      const t = await waitFor(`attempt ${run + 1} assigned`, () => live(id).find((x) => Number(x.status?.state) === S.TASK_ASSIGNED), 5000, 10);
      if (run > 0) expect(Date.now() - t0).toBeGreaterThanOrEqual(150 * run);
      const w = workers.find((x) => x.nodeId === t.nodeId)!;
      await waitFor('delivered', () => w.tasks.get(t.id), 5000, 10);
      await report(w, S.TASK_FAILED, (x) => x.id === t.id, 1);
    }
    // 1 run + 2 restarts, then the policy is exhausted: the slot keeps its failed task.
    await waitFor('gave up', () => live(id).find((x) => /exhausted/.test(x.shutdownReason ?? '')), 5000, 10);
    expect(tasksOf(id)).toHaveLength(3);
    expect(live(id)).toHaveLength(1);
    expect(Number(live(id)[0]!.status?.state)).toBe(S.TASK_FAILED);
    expect(live(id)[0]!.restartHistory).toHaveLength(2);
  });

  it('an unsatisfiable constraint stays pending with its reason; a node that fits later gets it', async () => {
    const id = await createService({ name: 'asia', replicated: { replicas: 1 }, taskTemplate: { container: { image: 'busybox' }, placement: { constraints: ['node.labels.zone==asia'] } } });
    const t = await waitFor('reason', () => tasksOf(id).find((x) => /no node satisfies node.labels.zone==asia: 3 nodes checked/.test(x.status?.message ?? '')), 5000, 10);
    expect(Number(t.status?.state)).toBe(S.TASK_PENDING);
    const big = await createService({ name: 'big', replicated: { replicas: 1 }, taskTemplate: { container: { image: 'busybox' }, resources: { reservations: { memoryBytes: 5e9 } } } });
    await waitFor('resources reason', () => tasksOf(big).find((x) => /insufficient resources on 3 nodes/.test(x.status?.message ?? '')), 5000, 10);
    await setNode('n3', (n) => { n.spec!.labels = { zone: 'asia' }; });
    await waitFor('placed on n3', () => tasksOf(id).find((x) => x.nodeId === 'n3' && Number(x.status?.state) === S.TASK_ASSIGNED), 5000, 10);
  });

  it('a global service follows nodes joining and draining', async () => {
    const id = await createService({ name: 'agent', global: {}, taskTemplate: { container: { image: 'busybox' } } });
    await waitFor('3 global tasks', () => (live(id).filter((t) => Number(t.status?.state) >= S.TASK_ASSIGNED).length === 3 || undefined), 5000, 10);
    const w4 = new FakeWorker('n4');
    workers.push(w4);
    await store.update((tx) => void tx.create(nodesTable, {
      id: 'n4', role: 0, spec: { labels: {}, desiredRole: 0, availability: 0 },
      description: { hostname: 'n4', platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 1e9 } },
      status: { state: api.NodeState.NODE_READY },
    } as never));
    sessions.open('n4', w4.call as never);
    await waitFor('n4 gets one', () => w4.running().find((t) => t.serviceId === id), 5000, 10);
    await setNode('n2', (n) => { n.spec!.availability = api.NodeAvailability.AVAILABILITY_DRAIN; });
    await waitFor('n2 drained', () => (!live(id).some((t) => t.nodeId === 'n2') || undefined), 5000, 10);
    await waitFor('n2 worker told', () => (!workers[1]!.running().some((t) => t.serviceId === id) || undefined), 5000, 10);
    // Drain also moved web's task off n2.
    expect(live(svcId('web')).some((t) => t.nodeId === 'n2')).toBe(false);
  });

  it('removing a service removes its tasks once their workers report them stopped', async () => {
    const id = svcId('agent');
    await store.update((tx) => tx.delete(servicesTable, id));
    await waitFor('desired remove', () => (tasksOf(id).every((t) => Number(t.desiredState) === S.TASK_REMOVE) || undefined), 5000, 10);
    expect(tasksOf(id).length).toBeGreaterThan(0); // still there: their workers have not reported yet
    for (const w of workers) {
      const mine = [...w.tasks.values()].filter((t) => t.serviceId === id);
      await sessions.updateTaskStatus(w.nodeId, mine.map((t) => ({ taskId: t.id, status: { state: S.TASK_SHUTDOWN } as never })));
    }
    await waitFor('all gone', () => (tasksOf(id).length === 0 || undefined), 5000, 10);
    await waitFor('workers told', () => (workers.every((w) => ![...w.tasks.values()].some((t) => t.serviceId === id)) || undefined), 5000, 10);
  });

  it('a reconnecting worker gets the whole set again', async () => {
    const w = workers[2]!;
    const before = w.fulls;
    sessions.open(w.nodeId, w.call as never);
    expect(w.fulls).toBe(before + 1);
    expect(w.running().length).toBeGreaterThan(0);
    const fromStore = store.view((r) => r.find(tasksTable, 'node', w.nodeId)).filter((t: TaskObject) => Number(t.status?.state) >= S.TASK_ASSIGNED);
    expect(new Set(w.tasks.keys())).toEqual(new Set(fromStore.map((t) => t.id)));
  });

  it('scale 1 -> 90 -> 1 takes a few passes: the 89 tasks written in one entry are one change, not one per event the loop has read so far', async () => {
    const id = await createService({ name: 'many', replicated: { replicas: 1 }, taskTemplate: { container: { image: 'busybox' } } });
    await waitFor('1 assigned, orchestrator idle', () => (orch.idle && live(id).length === 1 || undefined), 5000, 10);
    const scaleTo = async (n: number) => {
      const before = orch.passes;
      await store.update((tx) => {
        const s = structuredClone(tx.get(servicesTable, id)!);
        s.spec!.replicated!.replicas = n;
        tx.update(servicesTable, s);
      });
      await waitFor(`${n} live, orchestrator idle`, () => (orch.idle && live(id).length === n || undefined), 5000, 10);
      return orch.passes - before;
    };
    // The pass the scale asks for (it writes 89 tasks in one entry), and one after its own write.
    expect(await scaleTo(90)).toBeLessThanOrEqual(2);
    expect(await scaleTo(1)).toBeLessThanOrEqual(2);
    // Every worker's end of the 89 in one status call each: one entry each, at most a pass each.
    const before = orch.passes;
    for (const w of workers) {
      const mine = tasksOf(id).filter((t) => t.nodeId === w.nodeId && Number(t.desiredState) === S.TASK_REMOVE);
      await sessions.updateTaskStatus(w.nodeId, mine.map((t) => ({ taskId: t.id, status: { state: S.TASK_SHUTDOWN } as never })));
    }
    await waitFor('89 deleted, orchestrator idle', () => (orch.idle && tasksOf(id).length === 1 || undefined), 5000, 10);
    expect(orch.passes - before).toBeLessThanOrEqual(workers.length);
  });

  it('a rolling update replaces 2 tasks at a time, each next one once the last ran for the delay, then completes', async () => {
    const id = await createService({
      name: 'roll', replicated: { replicas: 4 }, taskTemplate: { container: { image: 'app:1' } },
      updateConfig: { parallelism: 2, delayMs: 300, monitorMs: 200 },
    });
    // Fake agents: start what is assigned, stop what is shut down (each reported once, as an
    // agent does), and keep a record.
    const seen: { at: number; running: Record<string, number>; starting: number }[] = [];
    const reported = new Map<string, number>();
    const agents = setInterval(() => {
      void (async () => {
        for (const w of workers) {
          const now: { taskId: string; status: never }[] = [];
          for (const t of w.tasks.values()) {
            if (t.serviceId !== id) continue;
            const state = Number(t.desiredState) > S.TASK_RUNNING ? S.TASK_SHUTDOWN : S.TASK_RUNNING;
            if ((reported.get(t.id) ?? 0) >= state) continue;
            reported.set(t.id, state);
            now.push({ taskId: t.id, status: { state, message: '', err: '', exitCode: 0, timestamp: Date.now(), containerId: t.id } as never });
          }
          await sessions.updateTaskStatus(w.nodeId, now);
        }
        const running: Record<string, number> = {};
        for (const t of live(id)) if (Number(t.status?.state) === S.TASK_RUNNING) running[t.spec?.container?.image ?? ''] = (running[t.spec?.container?.image ?? ''] ?? 0) + 1;
        seen.push({ at: Date.now(), running, starting: live(id).filter((t) => Number(t.status?.state) < S.TASK_RUNNING).length });
      })().catch(() => undefined);
    }, 20);
    try {
      await waitFor('4 running', () => (live(id).filter((t) => Number(t.status?.state) === S.TASK_RUNNING).length === 4 || undefined), 5000, 10);
      // What the control API writes for `service update --image app:2`.
      const t0 = Date.now();
      await store.update((tx) => {
        const cur = tx.get(servicesTable, id)!;
        const spec = structuredClone(cur.spec!);
        spec.taskTemplate!.container!.image = 'app:2';
        const updateStatus = { state: api.UpdateState.UPDATE_UPDATING, startedAt: t0, completedAt: 0, message: 'update in progress' };
        tx.update(servicesTable, { ...cur, previousSpec: cur.spec, spec, updateStatus } as never);
      });
      const done = await waitFor('update completed', () => {
        const s = store.view((r) => r.get(servicesTable, id))!;
        return Number(s.updateStatus?.state) === api.UpdateState.UPDATE_COMPLETED ? s : undefined;
      }, 10_000, 10);
      expect(done.updateStatus?.message).toBe('update completed');
      expect(live(id).map((t) => t.spec?.container?.image)).toEqual(['app:2', 'app:2', 'app:2', 'app:2']);
      // Never more than 2 replaced at once: at least 2 running throughout (stop-first).
      const during = seen.filter((x) => x.at > t0);
      expect(Math.min(...during.map((x) => (x.running['app:1'] ?? 0) + (x.running['app:2'] ?? 0)))).toBeGreaterThanOrEqual(2);
      // As Swarm's update workers: each of the 2 lanes makes its next task once its last one has
      // run for the delay; the update completed once the last ones had run for the monitor period
      // (as the store's own timestamps say).
      const fresh = live(id).sort((a, b) => Number(a.meta.createdAt) - Number(b.meta.createdAt));
      const ran = (ts: TaskObject[]) => ts.map((t) => Number(t.status?.timestamp)).sort((a, b) => a - b);
      const made = (ts: TaskObject[]) => ts.map((t) => Number(t.meta.createdAt)).sort((a, b) => a - b);
      const [first, second] = [fresh.slice(0, 2), fresh.slice(2)];
      expect(made(first).every((at) => at < ran(first)[0]!)).toBe(true);
      made(second).forEach((at, i) => expect(at - ran(first)[i]!).toBeGreaterThanOrEqual(300));
      expect(Number(done.updateStatus?.completedAt) - Math.max(...ran(second))).toBeGreaterThanOrEqual(200);
    } finally {
      clearInterval(agents);
    }
  });
});
