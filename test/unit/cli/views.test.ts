import { describe, expect, it } from 'vitest';
import type { shoal } from '../../../proto/gen/api.js';
import { api } from '../../../proto/services.js';
import { table } from '../../../cli/shoal/format.js';
import {
  LS_HEADERS, PS_HEADERS, bytesHuman, prettyService, replicasColumn, serviceRows, serviceView, taskError, taskRows, taskView,
} from '../../../cli/shoal/views.js';

type Task = shoal.api.Task.$Properties;
type Service = shoal.api.Service.$Properties;
const S = api.TaskState;
const NOW = Date.parse('2024-05-01T12:00:00Z');

const ID = (c: string) => c.repeat(25);

function task(p: Partial<Task> & { id: string }): Task {
  return {
    serviceId: 'svc1', serviceName: 'web', slot: 1, nodeId: 'n1', desiredState: S.TASK_RUNNING,
    meta: { version: 1, createdAt: NOW - 60_000, updatedAt: NOW - 60_000 },
    spec: { container: { image: 'busybox:1.36@sha256:' + 'a'.repeat(64) } },
    status: { state: S.TASK_RUNNING, timestamp: NOW - 5_000 },
    ...p,
  };
}

function service(p: Partial<Service> & { id: string; spec: shoal.api.IServiceSpec }): Service {
  return { meta: { version: 12, createdAt: NOW - 3_600_000, updatedAt: NOW - 60_000 }, ...p };
}

const hostnames = new Map([['n1', 'host1'], ['n2', 'host2']]);

describe('service ps rows', () => {
  it('orders by slot, then newest first, history rows as " \\_ name"; docker\'s columns', () => {
    const tasks = [
      task({ id: ID('c'), slot: 2, status: { state: S.TASK_RUNNING, timestamp: NOW - 5_000 } }),
      task({ id: ID('a'), slot: 1, desiredState: S.TASK_SHUTDOWN, meta: { version: 3, createdAt: NOW - 120_000 }, status: { state: S.TASK_FAILED, err: 'task: non-zero exit (1)', timestamp: NOW - 100_000 } }),
      task({ id: ID('b'), slot: 1, meta: { version: 5, createdAt: NOW - 90_000 }, status: { state: S.TASK_RUNNING, timestamp: NOW - 80_000 }, nodeId: 'n2' }),
      task({ id: ID('d'), slot: 10, nodeId: '', status: { state: S.TASK_PENDING, timestamp: NOW - 2_000, message: 'pending task scheduling' } }),
    ];
    const rows = taskRows(tasks, { hostnames, now: NOW });
    expect(rows.map((r) => r[1])).toEqual(['web.1', ' \\_ web.1', 'web.2', 'web.10']);
    expect(rows[0]).toEqual([ID('b').slice(0, 12), 'web.1', 'busybox:1.36', 'host2', 'Running', 'Running about a minute ago', '', '']);
    expect(rows[1]).toEqual([ID('a').slice(0, 12), ' \\_ web.1', 'busybox:1.36', 'host1', 'Shutdown', 'Failed about a minute ago', '"task: non-zero exit (1)"', '']);
    // Not yet placed: no node; the generic pending message is not an error.
    expect(rows[3]!.slice(3, 7)).toEqual(['', 'Running', 'Pending 2 seconds ago', '']);
    const t = table(PS_HEADERS, rows).split('\n');
    expect(t[0]).toMatch(/^ID +NAME +IMAGE +NODE +DESIRED STATE +CURRENT STATE +ERROR +PORTS$/);
    expect(t[2]).toContain(' \\_ web.1');
  });

  it('names global tasks <service>.<node ID>, and groups their history per node', () => {
    const tasks = [
      task({ id: ID('e'), slot: 0, nodeId: 'n2' }),
      task({ id: ID('f'), slot: 0, nodeId: 'n1', meta: { createdAt: NOW - 10_000 } }),
      task({ id: ID('g'), slot: 0, nodeId: 'n1', desiredState: S.TASK_SHUTDOWN, meta: { createdAt: NOW - 50_000 }, status: { state: S.TASK_SHUTDOWN, timestamp: NOW - 9_000 } }),
    ];
    expect(taskRows(tasks, { hostnames, now: NOW }).map((r) => [r[1], r[3]])).toEqual([
      ['web.n1', 'host1'], [' \\_ web.n1', 'host1'], ['web.n2', 'host2'],
    ]);
  });

  it('shows a pending task\'s scheduling reason as its ERROR, quoted and cut to 30 characters unless --no-trunc', () => {
    const reason = 'no node satisfies node.labels.zone==eu: 3 nodes checked';
    const t = task({ id: ID('h'), nodeId: '', status: { state: S.TASK_PENDING, message: reason, timestamp: NOW } });
    expect(taskError(t, true)).toBe(`"${reason}"`);
    const cut = taskError(t);
    expect(cut).toHaveLength(30);
    expect(cut).toBe(`"${reason.slice(0, 28)}…`);
    const row = taskRows([t], { hostnames, now: NOW, noTrunc: true })[0]!;
    expect(row[0]).toBe(ID('h'));
    expect(row[2]).toBe('busybox:1.36@sha256:' + 'a'.repeat(64));
    expect(row[6]).toBe(`"${reason}"`);
    // A restart delay is not an error.
    expect(taskError(task({ id: 'x', status: { state: S.TASK_PENDING, message: 'restart delay: starts after 4.2 s' } }))).toBe('');
  });
});

describe('service ls', () => {
  const svcs = [
    service({ id: ID('2'), spec: { name: 'web', replicated: { replicas: 6 }, taskTemplate: { container: { image: 'nginx:1@sha256:' + 'b'.repeat(64) } }, endpointSpec: { ports: [{ targetPort: 80, publishedPort: 8080 }] } } }),
    service({ id: ID('1'), spec: { name: 'agent', global: {}, taskTemplate: { container: { image: 'agent:2' } } } }),
    service({ id: ID('3'), spec: { name: 'batch', replicatedJob: { maxConcurrent: 2, totalCompletions: 10 }, taskTemplate: { container: { image: 'job:1' } } } }),
    service({ id: ID('4'), spec: { name: 'capped', replicated: { replicas: 4 }, taskTemplate: { container: { image: 'x' }, placement: { maxReplicas: 1 } } } }),
    service({ id: ID('5'), spec: { name: 'setup', globalJob: {}, taskTemplate: { container: { image: 'y' } } } }),
  ];
  const counts = [
    { serviceId: ID('2'), desired: 6, running: 3, completed: 0 },
    { serviceId: ID('1'), desired: 3, running: 3, completed: 0 },
    { serviceId: ID('3'), desired: 10, running: 2, completed: 4 },
    { serviceId: ID('4'), desired: 4, running: 3, completed: 0 },
    { serviceId: ID('5'), desired: 3, running: 0, completed: 2 },
  ];

  it('rows by name: ID NAME MODE REPLICAS IMAGE PORTS, replicas running/desired, jobs completed/total', () => {
    expect(serviceRows(svcs, counts)).toEqual([
      [ID('1').slice(0, 12), 'agent', 'global', '3/3', 'agent:2', ''],
      [ID('3').slice(0, 12), 'batch', 'replicated job', '4/10', 'job:1', ''],
      [ID('4').slice(0, 12), 'capped', 'replicated', '3/4 (max 1 per node)', 'x', ''],
      [ID('5').slice(0, 12), 'setup', 'global job', '2/3', 'y', ''],
      [ID('2').slice(0, 12), 'web', 'replicated', '3/6', 'nginx:1', '*:8080->80/tcp'],
    ]);
    expect(table(LS_HEADERS, serviceRows(svcs, counts)).split('\n')[0]).toMatch(/^ID +NAME +MODE +REPLICAS +IMAGE +PORTS$/);
  });

  it('without counts: nothing running yet out of the spec\'s replicas', () => {
    expect(replicasColumn(svcs[0]!, undefined)).toBe('0/6');
  });
});

describe('inspect', () => {
  const s = service({
    id: ID('9'),
    spec: {
      name: 'web', labels: { team: 'a' }, replicated: { replicas: 3 },
      taskTemplate: {
        container: {
          image: 'busybox:1', args: ['sleep', '1d'], env: ['A=1'], mounts: [{ type: api.MountType.MOUNT_TYPE_TMPFS, target: '/tmp', tmpfsOptions: { sizeBytes: 64 * 2 ** 20, mode: 0o1777 } }],
          stopGracePeriodMs: 10_000, init: true, capAdd: [], command: [],
        },
        resources: { reservations: { nanoCpus: 5e8, memoryBytes: 2 ** 28 }, limits: { memoryBytes: 2 ** 30, nanoCpus: 0 } },
        restartPolicy: { condition: api.RestartCondition.RESTART_ON_FAILURE, delayMs: 5000, maxAttempts: 3, windowMs: 0 },
        placement: { constraints: ['node.labels.zone==eu'], preferences: [{ spread: 'node.labels.rack' }], maxReplicas: 0, platforms: [] },
      },
      updateConfig: { parallelism: 2, delayMs: 10_000, failureAction: api.UpdateFailureAction.FAILURE_ACTION_PAUSE, monitorMs: 5000, maxFailureRatio: 0, order: api.UpdateOrder.UPDATE_ORDER_STOP_FIRST },
    },
  });

  it('JSON with docker\'s names and units (durations in ns), empty fields left out', () => {
    const v = serviceView(s);
    expect(v.ID).toBe(ID('9'));
    expect(v.Version).toEqual({ Index: 12 });
    expect(v.CreatedAt).toBe('2024-05-01T11:00:00.000Z');
    expect(v.Spec.Mode).toEqual({ Replicated: { Replicas: 3 } });
    expect(v.Spec.TaskTemplate.ContainerSpec).toEqual({
      Image: 'busybox:1', Args: ['sleep', '1d'], Env: ['A=1'], Init: true, StopGracePeriod: 10_000_000_000,
      Mounts: [{ Type: 'tmpfs', Target: '/tmp', TmpfsOptions: { SizeBytes: 64 * 2 ** 20, Mode: 0o1777 } }],
    });
    expect(v.Spec.TaskTemplate.Resources).toEqual({ Reservations: { NanoCPUs: 5e8, MemoryBytes: 2 ** 28 }, Limits: { MemoryBytes: 2 ** 30 } });
    expect(v.Spec.TaskTemplate.RestartPolicy).toEqual({ Condition: 'on-failure', Delay: 5e9, MaxAttempts: 3 });
    expect(v.Spec.TaskTemplate.Placement).toEqual({ Constraints: ['node.labels.zone==eu'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.rack' } }] });
    expect(v.Spec.UpdateConfig).toEqual({ Parallelism: 2, Delay: 1e10, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' });
    expect(v.Spec.EndpointSpec).toEqual({ Mode: 'vip' });
    expect(serviceView(s, { serviceId: s.id, desired: 3, running: 1, completed: 0 }).ServiceStatus).toEqual({ RunningTasks: 1, DesiredTasks: 3, CompletedTasks: 0 });
    expect(serviceView({ ...s, spec: { ...s.spec, replicated: undefined, globalJob: {} } }).Spec.Mode).toEqual({ GlobalJob: {} });
  });

  it('--pretty: docker\'s layout', () => {
    const lines = prettyService(serviceView(s)).split('\n');
    for (const l of [
      `ID:\t\t${ID('9')}`, 'Name:\t\tweb', ' team=a', 'Service Mode:\tReplicated', ' Replicas:\t3', ' Constraints:\t[node.labels.zone==eu]',
      ' Preferences:\t[{Spread=node.labels.rack}]', 'UpdateConfig:', ' Parallelism:\t2', ' Delay:\t\t10s', ' On failure:\tpause', ' Update order:      stop-first',
      'ContainerSpec:', ' Image:\t\tbusybox:1', ' Args:\t\tsleep 1d', ' Init:\t\ttrue', 'Mounts:', ' Target:\t/tmp', '  Type:\t\ttmpfs', '  Size:\t\t64MiB', '  Mode:\t\t01777',
      'Restart Policy:', ' Condition:\ton-failure', ' Max Attempts:\t3', 'Resources:', ' Reservations:', '  CPU:\t\t0.5', '  Memory:\t256MiB', ' Limits:', '  Memory:\t1GiB',
      'Endpoint Mode:\tvip',
    ]) expect(lines).toContain(l);
    expect(lines.indexOf(' Reservations:')).toBeLessThan(lines.indexOf(' Limits:'));
  });

  it('bytes in docker\'s words', () => {
    expect([100, 1024, 1536, 2 ** 30, 1.5 * 2 ** 30].map(bytesHuman)).toEqual(['100B', '1KiB', '1.5KiB', '1GiB', '1.5GiB']);
  });

  it('task JSON: docker\'s task fields, states as words', () => {
    const v = taskView(task({ id: ID('t'), status: { state: S.TASK_FAILED, err: 'boom', exitCode: 2, containerId: 'c1', timestamp: NOW } }));
    expect(v).toMatchObject({
      ID: ID('t'), Name: 'web.1', ServiceID: 'svc1', Slot: 1, NodeID: 'n1', DesiredState: 'running',
      Status: { State: 'failed', Err: 'boom', Timestamp: '2024-05-01T12:00:00.000Z', ContainerStatus: { ContainerID: 'c1', ExitCode: 2 } },
    });
    expect(v.Spec.ContainerSpec?.Image).toMatch(/^busybox:1\.36@sha256:/);
  });
});
