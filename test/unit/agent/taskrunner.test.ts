// The task runner against an in-memory runtime: Swarm's worker semantics
// (lifecycle order, exits, rejection, shutdown, removal, adoption after a
// restart, vanished containers, retries), and never two operations on one
// container at once.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TaskRunner } from '../../../worker/agent/tasks.js';
import { ContainerExistsError } from '../../../worker/runtime/runtime.js';
import type { Task, TaskStatus } from '../../../proto/services.js';
import { encodeRegistryAuth } from '../../../proto/registryauth.js';
import { waitFor, waitUntil } from '../../support/wait.js';
import { FakeRuntime, unavailable } from './fakeruntime.js';

const ASSIGNED = 192, ACCEPTED = 256, PREPARING = 320, READY = 384, STARTING = 448, RUNNING = 512;
const COMPLETE = 576, SHUTDOWN = 640, FAILED = 704, REJECTED = 768;
const LIFECYCLE = [ACCEPTED, PREPARING, READY, STARTING, RUNNING];

const root = mkdtempSync(join(tmpdir(), 'shoal-taskrunner-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

const silent = { info: () => {}, warn: () => {}, debug: () => {} };

interface Harness {
  rt: FakeRuntime;
  runner: TaskRunner;
  reports: { taskId: string; status: TaskStatus }[];
  logDir: string;
  volumeDir: string;
  /** States reported for a task, in order. */
  states(id: string): number[];
  last(id: string): TaskStatus | undefined;
}

const runners: TaskRunner[] = [];
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop();
});

function harness(rt = new FakeRuntime(), dirsOf?: { logDir: string; volumeDir: string }): Harness {
  const base = join(root, String(++dirs));
  const logDir = dirsOf?.logDir ?? join(base, 'logs');
  const volumeDir = dirsOf?.volumeDir ?? join(base, 'volumes');
  const reports: Harness['reports'] = [];
  const runner = new TaskRunner({ runtime: rt, nodeId: 'node-1', logDir, volumeDir, report: (u) => reports.push(u), logger: silent, retryMinMs: 5, retryMaxMs: 20 });
  runners.push(runner);
  const of = (id: string): TaskStatus[] => reports.filter((r) => r.taskId === id).map((r) => r.status);
  return { rt, runner, reports, logDir, volumeDir, states: (id) => of(id).map((s) => s.state), last: (id) => of(id).at(-1) };
}

function task(id: string, extra: { desired?: number; status?: Partial<TaskStatus>; cmd?: string[]; image?: string; grace?: number; mounts?: object[]; registryAuth?: string } = {}): Task {
  return {
    id,
    serviceId: 'svc-1',
    serviceName: 'web',
    slot: 1,
    nodeId: 'node-1',
    desiredState: extra.desired ?? RUNNING,
    status: extra.status ? { state: 64, message: '', err: '', exitCode: 0, timestamp: 0, containerId: '', ...extra.status } : undefined,
    spec: {
      container: {
        image: extra.image ?? 'shoal.local/busybox:1',
        command: extra.cmd ?? ['sleep', '1000'],
        ...(extra.grace !== undefined ? { stopGracePeriodMs: extra.grace } : {}),
        ...(extra.mounts ? { mounts: extra.mounts } : {}),
        ...(extra.registryAuth !== undefined ? { pullOptions: { registryAuth: extra.registryAuth } } : {}),
      },
    },
  } as unknown as Task;
}

const full = (...tasks: Task[]): { full: boolean; updated: Task[]; removed: string[] } => ({ full: true, updated: tasks, removed: [] });
const change = (updated: Task[], removed: string[] = []): { full: boolean; updated: Task[]; removed: string[] } => ({ full: false, updated, removed });

async function reach(h: Harness, id: string, state: number): Promise<void> {
  await waitUntil(`${id} to reach ${state} (has ${h.states(id).join(',')})`, () => h.states(id).includes(state), 5_000, 2);
}

/** Wait until the runner is idle for the task: its driver awaits the next change (no runtime call in flight). */
async function settled(h: Harness): Promise<void> {
  let n = -1;
  await waitFor('the runtime to go quiet', () => {
    const now = h.rt.calls.length + h.reports.length;
    if (now === n) return true;
    n = now;
    return undefined;
  }, 5_000, 30);
}

describe('TaskRunner lifecycle', () => {
  it('reports ACCEPTED, PREPARING, READY, STARTING, RUNNING in order, with the mapped container', async () => {
    const h = harness();
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', RUNNING);
    expect(h.states('t1')).toEqual(LIFECYCLE);
    expect(h.last('t1')).toMatchObject({ state: RUNNING, message: 'started', containerId: 't1', err: '', exitCode: 0 });
    expect(h.last('t1')!.timestamp).toBeGreaterThan(Date.now() - 10_000);
    const c = h.rt.containers.get('t1')!;
    expect(c.state).toBe('running');
    expect(c.spec).toMatchObject({ id: 't1', command: ['sleep', '1000'], hostname: 't1', logPath: join(h.logDir, 't1.log') });
    expect(c.spec.labels).toMatchObject({ 'shoal.task.id': 't1', 'shoal.service.id': 'svc-1', 'shoal.node.id': 'node-1' });
    expect(h.runner.statuses().get('t1')).toMatchObject({ state: RUNNING });
    expect(h.rt.overlaps).toEqual([]);
  });

  const exits: { code: number; want: Partial<TaskStatus> }[] = [
    { code: 0, want: { state: COMPLETE, exitCode: 0, err: '' } },
    { code: 1, want: { state: FAILED, exitCode: 1, err: 'task: non-zero exit (1)' } },
    { code: 137, want: { state: FAILED, exitCode: 137, err: 'task: non-zero exit (137)' } },
  ];
  for (const c of exits) {
    it(`exit ${c.code} -> ${c.want.state === COMPLETE ? 'COMPLETE' : 'FAILED'}`, async () => {
      const h = harness();
      h.runner.assign(full(task('t1')));
      await reach(h, 't1', RUNNING);
      const running = h.last('t1')!;
      // Since when it runs, in the running status and every later one (a rolling update's monitor counts from it).
      expect(running.startedAt).toBe(running.timestamp);
      h.rt.exit('t1', c.code);
      await reach(h, 't1', c.want.state!);
      expect(h.last('t1')).toMatchObject({ ...c.want, containerId: 't1', startedAt: running.startedAt });
      expect(h.states('t1')).toEqual([...LIFECYCLE, c.want.state]);
    });
  }

  it('a missing image rejects the task, naming the image; nothing is created', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { image: 'shoal.local/nope:7' })));
    await reach(h, 't1', REJECTED);
    expect(h.states('t1')).toEqual([ACCEPTED, PREPARING, REJECTED]);
    expect(h.last('t1')!.err).toContain('shoal.local/nope:7');
    expect(h.last('t1')!.startedAt).toBe(0);
    expect(h.rt.count('create')).toBe(0);
  });

  it('the registry credentials a task carries go with its image\'s pull; without any, the node\'s own are used', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { registryAuth: encodeRegistryAuth({ username: 'alice', password: 'pw', serveraddress: 'r.example' }) }), task('t2')));
    await reach(h, 't1', RUNNING);
    await reach(h, 't2', RUNNING);
    expect(h.rt.pullAuths.find((p) => p.ref === 'shoal.local/busybox:1' && p.auth)?.auth).toEqual({ credentials: { username: 'alice', password: 'pw' } });
    expect(h.rt.pullAuths.filter((p) => !p.auth)).toHaveLength(1);
  });

  it('unusable registry credentials reject the task, saying why; no pull is tried', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { registryAuth: 'not base64!' })));
    await reach(h, 't1', REJECTED);
    expect(h.last('t1')!.err).toMatch(/registry credentials are unusable: not base64/);
    expect(h.rt.count('ensureImage')).toBe(0);
  });

  it('a spec that cannot become a container is rejected', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { mounts: [{ type: 0, source: '../../etc', target: '/x' }] })));
    await reach(h, 't1', REJECTED);
    expect(h.last('t1')!.err).toMatch(/invalid volume name/);
    expect(h.rt.count('create')).toBe(0);
  });

  it('a start failure fails the task with the runtime’s words', async () => {
    const h = harness();
    h.rt.failNext('start', () => new Error('exec: "nope": executable file not found in $PATH'));
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', FAILED);
    expect(h.states('t1')).toEqual([ACCEPTED, PREPARING, READY, STARTING, FAILED]);
    expect(h.last('t1')!.err).toMatch(/starting container failed: .*executable file not found/);
  });

  it('named volumes become directories, created before the container', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { mounts: [{ type: 0, source: 'data', target: '/data' }, { type: 0, source: '', target: '/cache' }] })));
    await reach(h, 't1', RUNNING);
    expect(existsSync(join(h.volumeDir, 'data'))).toBe(true);
    expect(existsSync(join(h.volumeDir, 't1-1'))).toBe(true);
    expect(h.rt.containers.get('t1')!.spec.mounts).toEqual([
      { type: 'bind', source: join(h.volumeDir, 'data'), target: '/data' },
      { type: 'bind', source: join(h.volumeDir, 't1-1'), target: '/cache' },
    ]);
  });
});

describe('TaskRunner shutdown and removal', () => {
  it('desired SHUTDOWN stops a running task with its grace period, reports SHUTDOWN, removes the container', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { grace: 1234 })));
    await reach(h, 't1', RUNNING);
    h.runner.assign(change([task('t1', { grace: 1234, desired: SHUTDOWN })]));
    await reach(h, 't1', SHUTDOWN);
    await waitUntil('the container removed', () => !h.rt.containers.has('t1'), 5_000, 2);
    expect(h.last('t1')).toMatchObject({ state: SHUTDOWN, message: 'shutdown', exitCode: 143 });
    expect(h.rt.stopOptions).toEqual([{ graceMs: 1234 }]);
    expect(h.states('t1')).toEqual([...LIFECYCLE, SHUTDOWN]);
    expect(h.rt.overlaps).toEqual([]);
  });

  it('a running task told to shut down: its one wait ends with the exit the stop causes, not by a cancel', async () => {
    const h = harness();
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', RUNNING);
    h.runner.assign(change([task('t1', { desired: SHUTDOWN })]));
    await reach(h, 't1', SHUTDOWN);
    await settled(h);
    expect(h.rt.count('wait', 't1')).toBe(1);
    expect(h.rt.abortedWaits).toBe(0);
    expect(h.rt.containers.has('t1')).toBe(false);
  });

  it('stop() of the runner ends its waits and leaves the containers running', async () => {
    const h = harness();
    const warnings: string[] = [];
    const runner = new TaskRunner({
      runtime: h.rt, nodeId: 'node-1', logDir: h.logDir, volumeDir: h.volumeDir, report: (u) => h.reports.push(u),
      logger: { ...silent, warn: (_o: object, m?: string) => void warnings.push(m ?? '') }, retryMinMs: 5, retryMaxMs: 20,
    });
    runner.assign(full(task('t1'), task('t2')));
    await reach(h, 't1', RUNNING);
    await reach(h, 't2', RUNNING);
    await waitUntil('both watched', () => h.rt.count('wait') === 2, 5_000, 2);
    await runner.stop();
    expect(h.rt.abortedWaits).toBe(2);
    expect(warnings).toEqual([]);
    expect([...h.rt.containers.values()].map((c) => c.state)).toEqual(['running', 'running']);
  });

  it('a task told to shut down before it started: SHUTDOWN, nothing created', async () => {
    const h = harness();
    h.runner.assign(full(task('t1', { desired: SHUTDOWN, status: { state: 192 } })));
    await reach(h, 't1', SHUTDOWN);
    await settled(h);
    expect(h.states('t1')).toEqual([SHUTDOWN]);
    expect(h.rt.count('create') + h.rt.count('ensureImage')).toBe(0);
  });

  it('shutdown while the image is being prepared: no container is made', async () => {
    const h = harness();
    const release = h.rt.hold('ensureImage');
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', PREPARING);
    h.runner.assign(change([task('t1', { desired: SHUTDOWN })]));
    release();
    await reach(h, 't1', SHUTDOWN);
    await settled(h);
    expect(h.rt.count('create')).toBe(0);
    expect(h.states('t1')).toEqual([ACCEPTED, PREPARING, SHUTDOWN]);
  });

  it('a task that ended keeps its state when told to shut down; its container goes', async () => {
    const h = harness();
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', RUNNING);
    h.rt.exit('t1', 0);
    await reach(h, 't1', COMPLETE);
    // The managers echo the task back (old status), then want it down.
    h.runner.assign(change([task('t1', { status: { state: RUNNING } })]));
    h.runner.assign(change([task('t1', { desired: SHUTDOWN })]));
    await waitUntil('the container removed', () => !h.rt.containers.has('t1'), 5_000, 2);
    await settled(h);
    expect(h.states('t1')).toEqual([...LIFECYCLE, COMPLETE]);
    expect(h.runner.statuses().get('t1')).toMatchObject({ state: COMPLETE });
  });

  const removals: { name: string; msg: (t: Task) => ReturnType<typeof full> }[] = [
    { name: 'listed in removed', msg: () => change([], ['t1']) },
    { name: 'absent from a full set', msg: () => full(task('other', { desired: SHUTDOWN })) },
  ];
  for (const c of removals) {
    it(`removed from the assignments (${c.name}): container and log go, nothing is reported`, async () => {
      const h = harness();
      h.runner.assign(full(task('t1', { mounts: [{ type: 0, target: '/cache' }] })));
      await reach(h, 't1', RUNNING);
      mkdirSync(h.logDir, { recursive: true });
      writeFileSync(join(h.logDir, 't1.log'), '2026-11-23T18:29:08Z stdout hi\n');
      const before = h.states('t1').length;
      h.runner.assign(c.msg(task('t1')));
      await waitUntil('the container removed', () => !h.rt.containers.has('t1'), 5_000, 2);
      await waitUntil('the log deleted', () => !existsSync(join(h.logDir, 't1.log')), 5_000, 2);
      await settled(h);
      expect(existsSync(join(h.volumeDir, 't1-0'))).toBe(false);
      expect(h.states('t1')).toHaveLength(before);
      expect(h.runner.statuses().has('t1')).toBe(false);
      expect(h.rt.overlaps).toEqual([]);
    });
  }
});

describe('TaskRunner after an agent restart', () => {
  it('adopts running containers (no second create), reports RUNNING, removes unassigned ones', async () => {
    const h1 = harness();
    h1.runner.assign(full(task('keep'), task('gone'), task('same')));
    await Promise.all(['keep', 'gone', 'same'].map((id) => reach(h1, id, RUNNING)));
    await h1.runner.stop();
    // stop() leaves containers alone.
    expect(['keep', 'gone', 'same'].map((id) => h1.rt.containers.get(id)?.state)).toEqual(['running', 'running', 'running']);
    expect(h1.rt.count('stop') + h1.rt.count('remove')).toBe(0);

    const h2 = harness(h1.rt, { logDir: h1.logDir, volumeDir: h1.volumeDir });
    await h2.runner.start();
    // The managers last heard STARTING of `keep` (RUNNING was lost), RUNNING of `same`.
    h2.runner.assign(full(task('keep', { status: { state: STARTING } }), task('same', { status: { state: RUNNING } })));
    await reach(h2, 'keep', RUNNING);
    await waitUntil('the unassigned container removed', () => !h1.rt.containers.has('gone'), 5_000, 2);
    await settled(h2);
    expect(h2.states('keep')).toEqual([RUNNING]);
    expect(h2.states('same')).toEqual([]);
    expect(h2.runner.statuses().get('same')).toMatchObject({ state: RUNNING });
    expect(h1.rt.count('create', 'keep') + h1.rt.count('create', 'same')).toBe(2); // the first runner's only
    expect(h1.rt.count('start', 'keep')).toBe(1);
    // The adopted task is watched: its exit is reported.
    h1.rt.exit('keep', 0);
    await reach(h2, 'keep', COMPLETE);
    expect(h1.rt.overlaps).toEqual([]);
  });

  const found: { name: string; state: 'exited' | 'created'; exitCode?: number; managers: number; want: Partial<TaskStatus>; starts: number }[] = [
    { name: 'exited 0 -> COMPLETE', state: 'exited', exitCode: 0, managers: RUNNING, want: { state: COMPLETE, exitCode: 0 }, starts: 0 },
    { name: 'exited 3 -> FAILED 3', state: 'exited', exitCode: 3, managers: RUNNING, want: { state: FAILED, exitCode: 3, err: 'task: non-zero exit (3)' }, starts: 0 },
    { name: 'created, never started -> started', state: 'created', managers: READY, want: { state: RUNNING }, starts: 1 },
    { name: 'created but the managers saw it run -> FAILED', state: 'created', managers: RUNNING, want: { state: FAILED }, starts: 0 },
  ];
  for (const c of found) {
    it(`a container found ${c.name}`, async () => {
      const h = harness();
      h.rt.addContainer({ id: 't1', image: 'shoal.local/busybox:1', labels: { 'shoal.task.id': 't1' }, logPath: '/x.log' }, c.state, c.exitCode);
      await h.runner.start();
      h.runner.assign(full(task('t1', { status: { state: c.managers } })));
      await reach(h, 't1', c.want.state!);
      await settled(h);
      expect(h.last('t1')).toMatchObject(c.want);
      expect(h.rt.count('create')).toBe(0);
      expect(h.rt.count('start')).toBe(c.starts);
    });
  }

  it('a task new to the node is run without asking the runtime for its container first', async () => {
    const h = harness();
    await h.runner.start();
    h.runner.assign(full(task('t1', { status: { state: ASSIGNED } })));
    await reach(h, 't1', RUNNING);
    expect(h.states('t1')).toEqual(LIFECYCLE);
    expect(h.rt.count('inspect')).toBe(0);
  });

  it('a container the previous agent made but never reported (managers: assigned) is adopted, not made again', async () => {
    const h = harness();
    h.rt.addContainer({ id: 't1', image: 'shoal.local/busybox:1', labels: { 'shoal.task.id': 't1' }, logPath: '/x.log' }, 'running');
    await h.runner.start();
    h.runner.assign(full(task('t1', { status: { state: ASSIGNED } })));
    await reach(h, 't1', RUNNING);
    await settled(h);
    expect(h.states('t1')).toEqual([RUNNING]);
    expect(h.rt.count('inspect', 't1')).toBe(1);
    expect(h.rt.count('create')).toBe(0);
  });

  it('a task the managers saw starting whose container is gone is FAILED, not run again', async () => {
    const h = harness();
    await h.runner.start();
    h.runner.assign(full(task('t1', { status: { state: RUNNING, containerId: 't1' } })));
    await reach(h, 't1', FAILED);
    await settled(h);
    expect(h.states('t1')).toEqual([FAILED]);
    expect(h.last('t1')!.err).toBe('container t1 vanished (was it removed outside shoal?)');
    expect(h.rt.count('create') + h.rt.count('ensureImage')).toBe(0);
  });

  it('a task the managers consider ended is never run again', async () => {
    const h = harness();
    await h.runner.start();
    h.runner.assign(full(task('t1', { status: { state: COMPLETE } })));
    await settled(h);
    expect(h.states('t1')).toEqual([]);
    expect(h.rt.count('create')).toBe(0);
  });

  it('assignments given before start() finished wait for it (no orphan mistaken, no duplicate)', async () => {
    const h = harness();
    h.rt.addContainer({ id: 't1', image: 'shoal.local/busybox:1', labels: { 'shoal.task.id': 't1' }, logPath: '/x.log' }, 'running');
    const release = h.rt.hold('list');
    const started = h.runner.start();
    h.runner.assign(full(task('t1', { status: { state: RUNNING } })));
    release();
    await started;
    await settled(h);
    expect(h.rt.containers.get('t1')?.state).toBe('running');
    expect(h.rt.count('create') + h.rt.count('remove')).toBe(0);
  });
});

describe('TaskRunner against a runtime that misbehaves', () => {
  it('create finding the container already there adopts it', async () => {
    const h = harness();
    const spec = { id: 't1', image: 'shoal.local/busybox:1', labels: { 'shoal.task.id': 't1' }, logPath: '/x.log' };
    // Someone made the container between our look and our create.
    h.rt.failNext('create', () => {
      h.rt.addContainer(spec, 'running');
      return new ContainerExistsError('t1');
    });
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', RUNNING);
    await settled(h);
    expect(h.rt.count('create')).toBe(1);
    expect(h.rt.count('start')).toBe(0);
    expect(h.states('t1')).toEqual([ACCEPTED, PREPARING, RUNNING]);
  });

  const transient: { op: 'ensureImage' | 'create' | 'start' | 'inspect'; times: number }[] = [
    { op: 'inspect', times: 2 },
    { op: 'ensureImage', times: 3 },
    { op: 'create', times: 2 },
    { op: 'start', times: 2 },
  ];
  for (const c of transient) {
    it(`retries ${c.op} while the runtime is unavailable (${c.times} times), without rejecting`, async () => {
      const h = harness();
      h.rt.failNext(c.op, ...Array.from({ length: c.times }, () => unavailable));
      h.runner.assign(full(task('t1')));
      await reach(h, 't1', RUNNING);
      expect(h.states('t1')).toEqual(LIFECYCLE);
      expect(h.rt.count(c.op)).toBe(c.times + 1);
      expect(h.rt.count('create')).toBe(c.op === 'create' ? c.times + 1 : 1);
    });
  }

  it('stop() of the runner ends its retries', async () => {
    const h = harness();
    h.rt.failNext('ensureImage', ...Array.from({ length: 1000 }, () => unavailable));
    h.runner.assign(full(task('t1')));
    await waitUntil('a few retries', () => h.rt.count('ensureImage') >= 3, 5_000, 2);
    await h.runner.stop();
    const n = h.rt.count('ensureImage');
    await settled(h);
    expect(h.rt.count('ensureImage')).toBe(n);
  });

  it('a removed task assigned again is not run twice', async () => {
    const h = harness();
    h.runner.assign(full(task('t1')));
    await reach(h, 't1', RUNNING);
    h.runner.assign(change([], ['t1']));
    h.runner.assign(change([task('t1', { status: { state: ACCEPTED } })]));
    await reach(h, 't1', FAILED);
    await settled(h);
    expect(h.rt.count('create')).toBe(1);
    expect(h.rt.containers.has('t1')).toBe(false);
    expect(h.rt.overlaps).toEqual([]);
  });
});
