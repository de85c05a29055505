// TaskSpec -> runtime ContainerSpec: table-driven over every mapped field,
// mounts and volumes, defaults left to the runtime, and specs refused.
import { describe, expect, it } from 'vitest';
import { TaskSpecError, toContainerSpec } from '../../../worker/agent/containerspec.js';
import type { Task } from '../../../proto/services.js';
import type { ContainerSpec } from '../../../worker/runtime/runtime.js';

const OPTS = { nodeId: 'node-1', logDir: '/var/log/shoal/tasks', volumeDir: '/var/lib/shoal/volumes' };
const ID = 'abcdefghijklmnopqrstuvwxy';

type Spec = NonNullable<Task['spec']>;
type Container = NonNullable<Spec['container']>;

const task = (container: Partial<Container>, spec: Partial<Spec> = {}): Task =>
  ({
    id: ID,
    serviceId: 'svc-1',
    serviceName: 'web',
    slot: 3,
    desiredState: 512,
    spec: { container: { image: 'shoal.local/busybox:1', ...container }, ...spec },
  }) as unknown as Task;

const LABELS = { 'shoal.task.id': ID, 'shoal.service.id': 'svc-1', 'shoal.service.name': 'web', 'shoal.slot': '3', 'shoal.node.id': 'node-1' };
const BASE: ContainerSpec = { id: ID, image: 'shoal.local/busybox:1', hostname: 'abcdefghijkl', labels: LABELS, logPath: `/var/log/shoal/tasks/${ID}.log` };

describe('toContainerSpec', () => {
  const cases: { name: string; container?: Partial<Container>; spec?: Partial<Spec>; want: Partial<ContainerSpec>; dirs?: string[] }[] = [
    { name: 'minimal: defaults left to the runtime', want: {} },
    {
      name: 'empty proto values mean unset',
      container: { command: [], args: [], env: [], dir: '', user: '', hostname: '', stopSignal: '', capAdd: [], capDrop: [], mounts: [], labels: {} },
      want: {},
    },
    { name: 'command, args, env', container: { command: ['sh', '-c'], args: ['echo hi'], env: ['A=1', 'B=2'] }, want: { command: ['sh', '-c'], args: ['echo hi'], env: ['A=1', 'B=2'] } },
    { name: 'dir -> workdir, user, hostname', container: { dir: '/srv', user: 'nobody', hostname: 'web-3' }, want: { workdir: '/srv', user: 'nobody', hostname: 'web-3' } },
    { name: 'stop signal and grace', container: { stopSignal: 'SIGINT', stopGracePeriodMs: 1500 }, want: { stopSignal: 'SIGINT', stopGraceMs: 1500 } },
    { name: 'grace of 0 is kept', container: { stopGracePeriodMs: 0 }, want: { stopGraceMs: 0 } },
    { name: 'read-only rootfs, init, capabilities', container: { readOnly: true, init: true, capAdd: ['NET_ADMIN'], capDrop: ['ALL'] }, want: { readOnlyRootfs: true, init: true, capAdd: ['NET_ADMIN'], capDrop: ['ALL'] } },
    {
      name: 'limits',
      spec: { resources: { limits: { nanoCpus: 1_500_000_000, memoryBytes: 64 << 20 }, reservations: { nanoCpus: 1, memoryBytes: 1 } } },
      want: { resources: { cpuLimitNano: 1_500_000_000, memoryLimitBytes: 64 << 20 } },
    },
    { name: 'zero limits mean none', spec: { resources: { limits: { nanoCpus: 0, memoryBytes: 0 } } }, want: {} },
    {
      name: 'service labels, ours win',
      container: { labels: { team: 'a', 'shoal.task.id': 'forged' } },
      want: { labels: { team: 'a', ...LABELS } },
    },
    {
      name: 'bind and tmpfs mounts',
      container: {
        mounts: [
          { type: 1, source: '/etc/hosts', target: '/etc/hosts', readOnly: true },
          { type: 1, source: '/data', target: '/data' },
          { type: 2, target: '/run', tmpfsOptions: { sizeBytes: 1 << 20, mode: 0o1777 } },
          { type: 2, target: '/tmp' },
        ],
      },
      want: {
        mounts: [
          { type: 'bind', source: '/etc/hosts', target: '/etc/hosts', readOnly: true },
          { type: 'bind', source: '/data', target: '/data' },
          { type: 'tmpfs', target: '/run', sizeBytes: 1 << 20, mode: 0o1777 },
          { type: 'tmpfs', target: '/tmp' },
        ],
      },
    },
    {
      name: 'named and anonymous volumes are bind mounts of the volume directory',
      container: {
        mounts: [
          { type: 0, source: 'db-data', target: '/var/lib/db' },
          { type: 1, source: '/x', target: '/x' },
          { type: 0, source: '', target: '/cache', readOnly: true },
        ],
      },
      want: {
        mounts: [
          { type: 'bind', source: '/var/lib/shoal/volumes/db-data', target: '/var/lib/db' },
          { type: 'bind', source: '/x', target: '/x' },
          { type: 'bind', source: `/var/lib/shoal/volumes/${ID}-2`, target: '/cache', readOnly: true },
        ],
      },
      dirs: ['/var/lib/shoal/volumes/db-data', `/var/lib/shoal/volumes/${ID}-2`],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = toContainerSpec(task(c.container ?? {}, c.spec), OPTS);
      expect(got.spec).toEqual({ ...BASE, ...c.want });
      expect(got.volumeDirs).toEqual(c.dirs ?? []);
    });
  }

  const refused: { name: string; container: Partial<Container>; err: RegExp }[] = [
    { name: 'no image', container: { image: '' }, err: /no container image/ },
    { name: 'volume name leaving the volume dir', container: { mounts: [{ type: 0, source: '../etc', target: '/x' }] }, err: /invalid volume name "\.\.\/etc"/ },
    { name: 'volume name with a slash', container: { mounts: [{ type: 0, source: 'a/b', target: '/x' }] }, err: /invalid volume name/ },
    { name: 'relative bind source', container: { mounts: [{ type: 1, source: 'data', target: '/x' }] }, err: /bind source "data"/ },
    { name: 'relative target', container: { mounts: [{ type: 2, target: 'tmp' }] }, err: /target "tmp"/ },
    { name: 'unknown mount type', container: { mounts: [{ type: 9 as never, target: '/x' }] }, err: /unknown mount type 9/ },
  ];
  for (const c of refused) {
    it(`refuses: ${c.name}`, () => {
      const run = (): unknown => toContainerSpec(task(c.container), OPTS);
      expect(run).toThrow(TaskSpecError);
      expect(run).toThrow(c.err);
    });
  }
});
