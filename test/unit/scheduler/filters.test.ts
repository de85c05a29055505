// Each filter of the pipeline on its own: which nodes may take a task, and what is said when none may.
import { describe, expect, it } from 'vitest';
import { schedule, type PendingTask, type SchedulerNode } from '../../../manager/scheduler/index.js';
import { CPU, GIB, countByNode, node, tasks } from './helpers.js';

interface Case {
  name: string;
  nodes: SchedulerNode[];
  tasks: PendingTask[];
  /** Node ids that must have received the tasks (all of them, between them). */
  placedOn?: string[];
  /** Exact reason for every task when none can be placed. */
  reason?: string;
}

const one = (spec: Omit<PendingTask, 'id' | 'serviceId'> = {}): PendingTask[] => tasks('web', 1, spec);

const cases: Case[] = [
  {
    name: 'ready: a node that is not ready gets nothing',
    nodes: [node({ id: 'n1', ready: false }), node({ id: 'n2' })],
    tasks: tasks('web', 3),
    placedOn: ['n2'],
  },
  {
    name: 'ready: no ready node at all',
    nodes: [node({ id: 'n1', ready: false }), node({ id: 'n2', ready: false })],
    tasks: one(),
    reason: 'no suitable node (2 nodes not ready)',
  },
  {
    name: 'availability: drained and paused nodes take no new tasks',
    nodes: [node({ id: 'n1', availability: 'drain' }), node({ id: 'n2', availability: 'pause' }), node({ id: 'n3' })],
    tasks: tasks('web', 4),
    placedOn: ['n3'],
  },
  {
    name: 'availability: only drained and paused nodes',
    nodes: [node({ id: 'n1', availability: 'drain' }), node({ id: 'n2', availability: 'pause' })],
    tasks: one(),
    reason: 'no suitable node (1 node drained; 1 node paused)',
  },
  {
    name: 'constraints: node.role==manager',
    nodes: [node({ id: 'n1', role: 'manager' }), node({ id: 'n2' }), node({ id: 'n3' })],
    tasks: tasks('web', 2, { constraints: ['node.role==manager'] }),
    placedOn: ['n1'],
  },
  {
    name: 'constraints: node.role!=manager',
    nodes: [node({ id: 'n1', role: 'manager' }), node({ id: 'n2' }), node({ id: 'n3' })],
    tasks: tasks('web', 4, { constraints: ['node.role!=manager'] }),
    placedOn: ['n2', 'n3'],
  },
  {
    name: 'constraints: label ==',
    nodes: [node({ id: 'n1', labels: { zone: 'eu' } }), node({ id: 'n2', labels: { zone: 'us' } }), node({ id: 'n3' })],
    tasks: tasks('web', 2, { constraints: ['node.labels.zone==eu'] }),
    placedOn: ['n1'],
  },
  {
    name: 'constraints: label != (a node without the label qualifies)',
    nodes: [node({ id: 'n1', labels: { zone: 'eu' } }), node({ id: 'n2', labels: { zone: 'us' } }), node({ id: 'n3' })],
    tasks: tasks('web', 4, { constraints: ['node.labels.zone!=eu'] }),
    placedOn: ['n2', 'n3'],
  },
  {
    name: 'constraints: id and hostname together',
    nodes: [node({ id: 'n1' }), node({ id: 'n2' }), node({ id: 'n3' })],
    tasks: tasks('web', 2, { constraints: ['node.id!=n1', 'node.hostname==host2'] }),
    placedOn: ['n2'],
  },
  {
    name: 'constraints: platform keys',
    nodes: [node({ id: 'n1', platform: { os: 'linux', arch: 'aarch64' } }), node({ id: 'n2' })],
    tasks: tasks('web', 2, { constraints: ['node.platform.os==linux', 'node.platform.arch==arm64'] }),
    placedOn: ['n1'],
  },
  {
    name: 'constraints: engine labels',
    nodes: [node({ id: 'n1', engineLabels: { gpu: 'yes' } }), node({ id: 'n2' })],
    tasks: tasks('web', 2, { constraints: ['engine.labels.gpu==yes'] }),
    placedOn: ['n1'],
  },
  {
    name: 'constraints: no node satisfies one constraint',
    nodes: [node({ id: 'n1', labels: { zone: 'us' } }), node({ id: 'n2' }), node({ id: 'n3' })],
    tasks: one({ constraints: ['node.labels.zone==eu'] }),
    reason: 'no node satisfies node.labels.zone==eu: 3 nodes checked',
  },
  {
    name: 'resources: a node without room is skipped',
    nodes: [
      node({ id: 'n1', reserved: { nanoCpus: 3.5 * CPU, memoryBytes: 0 } }),
      node({ id: 'n2', reserved: { nanoCpus: 0, memoryBytes: 7.5 * GIB } }),
      node({ id: 'n3' }),
    ],
    tasks: one({ reservations: { nanoCpus: 1 * CPU, memoryBytes: 1 * GIB } }),
    placedOn: ['n3'],
  },
  {
    name: 'resources: exhausted as tasks are placed (4 CPUs = four 1-CPU tasks)',
    nodes: [node({ id: 'n1' })],
    tasks: tasks('web', 6, { reservations: { nanoCpus: 1 * CPU, memoryBytes: 0 } }),
    placedOn: ['n1'],
    // checked below: 4 placed, 2 unplaced
  },
  {
    name: 'resources: too big for any node',
    nodes: [node({ id: 'n1' }), node({ id: 'n2' })],
    tasks: one({ reservations: { nanoCpus: 0, memoryBytes: 64 * GIB } }),
    reason: 'no suitable node (insufficient resources on 2 nodes)',
  },
  {
    name: 'resources: no reservation fits even an over-committed node',
    nodes: [node({ id: 'n1', reserved: { nanoCpus: 5 * CPU, memoryBytes: 9 * GIB } })],
    tasks: tasks('web', 2),
    placedOn: ['n1'],
  },
  {
    name: 'platform: the image supports only some platforms',
    nodes: [
      node({ id: 'n1', platform: { os: 'linux', arch: 'aarch64' } }),
      node({ id: 'n2', platform: { os: 'windows', arch: 'x86_64' } }),
      node({ id: 'n3' }),
    ],
    tasks: tasks('web', 2, { platforms: [{ os: 'linux', arch: 'amd64' }] }),
    placedOn: ['n3'],
  },
  {
    name: 'platform: multi-arch image',
    nodes: [node({ id: 'n1', platform: { os: 'linux', arch: 'aarch64' } }), node({ id: 'n2', platform: { os: 'linux', arch: 's390x' } })],
    tasks: tasks('web', 2, { platforms: [{ os: 'linux', arch: 'amd64' }, { os: 'linux', arch: 'arm64' }] }),
    placedOn: ['n1'],
  },
  {
    name: 'platform: an empty os or arch matches anything',
    nodes: [node({ id: 'n1', platform: { os: 'linux', arch: '' } })],
    tasks: one({ platforms: [{ os: 'linux', arch: 'arm64' }, { os: '', arch: 'riscv64' }] }),
    placedOn: ['n1'],
  },
  {
    name: 'platform: none supported',
    nodes: [node({ id: 'n1' }), node({ id: 'n2' })],
    tasks: one({ platforms: [{ os: 'windows', arch: 'amd64' }] }),
    reason: 'no suitable node (unsupported platform on 2 nodes)',
  },
  {
    name: 'max replicas per node: 2 on 2 nodes takes 4 of 5',
    nodes: [node({ id: 'n1' }), node({ id: 'n2' })],
    tasks: tasks('web', 5, { maxReplicasPerNode: 2 }),
    placedOn: ['n1', 'n2'],
  },
  {
    name: 'max replicas per node counts tasks already there',
    nodes: [node({ id: 'n1', tasksByService: { web: 1 } }), node({ id: 'n2' })],
    tasks: tasks('web', 3, { maxReplicasPerNode: 1 }),
    placedOn: ['n2'],
  },
  {
    name: 'max replicas per node: all full',
    nodes: [node({ id: 'n1', tasksByService: { web: 2 } }), node({ id: 'n2', tasksByService: { web: 2 } })],
    tasks: one({ maxReplicasPerNode: 2 }),
    reason: 'no suitable node (max replicas per node (2) reached on 2 nodes)',
  },
];

describe('filters', () => {
  it.each(cases)('$name', (c) => {
    const r = schedule(c.nodes, c.tasks);
    expect(r.assignments.size + r.unplaced.size).toBe(c.tasks.length);
    if (c.placedOn !== undefined) {
      expect(r.assignments.size).toBeGreaterThan(0);
      for (const n of r.assignments.values()) expect(c.placedOn).toContain(n);
    }
    if (c.reason !== undefined) {
      expect(r.assignments.size).toBe(0);
      for (const why of r.unplaced.values()) expect(why).toBe(c.reason);
    }
  });

  it('fills a node exactly to its resources, then says why the rest wait', () => {
    const r = schedule([node({ id: 'n1' })], tasks('web', 6, { reservations: { nanoCpus: 1 * CPU, memoryBytes: 0 } }));
    expect(countByNode(r.assignments)).toEqual({ n1: 4 });
    expect([...r.unplaced.values()]).toEqual(Array(2).fill('no suitable node (insufficient resources on 1 node)'));
  });

  it('stops at max replicas per node and says so', () => {
    const r = schedule([node({ id: 'n1' }), node({ id: 'n2' })], tasks('web', 5, { maxReplicasPerNode: 2 }));
    expect(countByNode(r.assignments)).toEqual({ n1: 2, n2: 2 });
    expect([...r.unplaced.values()]).toEqual(['no suitable node (max replicas per node (2) reached on 2 nodes)']);
  });

  it('does not count reservations of other resources against a zero reservation', () => {
    const r = schedule(
      [node({ id: 'n1', resources: { nanoCpus: 1 * CPU, memoryBytes: 1 * GIB } })],
      [...tasks('big', 1, { reservations: { nanoCpus: 1 * CPU, memoryBytes: 1 * GIB } }), ...tasks('small', 3)],
    );
    expect(r.assignments.size).toBe(4);
  });

  it('leaves its inputs untouched', () => {
    const ns = [node({ id: 'n1', tasksByService: { web: 1 } })];
    const before = JSON.stringify(ns, (_k, v: unknown) => (v instanceof Map ? [...v] : v));
    schedule(ns, tasks('web', 3, { reservations: { nanoCpus: CPU, memoryBytes: GIB } }));
    expect(JSON.stringify(ns, (_k, v: unknown) => (v instanceof Map ? [...v] : v))).toBe(before);
  });
});
