// The task runner on a real, private containerd with the busybox test image:
// a task runs, logs in the logger's format, stops on desired SHUTDOWN and is
// removed; a failing task fails; a restarted runner adopts what runs and
// removes what is no longer assigned. Needs root, containerd, runc,
// busybox-static and tini (installed with apt-get when missing): without them
// the suite skips, and fails under CI=true.
import { mkdtempSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskRunner } from '../../../worker/agent/tasks.js';
import { readTaskLog } from '../../../worker/agent/logs.js';
import { ContainerdRuntime } from '../../../worker/runtime/containerd/runtime.js';
import { ContainerdClient, M, isNotFound } from '../../../worker/runtime/containerd/client.js';
import { buildBusyboxImage, writeImage } from '../../../deploy/images/busybox.js';
import type { LogLine, Task, TaskStatus } from '../../../proto/services.js';
import { PrivateContainerd, prepareRuntimePrerequisites } from '../runtime/containerd-harness.js';
import { waitFor, waitUntil } from '../../support/wait.js';

const inCI = process.env.CI === 'true';
const problems = prepareRuntimePrerequisites();
if (problems.length && !inCI) console.log(`skipping task runner system tests: ${problems.join('; ')}`);

const IMAGE = 'shoal.local/busybox:1';
const RUNNING = 512, SHUTDOWN = 640, FAILED = 704, STARTING = 448;
const silent = { info: () => {}, warn: () => {}, debug: () => {} };

describe.skipIf(problems.length > 0 && !inCI)('task runner on a private containerd', () => {
  let dir: string;
  let daemon: PrivateContainerd;
  let rt: ContainerdRuntime;
  let client: ContainerdClient;
  const cgroupParent = `/shoal-agent-test-${process.pid}`;
  // runc keeps its state per namespace whatever containerd's --state: our own keeps clear of others.
  const namespace = `shoal-agent-test-${process.pid}`;
  const runners: TaskRunner[] = [];
  const reports: { taskId: string; status: TaskStatus }[] = [];

  const runner = (): TaskRunner => {
    const r = new TaskRunner({
      runtime: rt, nodeId: 'node-1', logDir: join(dir, 'logs'), volumeDir: join(dir, 'volumes'), report: (u) => reports.push(u), logger: silent,
    });
    runners.push(r);
    return r;
  };
  const states = (id: string): number[] => reports.filter((r) => r.taskId === id).map((r) => r.status.state);
  const last = (id: string): TaskStatus | undefined => reports.filter((r) => r.taskId === id).at(-1)?.status;
  const reach = (id: string, state: number, ms = 20_000): Promise<void> =>
    waitUntil(`${id} to reach ${state} (has ${states(id).join(',')})`, () => states(id).includes(state), ms);
  const task = (id: string, cmd: string[], extra: { desired?: number; status?: number } = {}): Task =>
    ({
      id, serviceId: 'svc-1', serviceName: 'web', slot: 1, nodeId: 'node-1',
      desiredState: extra.desired ?? RUNNING,
      status: extra.status ? { state: extra.status, message: '', err: '', exitCode: 0, timestamp: 0, containerId: id } : undefined,
      spec: { container: { image: IMAGE, command: cmd, init: true } },
    }) as unknown as Task;
  /** The container as containerd itself has it (not through the runtime adapter). */
  const containerdHas = async (id: string): Promise<Record<string, string> | undefined> => {
    try {
      return (await client.call(M.containerGet, { id })).container?.labels ?? {};
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  };

  const gone = (id: string): Promise<boolean> =>
    waitFor(`${id} to leave containerd`, async () => ((await containerdHas(id)) === undefined ? true : undefined), 20_000);

  beforeAll(async () => {
    if (problems.length) throw new Error(`prerequisites missing: ${problems.join('; ')}`);
    dir = mkdtempSync(join(tmpdir(), 'shoal-agent-'));
    daemon = new PrivateContainerd(dir);
    await daemon.start();
    rt = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    client = new ContainerdClient(daemon.socket, namespace, 10_000);
    const tarPath = join(dir, 'busybox.tar');
    writeImage(buildBusyboxImage({ name: IMAGE }), tarPath);
    await rt.loadImage(tarPath);
  }, 120_000);

  afterAll(async () => {
    for (const r of runners) await r.stop();
    if (rt) {
      for (const c of await rt.list().catch(() => [])) await rt.remove(c.id).catch(() => undefined);
      rt.close();
    }
    client?.close();
    await daemon?.destroy();
    for (const h of readdirSync('/sys/fs/cgroup')) {
      try {
        rmdirSync(`/sys/fs/cgroup/${h}${cgroupParent}`);
      } catch {
        // not there or not a hierarchy
      }
    }
    try {
      rmdirSync(`/run/containerd/runc/${namespace}`);
    } catch {
      // never made
    }
  }, 60_000);

  it('runs a task: RUNNING, in containerd with its labels, `hi` in its log; SHUTDOWN stops and removes it quickly', async () => {
    const r = runner();
    await r.start();
    const t0 = Date.now();
    r.assign({ full: true, updated: [task('web-1', ['sh', '-c', 'echo hi; sleep 30'])], removed: [] });
    await reach('web-1', RUNNING);
    console.log(`task runner: assignment to RUNNING ${Date.now() - t0} ms`);
    expect(last('web-1')).toMatchObject({ state: RUNNING, containerId: 'web-1', message: 'started' });
    expect(await containerdHas('web-1')).toMatchObject({ 'shoal.task.id': 'web-1', 'shoal.service.name': 'web', 'shoal.node.id': 'node-1' });

    const logPath = join(dir, 'logs', 'web-1.log');
    await waitUntil('hi in the log', () => {
      try {
        return readFileSync(logPath, 'utf8').length > 0;
      } catch {
        return false;
      }
    });
    expect(readFileSync(logPath, 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ stdout hi\n$/);
    const lines: LogLine[] = [];
    await readTaskLog(logPath, 'web-1', 'node-1', { follow: false, tail: -1, since: 0 }, (ls) => lines.push(...ls), new AbortController().signal);
    expect(lines.map((l) => [Buffer.from(l.data).toString(), l.stream, l.taskId])).toEqual([['hi', 0, 'web-1']]);
    expect(Math.abs(lines[0]!.timestamp - Date.now())).toBeLessThan(60_000);

    const t1 = Date.now();
    r.assign({ full: false, updated: [task('web-1', ['sh', '-c', 'echo hi; sleep 30'], { desired: SHUTDOWN })], removed: [] });
    await reach('web-1', SHUTDOWN);
    // init (tini) passes SIGTERM on: no waiting out the 10 s grace period.
    expect(Date.now() - t1).toBeLessThan(5_000);
    await gone('web-1');
    expect(states('web-1')).toEqual([256, 320, 384, 448, RUNNING, SHUTDOWN]);
  });

  it('a task exiting 1 ends FAILED with exit code 1', async () => {
    const r = runner();
    r.assign({ full: true, updated: [task('fail-1', ['sh', '-c', 'exit 1'])], removed: [] });
    await reach('fail-1', FAILED);
    expect(last('fail-1')).toMatchObject({ state: FAILED, exitCode: 1, err: 'task: non-zero exit (1)' });
    await r.stop();
  });

  it('a restarted runner adopts the running container (no second one) and removes an unassigned one', async () => {
    const a = runner();
    a.assign({ full: true, updated: [task('keep-1', ['sleep', '30']), task('drop-1', ['sleep', '30'])], removed: [] });
    await reach('keep-1', RUNNING);
    await reach('drop-1', RUNNING);
    const before = await rt.inspect('keep-1');
    await a.stop();
    expect((await rt.inspect('keep-1'))?.state).toBe('running');

    const b = runner();
    await b.start();
    const n = states('keep-1').length;
    // The managers only heard STARTING (say the RUNNING report was lost with the old session).
    b.assign({ full: true, updated: [task('keep-1', ['sleep', '30'], { status: STARTING })], removed: [] });
    await waitUntil('keep-1 RUNNING again', () => states('keep-1').length > n);
    expect(states('keep-1').slice(n)).toEqual([RUNNING]);
    await gone('drop-1');
    const after = await rt.inspect('keep-1');
    // The same container and process, not a new one.
    expect(after).toMatchObject({ state: 'running', pid: before!.pid, createdAt: before!.createdAt });
    expect((await rt.list()).filter((c) => c.labels['shoal.task.id'] === 'keep-1' || c.id === 'drop-1').map((c) => c.id)).toEqual(['keep-1']);
    b.assign({ full: false, updated: [], removed: ['keep-1'] });
    await gone('keep-1');
  });
});
