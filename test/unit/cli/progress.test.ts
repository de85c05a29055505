import { describe, expect, it } from 'vitest';
import type { shoal } from '../../../proto/gen/api.js';
import { api } from '../../../proto/services.js';
import { Convergence, MAX_BARS, ProgressWriter, bar, restartGivesUp, waitForConvergence, type Observation, type Snapshot } from '../../../cli/shoal/progress.js';

type Task = shoal.api.Task.$Properties;
type Service = shoal.api.Service.$Properties;
const S = api.TaskState;
const R = api.RestartCondition;
const T0 = 1_700_000_000_000;
const FULL = `[${'='.repeat(50)}>]`;
const REASON = 'no node satisfies node.labels.zone==eu: 3 nodes checked';

let seq = 0;
function task(slot: number, state: number, p: Partial<Task> = {}): Task {
  seq++;
  return {
    id: `task${String(seq).padStart(4, '0')}`, serviceId: 'svc', serviceName: 'web', slot, nodeId: 'n1', desiredState: S.TASK_RUNNING,
    meta: { version: seq, createdAt: T0 + seq },
    status: { state, timestamp: T0 + seq },
    ...p,
  };
}

function svc(spec: Partial<shoal.api.IServiceSpec>, restart?: shoal.api.IRestartPolicy): Service {
  return { id: 'svc', spec: { name: 'web', replicated: { replicas: 3 }, taskTemplate: { container: { image: 'busybox' }, restartPolicy: restart }, ...spec } };
}

const obs = (service: Service, tasks: Task[], now: number, extra: Partial<Observation> = {}): Observation => ({ service, tasks, hostnames: new Map(), now, ...extra });
const texts = (f: { lines: { text: string }[] }) => f.lines.map((l) => l.text);

describe('bars', () => {
  it('are docker\'s: a state\'s step out of 9, 50 wide', () => {
    expect(bar(S.TASK_RUNNING)).toBe(FULL);
    expect(bar(S.TASK_PENDING)).toBe(`[${'='.repeat(16)}>${' '.repeat(34)}]`);
    expect(bar(S.TASK_PREPARING)).toBe(`[${'='.repeat(33)}>${' '.repeat(17)}]`);
    for (const s of [S.TASK_NEW, S.TASK_ASSIGNED, S.TASK_STARTING]) expect(bar(s)).toHaveLength(53);
  });
});

describe('a replicated service converging', () => {
  it('goes from nothing to running, then holds still for the verify period', () => {
    const c = new Convergence({ stableMs: 5000 });
    const s = svc({});
    let f = c.observe(obs(s, [], T0));
    expect(texts(f)).toEqual(['overall progress: 0 out of 3 tasks']);
    expect(f.outcome.kind).toBe('waiting');

    const t = [task(1, S.TASK_PENDING), task(2, S.TASK_PREPARING), task(3, S.TASK_RUNNING)];
    f = c.observe(obs(s, t, T0 + 300));
    expect(texts(f)).toEqual([
      'overall progress: 1 out of 3 tasks',
      `1/3: pending   ${bar(S.TASK_PENDING)}`,
      `2/3: preparing ${bar(S.TASK_PREPARING)}`,
      `3/3: running   ${FULL}`,
    ]);

    const running = [task(1, S.TASK_RUNNING), task(2, S.TASK_RUNNING), t[2]!];
    f = c.observe(obs(s, running, T0 + 1000));
    expect(f.outcome.kind).toBe('waiting');
    expect(texts(f).at(-1)).toBe('verify: Waiting 5 seconds to verify that tasks are stable...');
    f = c.observe(obs(s, running, T0 + 4500));
    expect(texts(f).at(-1)).toBe('verify: Waiting 2 seconds to verify that tasks are stable...');
    f = c.observe(obs(s, running, T0 + 6000));
    expect(f.outcome.kind).toBe('converged');
    expect(texts(f)).toEqual(['overall progress: 3 out of 3 tasks', `1/3: running   ${FULL}`, `2/3: running   ${FULL}`, `3/3: running   ${FULL}`, 'verify: Service converged']);
  });

  it('starts the verify period over when a task stops running', () => {
    const c = new Convergence({ stableMs: 5000 });
    const s = svc({ replicated: { replicas: 1 } });
    expect(c.observe(obs(s, [task(1, S.TASK_RUNNING)], T0)).outcome.kind).toBe('waiting');
    const failed = task(1, S.TASK_FAILED, { status: { state: S.TASK_FAILED, err: 'task: non-zero exit (1)', timestamp: T0 + 4000 } });
    const f = c.observe(obs(s, [failed], T0 + 4000));
    expect(texts(f)).toEqual(['overall progress: 0 out of 1 tasks', '1/1: failed   task: non-zero exit (1)']);
    const again = task(1, S.TASK_RUNNING);
    expect(c.observe(obs(s, [failed, again], T0 + 6000)).outcome.kind).toBe('waiting');
    expect(c.observe(obs(s, [failed, again], T0 + 11_000)).outcome.kind).toBe('converged');
  });

  it('shows the newest task of a slot that is still wanted, and maps slots to 1..N', () => {
    const c = new Convergence({ stableMs: 0 });
    const old = task(4, S.TASK_FAILED, { desiredState: S.TASK_SHUTDOWN, status: { state: S.TASK_FAILED, err: 'old' } });
    const cur = task(4, S.TASK_STARTING);
    const f = c.observe(obs(svc({ replicated: { replicas: 2 } }), [task(7, S.TASK_RUNNING), old, cur], T0));
    // The retry says what went wrong with the attempt before it.
    expect(texts(f)).toEqual(['overall progress: 1 out of 2 tasks', '1/2: starting last attempt failed: old', `2/2: running   ${FULL}`]);
  });

  it('a slot\'s new task of another template (an update) does not show the old one\'s failure as its last attempt', () => {
    const c = new Convergence({ stableMs: 0 });
    const spec = (image: string) => ({ container: { image } });
    const old = task(1, S.TASK_FAILED, { desiredState: S.TASK_SHUTDOWN, spec: spec('busybox:1'), status: { state: S.TASK_FAILED, err: 'task: non-zero exit (3)' } });
    const cur = task(1, S.TASK_STARTING, { spec: spec('busybox:2') });
    expect(texts(c.observe(obs(svc({ replicated: { replicas: 1 } }), [old, cur], T0)))[1]).toMatch(/^1\/1: starting +\[=+>/);
    const retry = task(1, S.TASK_STARTING, { spec: spec('busybox:1') });
    expect(texts(c.observe(obs(svc({ replicated: { replicas: 1 } }), [old, retry], T0)))[1]).toBe('1/1: starting last attempt failed: task: non-zero exit (3)');
  });

  it('scaling down: converges only once the extra tasks are no longer wanted', () => {
    const c = new Convergence({ stableMs: 0 });
    const s = svc({ replicated: { replicas: 1 } });
    const keep = task(1, S.TASK_RUNNING);
    const extra = task(2, S.TASK_RUNNING);
    expect(c.observe(obs(s, [keep, extra], T0)).outcome.kind).toBe('waiting');
    const stopping = { ...extra, desiredState: S.TASK_SHUTDOWN };
    const f = c.observe(obs(s, [keep, stopping], T0 + 300));
    expect(f.outcome.kind).toBe('converged');
    expect(texts(f)).toEqual(['overall progress: 1 out of 1 tasks', `1/1: running   ${FULL}`, 'verify: Service converged']);
  });

  it('scaled to 0 converges at once when nothing is left running', () => {
    expect(new Convergence().observe(obs(svc({ replicated: { replicas: 0 } }), [], T0)).outcome.kind).toBe('converged');
  });

  it('over 20 slots draws only the overall line, plus the first slot in trouble', () => {
    const c = new Convergence();
    const s = svc({ replicated: { replicas: MAX_BARS + 5 } });
    const tasks = Array.from({ length: MAX_BARS + 5 }, (_, i) => task(i + 1, S.TASK_RUNNING));
    expect(texts(c.observe(obs(s, tasks, T0))).slice(0, 1)).toEqual([`overall progress: ${MAX_BARS + 5} out of ${MAX_BARS + 5} tasks`]);
    tasks[7] = task(8, S.TASK_REJECTED, { status: { state: S.TASK_REJECTED, err: 'no such image' } });
    expect(texts(c.observe(obs(s, tasks, T0)))).toEqual([`overall progress: ${MAX_BARS + 4} out of ${MAX_BARS + 5} tasks`, '8/25: rejected no such image']);
  });
});

describe('a service that cannot converge', () => {
  it('fails when a task failed and the restart condition is none', () => {
    const c = new Convergence();
    const s = svc({ replicated: { replicas: 2 } }, { condition: R.RESTART_NONE });
    const f = c.observe(obs(s, [task(1, S.TASK_RUNNING), task(2, S.TASK_FAILED, { status: { state: S.TASK_FAILED, err: 'task: non-zero exit (3)' } })], T0));
    expect(f.outcome).toEqual({ kind: 'failed', message: expect.stringMatching(/^the service cannot converge: task web\.2 failed \(task: non-zero exit \(3\)\) and is not restarted: its restart policy \(condition none\) gives up$/) });
    expect(texts(f)[2]).toBe('2/2: failed   task: non-zero exit (3)');
  });

  it('fails once the slot has used its max attempts, not before', () => {
    const c = new Convergence();
    const s = svc({ replicated: { replicas: 1 } }, { condition: R.RESTART_ON_FAILURE, maxAttempts: 2 });
    const failed = (history: number[]) => task(1, S.TASK_FAILED, { restartHistory: history, status: { state: S.TASK_FAILED, err: 'boom', timestamp: T0 } });
    expect(c.observe(obs(s, [failed([T0 - 1000])], T0)).outcome.kind).toBe('waiting');
    const f = c.observe(obs(s, [failed([T0 - 2000, T0 - 1000])], T0));
    expect(f.outcome.kind).toBe('failed');
    expect((f.outcome as { message: string }).message).toContain('its restart policy (condition on-failure, max attempts 2) gives up');
  });

  it('uses the orchestrator\'s reason when it gave up on a task that is still wanted', () => {
    const c = new Convergence();
    const t = task(1, S.TASK_REJECTED, { shutdownReason: 'restart policy exhausted: 3 restarts (max attempts 3)', status: { state: S.TASK_REJECTED, err: 'no such image: nope:1' } });
    const f = c.observe(obs(svc({ replicated: { replicas: 1 } }), [t], T0));
    expect(f.outcome).toEqual({ kind: 'failed', message: 'the service cannot converge: task web.1 rejected (no such image: nope:1) and is not restarted: restart policy exhausted: 3 restarts (max attempts 3)' });
  });

  it('a service task that completes under on-failure is not restarted: said with a hint', () => {
    const f = new Convergence().observe(obs(svc({ replicated: { replicas: 1 } }, { condition: R.RESTART_ON_FAILURE }), [task(1, S.TASK_COMPLETE)], T0));
    expect(f.outcome.kind).toBe('failed');
    expect((f.outcome as { message: string }).message).toMatch(/task web\.1 completed \(exit code 0\).*use --mode replicated-job/);
  });

  it('keeps waiting while a failed task will still be restarted (condition any, no max)', () => {
    const f = new Convergence().observe(obs(svc({ replicated: { replicas: 1 } }), [task(1, S.TASK_FAILED, { restartHistory: [1, 2, 3, 4, 5] })], T0));
    expect(f.outcome.kind).toBe('waiting');
  });

  it('gives up after every unfinished task stayed pending with a scheduling reason for the grace period, saying why', () => {
    const c = new Convergence({ pendingGraceMs: 5000 });
    const s = svc({ replicated: { replicas: 2 } });
    const pending = task(2, S.TASK_PENDING, { nodeId: '', status: { state: S.TASK_PENDING, message: REASON } });
    const tasks = [task(1, S.TASK_RUNNING), pending];
    let f = c.observe(obs(s, tasks, T0));
    expect(texts(f)).toEqual(['overall progress: 1 out of 2 tasks', `1/2: running   ${FULL}`, `2/2: pending  ${REASON}`]);
    expect(f.outcome.kind).toBe('waiting');
    f = c.observe(obs(s, tasks, T0 + 4999));
    expect(f.outcome.kind).toBe('waiting');
    f = c.observe(obs(s, tasks, T0 + 5000));
    expect(f.outcome).toEqual({
      kind: 'failed',
      message: `the service is created but cannot converge: ${REASON}; it stays pending until a node fits (use --detach to not wait)`,
    });
  });

  it('the grace period starts over when a task gets placed; a plain pending message or a restart delay is no reason', () => {
    const c = new Convergence({ pendingGraceMs: 5000, verb: 'scaled' });
    const s = svc({ replicated: { replicas: 1 } });
    const stuck = task(1, S.TASK_PENDING, { status: { state: S.TASK_PENDING, message: REASON } });
    expect(c.observe(obs(s, [stuck], T0)).outcome.kind).toBe('waiting');
    expect(c.observe(obs(s, [task(1, S.TASK_ASSIGNED)], T0 + 3000)).outcome.kind).toBe('waiting');
    expect(c.observe(obs(s, [stuck], T0 + 6000)).outcome.kind).toBe('waiting');
    const f = c.observe(obs(s, [stuck], T0 + 11_000));
    expect((f.outcome as { message: string }).message).toMatch(/^the service is scaled but cannot converge/);

    const c2 = new Convergence({ pendingGraceMs: 0 });
    expect(c2.observe(obs(s, [task(1, S.TASK_PENDING, { status: { state: S.TASK_PENDING, message: 'pending task scheduling' } })], T0)).outcome.kind).toBe('waiting');
    expect(c2.observe(obs(s, [task(1, S.TASK_PENDING, { notBefore: T0 + 1000, status: { state: S.TASK_PENDING, message: REASON } })], T0)).outcome.kind).toBe('waiting');
    // Tasks not created yet: the orchestrator has work to do, nothing is stuck.
    expect(c2.observe(obs(svc({ replicated: { replicas: 2 } }), [task(1, S.TASK_PENDING, { status: { state: S.TASK_PENDING, message: REASON } })], T0)).outcome.kind).toBe('waiting');
  });

  it('a slot rejected 3 times in a row is stuck (the default policy would retry for ever), fewer is not', () => {
    const s = svc({ replicated: { replicas: 1 } });
    const rej = (err: string) => task(1, S.TASK_REJECTED, { desiredState: S.TASK_SHUTDOWN, status: { state: S.TASK_REJECTED, err } });
    const retry = () => task(1, S.TASK_PENDING, { notBefore: T0 + 5000, status: { state: S.TASK_PENDING, message: 'restart delay: starts after 5 s' } });
    const two = [rej('pull: not found'), rej('pull: not found'), retry()];
    expect(new Convergence().observe(obs(s, two, T0)).outcome.kind).toBe('waiting');
    expect(texts(new Convergence().observe(obs(s, two, T0)))[1]).toBe('1/1: pending  last attempt rejected: pull: not found');
    const three = [...two, rej('pull: registry.local/nope:1 not found'), retry()];
    const f = new Convergence().observe(obs(s, three, T0));
    expect(f.outcome).toEqual({
      kind: 'failed',
      message: 'the service cannot converge: task web.1 was rejected 3 times in a row (pull: registry.local/nope:1 not found); '
        + 'it is retried, but that will not fix it: fix the cause, or remove the service with `shoal service rm web`',
    });
    // A run in between starts the count over.
    const mixed = [rej('x'), rej('x'), task(1, S.TASK_FAILED, { desiredState: S.TASK_SHUTDOWN }), rej('x'), retry()];
    expect(new Convergence().observe(obs(s, mixed, T0)).outcome.kind).toBe('waiting');
  });

  it('restart policy decisions follow swarm\'s supervisor', () => {
    const failed = (p: Partial<Task> = {}) => task(1, S.TASK_FAILED, { status: { state: S.TASK_FAILED, timestamp: T0 }, ...p });
    expect(restartGivesUp(failed(), { condition: R.RESTART_NONE }, false)).toBe(true);
    expect(restartGivesUp(failed(), undefined, false)).toBe(false);
    expect(restartGivesUp(failed({ restartHistory: [T0 - 10] }), { condition: R.RESTART_ANY, maxAttempts: 1 }, false)).toBe(true);
    // Outside the window an old restart does not count.
    expect(restartGivesUp(failed({ restartHistory: [T0 - 60_000] }), { condition: R.RESTART_ANY, maxAttempts: 1, windowMs: 30_000 }, false)).toBe(false);
    expect(restartGivesUp(task(1, S.TASK_COMPLETE), { condition: R.RESTART_ANY }, false)).toBe(false);
    expect(restartGivesUp(task(1, S.TASK_COMPLETE), { condition: R.RESTART_NONE }, true)).toBe(false);
    expect(restartGivesUp(task(1, S.TASK_RUNNING), { condition: R.RESTART_NONE }, false)).toBe(false);
  });
});

describe('jobs and global services', () => {
  it('a replicated job converges when all its completions are done, with no verify period', () => {
    const c = new Convergence({ stableMs: 60_000 });
    const s = svc({ replicated: undefined, replicatedJob: { maxConcurrent: 2, totalCompletions: 3 } });
    let f = c.observe(obs(s, [task(1, S.TASK_COMPLETE), task(2, S.TASK_RUNNING)], T0));
    expect(texts(f)).toEqual(['job progress: 1 out of 3 complete', `1/3: complete  ${FULL}`, `2/3: running   ${FULL}`]);
    expect(f.outcome.kind).toBe('waiting');
    f = c.observe(obs(s, [task(1, S.TASK_COMPLETE), task(2, S.TASK_COMPLETE), task(3, S.TASK_COMPLETE)], T0 + 100));
    expect(f.outcome.kind).toBe('converged');
    expect(texts(f).at(-1)).toBe('job complete');
  });

  it('a job whose running wave is stuck pending says why and fails, though later tasks are not created yet', () => {
    const c = new Convergence({ pendingGraceMs: 1000 });
    const s = svc({ replicated: undefined, replicatedJob: { maxConcurrent: 1, totalCompletions: 4 } });
    const t = [task(1, S.TASK_PENDING, { status: { state: S.TASK_PENDING, message: REASON } })];
    expect(c.observe(obs(s, t, T0)).outcome.kind).toBe('waiting');
    expect(c.observe(obs(s, t, T0 + 1000)).outcome).toMatchObject({ kind: 'failed', message: expect.stringContaining(REASON) });
  });

  it('a job\'s failed task that will not be restarted fails the wait', () => {
    const s = svc({ replicated: undefined, replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } }, { condition: R.RESTART_ON_FAILURE, maxAttempts: 1 });
    const f = new Convergence().observe(obs(s, [task(1, S.TASK_FAILED, { restartHistory: [T0], status: { state: S.TASK_FAILED, exitCode: 2, timestamp: T0 } })], T0));
    expect(f.outcome.kind).toBe('failed');
    expect((f.outcome as { message: string }).message).toContain('task web.1 failed (exit code 2)');
  });

  it('a global service draws a line per node, by hostname, out of the eligible nodes', () => {
    const c = new Convergence({ stableMs: 0 });
    const s = svc({ replicated: undefined, global: {} });
    const hostnames = new Map([['n1', 'host1'], ['n2', 'host2']]);
    const tasks = [task(0, S.TASK_RUNNING, { nodeId: 'n2' }), task(0, S.TASK_PREPARING, { nodeId: 'n1' })];
    let f = c.observe(obs(s, tasks, T0, { hostnames, counts: { serviceId: 'svc', desired: 3 } }));
    expect(texts(f)).toEqual(['overall progress: 1 out of 3 tasks', `host1: preparing ${bar(S.TASK_PREPARING)}`, `host2: running   ${FULL}`]);
    const all = [task(0, S.TASK_RUNNING, { nodeId: 'n1' }), tasks[0]!, task(0, S.TASK_RUNNING, { nodeId: 'n3abcdefghijklmnop' })];
    f = c.observe(obs(s, all, T0 + 100, { hostnames, counts: { serviceId: 'svc', desired: 3 } }));
    expect(f.outcome.kind).toBe('converged');
    // A node whose hostname is not known yet shows its short ID.
    expect(texts(f)).toContain(`n3abcdefghij: running   ${FULL}`);
  });

  it('a global job completes when every node\'s task completed', () => {
    const s = svc({ replicated: undefined, globalJob: {} });
    const f = new Convergence().observe(obs(s, [task(0, S.TASK_COMPLETE, { nodeId: 'n1' }), task(0, S.TASK_COMPLETE, { nodeId: 'n2' })], T0, { counts: { serviceId: 'svc', desired: 2, completed: 2 } }));
    expect(f.outcome.kind).toBe('converged');
    expect(texts(f)[0]).toBe('job progress: 2 out of 2 complete');
  });
});

describe('drawing', () => {
  const L = (key: string, text: string, sig = text) => ({ key, text, sig });

  it('on a terminal redraws the block in place and clears lines that went away', () => {
    const outs: string[] = [];
    const w = new ProgressWriter((s) => outs.push(s), true, 80);
    w.draw([L('h', 'overall progress: 0 out of 2 tasks'), L('1', '1/2: new'), L('2', '2/2: new')]);
    w.draw([L('h', 'overall progress: 0 out of 2 tasks'), L('1', '1/2: new'), L('2', '2/2: new')]);
    w.draw([L('h', 'overall progress: 2 out of 2 tasks'), L('v', 'verify: Service converged')]);
    expect(outs).toHaveLength(2); // the same frame again is not redrawn
    expect(outs[0]).toBe('\r\x1b[2Koverall progress: 0 out of 2 tasks\n\r\x1b[2K1/2: new\n\r\x1b[2K2/2: new\n');
    expect(outs[1]).toBe('\x1b[3A\r\x1b[2Koverall progress: 2 out of 2 tasks\n\r\x1b[2Kverify: Service converged\n\r\x1b[2K\n\x1b[1A');
  });

  it('on a terminal cuts lines to its width (a wrapped line would break the redraw)', () => {
    const outs: string[] = [];
    new ProgressWriter((s) => outs.push(s), true, 10).draw([L('a', 'x'.repeat(30))]);
    expect(outs[0]).toBe(`\r\x1b[2K${'x'.repeat(9)}\n`);
  });

  it('elsewhere prints a line only when its state changed', () => {
    const outs: string[] = [];
    const w = new ProgressWriter((s) => outs.push(s), false);
    w.draw([L('h', 'overall progress: 0 out of 1 tasks'), L('1', '1/1: pending [=>]', 'pending')]);
    w.draw([L('h', 'overall progress: 0 out of 1 tasks'), L('1', '1/1: pending [=>]', 'pending')]);
    w.draw([L('h', 'overall progress: 1 out of 1 tasks'), L('1', '1/1: running [==>]', 'running'), L('v', 'verify: Waiting 5 seconds', 'waiting')]);
    w.draw([L('h', 'overall progress: 1 out of 1 tasks'), L('1', '1/1: running [==>]', 'running'), L('v', 'verify: Waiting 4 seconds', 'waiting')]);
    expect(outs.join('')).toBe('overall progress: 0 out of 1 tasks\n1/1: pending [=>]\noverall progress: 1 out of 1 tasks\n1/1: running [==>]\nverify: Waiting 5 seconds\n');
  });
});

describe('waiting by polling', () => {
  const s = svc({ replicated: { replicas: 1 } });
  function fetcher(snaps: (Snapshot | undefined | Error)[]) {
    let i = 0;
    return async () => {
      const x = snaps[Math.min(i++, snaps.length - 1)];
      if (x instanceof Error) throw x;
      return x;
    };
  }

  it('polls until converged, drawing as it goes', async () => {
    let out = '';
    const r = await waitForConvergence({
      name: 'web', stableMs: 0, intervalMs: 1, tty: false, write: (x) => { out += x; }, hostnames: async () => new Map(),
      fetch: fetcher([{ service: s, tasks: [] }, new Error('leader changed'), { service: s, tasks: [task(1, S.TASK_STARTING)] }, { service: s, tasks: [task(1, S.TASK_RUNNING)] }]),
    });
    expect(r).toBe('converged');
    expect(out.split('\n')).toEqual([
      'overall progress: 0 out of 1 tasks', `1/1: starting  ${bar(S.TASK_STARTING)}`, 'overall progress: 1 out of 1 tasks', `1/1: running   ${FULL}`, 'verify: Service converged', '',
    ]);
  });

  it('throws the reason when the service cannot converge, and when it is removed meanwhile', async () => {
    const base = { name: 'web', intervalMs: 1, tty: false, write: () => undefined, hostnames: async () => new Map<string, string>() };
    await expect(waitForConvergence({ ...base, fetch: fetcher([{ service: svc({}, { condition: R.RESTART_NONE }), tasks: [task(1, S.TASK_FAILED)] }]) }))
      .rejects.toThrow(/^the service cannot converge: task web\.1 failed/);
    await expect(waitForConvergence({ ...base, fetch: fetcher([{ service: s, tasks: [] }, undefined]) })).rejects.toThrow('service web was removed while waiting for it to converge');
  });

  it('gives up on a manager that stays unreachable, but not at the first error', async () => {
    let now = T0;
    let calls = 0;
    const err = new Error('cannot reach shoald');
    const p = waitForConvergence({
      name: 'web', intervalMs: 1, tty: false, write: () => undefined, hostnames: async () => new Map(), unreachableMs: 1000,
      now: () => now,
      fetch: async () => {
        calls++;
        now += 300;
        throw err;
      },
    });
    await expect(p).rejects.toBe(err);
    expect(calls).toBe(4);
  });

  it('stops waiting when aborted (Ctrl-C)', async () => {
    const ac = new AbortController();
    let calls = 0;
    const r = await waitForConvergence({
      name: 'web', intervalMs: 60_000, tty: false, write: () => undefined, hostnames: async () => new Map(), signal: ac.signal,
      fetch: async () => {
        if (++calls === 1) setImmediate(() => ac.abort());
        return { service: s, tasks: [] };
      },
    });
    expect(r).toBe('interrupted');
    expect(calls).toBe(1);
  });

  it('looks hostnames up for a global service\'s new nodes only', async () => {
    const g = svc({ replicated: undefined, global: {} });
    const asked: string[][] = [];
    let out = '';
    await waitForConvergence({
      name: 'web', stableMs: 0, intervalMs: 1, tty: false, write: (x) => { out += x; },
      hostnames: async (ids) => {
        asked.push(ids);
        return new Map(ids.map((id) => [id, `host-${id}`]));
      },
      fetch: fetcher([
        { service: g, counts: { serviceId: 'svc', desired: 2 }, tasks: [task(0, S.TASK_STARTING, { nodeId: 'a' })] },
        { service: g, counts: { serviceId: 'svc', desired: 2 }, tasks: [task(0, S.TASK_RUNNING, { nodeId: 'a' }), task(0, S.TASK_RUNNING, { nodeId: 'b' })] },
      ]),
    });
    expect(asked).toEqual([['a'], ['b']]);
    expect(out).toContain(`host-b: running   ${FULL}`);
  });
});

describe('a rolling update converging (service update, service rollback)', () => {
  const U = api.UpdateState;
  const v1 = { container: { image: 'app:1' } };
  const v2 = { container: { image: 'app:2' } };
  const updating = (state: number, message = '', image = 'app:2'): Service => ({
    id: 'svc',
    spec: { name: 'web', replicated: { replicas: 2 }, taskTemplate: { container: { image } } },
    updateStatus: { state, message, startedAt: T0 },
  });

  it('counts a slot done only once its running task is of the new template, and ends when the managers say completed', () => {
    const c = new Convergence({ update: { rollback: false } });
    const old = [task(1, S.TASK_RUNNING, { spec: v1 }), task(2, S.TASK_RUNNING, { spec: v1 })];
    let f = c.observe(obs(updating(U.UPDATE_UPDATING), old, T0));
    expect(texts(f)[0]).toBe('overall progress: 0 out of 2 tasks');
    const mixed = [task(1, S.TASK_RUNNING, { spec: v2 }), old[1]!];
    f = c.observe(obs(updating(U.UPDATE_UPDATING), mixed, T0 + 500));
    expect(texts(f)[0]).toBe('overall progress: 1 out of 2 tasks');
    const all = [mixed[0]!, task(2, S.TASK_RUNNING, { spec: v2 })];
    // Every task is new and running, but the managers still watch them for the monitor period.
    f = c.observe(obs(updating(U.UPDATE_UPDATING), all, T0 + 60_000));
    expect(f.outcome.kind).toBe('waiting');
    expect(texts(f)[0]).toBe('overall progress: 2 out of 2 tasks');
    f = c.observe(obs(updating(U.UPDATE_COMPLETED, 'update completed'), all, T0 + 60_100));
    expect(f.outcome.kind).toBe('converged');
    expect(texts(f).at(-1)).toBe('verify: Service converged');
  });

  it.each<[string, boolean, number, string, { kind: string; message?: RegExp }]>([
    ['a paused update fails, saying why and what to do', false, U.UPDATE_PAUSED, 'update paused: task t9 failed: task: non-zero exit (3)',
      { kind: 'failed', message: /^update paused: task t9 failed: task: non-zero exit \(3\); see `shoal service ps web`, then fix the spec and update again or go back with `shoal service rollback web`$/ }],
    ['an update the failure action rolled back fails with the cause, even when the rollback ended before the first look', false, U.UPDATE_ROLLBACK_COMPLETED,
      'update rolled back: task t9 was rejected: no such image; rollback completed', { kind: 'failed', message: /^the update was rolled back to the previous spec: task t9 was rejected: no such image$/ }],
    ['a rollback that completed is what `service rollback` waits for', true, U.UPDATE_ROLLBACK_COMPLETED, 'rollback completed', { kind: 'converged' }],
    ['a paused rollback fails', true, U.UPDATE_ROLLBACK_PAUSED, 'rollback paused: task t9 failed', { kind: 'failed', message: /^rollback paused: task t9 failed; see `shoal service ps web`, then fix the spec and update again$/ }],
    ['another update started during a rollback ends the wait', true, U.UPDATE_UPDATING, 'update in progress', { kind: 'failed', message: /^another change of web came in meanwhile \(its update status: updating, update in progress\)/ }],
    ['a rollback under way is waited for', true, U.UPDATE_ROLLBACK_STARTED, 'manually requested rollback', { kind: 'waiting' }],
  ])('%s', (_what, rollback, state, message, want) => {
    const c = new Convergence({ update: { rollback } });
    const f = c.observe(obs(updating(state, message, rollback ? 'app:1' : 'app:2'), [task(1, S.TASK_RUNNING, { spec: v1 }), task(2, S.TASK_RUNNING, { spec: v1 })], T0));
    expect(f.outcome.kind).toBe(want.kind);
    if (want.message) expect((f.outcome as { message: string }).message).toMatch(want.message);
  });

  it('a rollback the failure action started is shown above the progress, which says it rolls back', () => {
    const c = new Convergence({ update: { rollback: false } });
    const f = c.observe(obs(updating(U.UPDATE_ROLLBACK_STARTED, 'update rolled back: task t9 failed', 'app:1'), [task(1, S.TASK_RUNNING, { spec: v1 })], T0));
    expect(texts(f).slice(0, 2)).toEqual(['rollback: update rolled back: task t9 failed', 'overall progress: rolling back update: 1 out of 2 tasks']);
  });
});
