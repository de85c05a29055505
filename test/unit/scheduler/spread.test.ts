// Choosing among eligible nodes: spread by service then by load, placement preferences, batching,
// determinism, and the words used when tasks stay pending.
import { describe, expect, it } from 'vitest';
import { schedule, type PendingTask, type SchedulerNode } from '../../../manager/scheduler/index.js';
import { CPU, countByNode, node, nodes, tasks } from './helpers.js';

describe('spread over the least-loaded nodes', () => {
  it.each<{ name: string; nodes: SchedulerNode[]; tasks: PendingTask[]; want: Record<string, number> }>([
    { name: '6 tasks on 3 nodes: 2/2/2', nodes: nodes(3), tasks: tasks('web', 6), want: { n1: 2, n2: 2, n3: 2 } },
    { name: '7 tasks on 3 nodes: lowest ids break ties', nodes: nodes(3), tasks: tasks('web', 7), want: { n1: 3, n2: 2, n3: 2 } },
    { name: '2 tasks on 5 nodes', nodes: nodes(5), tasks: tasks('web', 2), want: { n1: 1, n2: 1 } },
    {
      name: 'existing tasks of the service come first: 3+0+0 then 6 new = 3/3/3',
      nodes: [node({ id: 'n1', tasksByService: { web: 3 } }), node({ id: 'n2' }), node({ id: 'n3' })],
      tasks: tasks('web', 6),
      want: { n2: 3, n3: 3 },
    },
    {
      name: 'a node back empty fills up first: 4+4+4+4+0 then 9 new = 5 each',
      nodes: [...['n1', 'n2', 'n3', 'n4'].map((id) => node({ id, tasksByService: { web: 4 } })), node({ id: 'n5' })],
      tasks: tasks('web', 9),
      want: { n1: 1, n2: 1, n3: 1, n4: 1, n5: 5 },
    },
    {
      name: 'then total load: busy nodes get the same service count but later',
      nodes: [node({ id: 'n1', tasksByService: { db: 5 } }), node({ id: 'n2', tasksByService: { db: 1 } }), node({ id: 'n3' })],
      tasks: tasks('web', 4),
      want: { n1: 1, n2: 1, n3: 2 },
    },
    {
      name: 'service spread wins over total load',
      nodes: [node({ id: 'n1', tasksByService: { db: 10 } }), node({ id: 'n2', tasksByService: { web: 1 } })],
      tasks: tasks('web', 1),
      want: { n1: 1 },
    },
    {
      name: 'totalTasks counts tasks of services the caller did not itemise',
      nodes: [node({ id: 'n1', totalTasks: 4 }), node({ id: 'n2', totalTasks: 1 })],
      tasks: tasks('web', 1),
      want: { n2: 1 },
    },
  ])('$name', ({ nodes: ns, tasks: ts, want }) => {
    const r = schedule(ns, ts);
    expect(r.unplaced.size).toBe(0);
    expect(countByNode(r.assignments)).toEqual(want);
  });

  it('balances several services together: each service even, and nodes even overall', () => {
    const ts = ['a', 'b', 'c', 'd', 'e'].flatMap((s) => tasks(s, 3));
    const r = schedule(nodes(5), ts);
    expect(Object.values(countByNode(r.assignments))).toEqual([3, 3, 3, 3, 3]);
    for (const s of ['a', 'b', 'c', 'd', 'e']) {
      const on = [...r.assignments].filter(([t]) => t.startsWith(s + '.')).map(([, n]) => n);
      expect(new Set(on).size).toBe(3);
    }
  });

  it('two spec versions of one service (mid-update) share the per-node count', () => {
    const ts = [...tasks('web', 2, { constraints: [] }), ...tasks('web', 2, { reservations: { nanoCpus: 1, memoryBytes: 0 } })]
      .map((t, i) => ({ ...t, id: `web.${i + 1}` }));
    const r = schedule(nodes(4), ts);
    expect(countByNode(r.assignments)).toEqual({ n1: 1, n2: 1, n3: 1, n4: 1 });
  });

  it('a constrained service fills what it may; other services take the rest of the nodes', () => {
    const ns = [node({ id: 'n1', role: 'manager' }), node({ id: 'n2' }), node({ id: 'n3' })];
    const ts = [...tasks('mgr', 3, { constraints: ['node.role==manager'] }), ...tasks('web', 2)];
    const r = schedule(ns, ts);
    expect(countByNode(r.assignments)).toEqual({ n1: 3, n2: 1, n3: 1 });
  });

  it('10,000 tasks on 1,000 nodes: 10 each', () => {
    const r = schedule(nodes(1000), tasks('web', 10_000));
    const counts = Object.values(countByNode(r.assignments));
    expect(counts.length).toBe(1000);
    expect(new Set(counts)).toEqual(new Set([10]));
  });
});

describe('placement preferences', () => {
  const zoned = (zones: Array<string | undefined>): SchedulerNode[] =>
    zones.map((zone, i) => node({ id: `n${i + 1}`, labels: zone === undefined ? {} : { zone } }));
  const spread = { preferences: [{ spread: 'node.labels.zone' }] };
  const byZone = (ns: SchedulerNode[], assignments: Map<string, string>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const id of assignments.values()) {
      const z = ns.find((n) => n.id === id)!.labels.zone ?? '(none)';
      out[z] = (out[z] ?? 0) + 1;
    }
    return out;
  };

  it('spreads across zones first, whatever their size, then across nodes in a zone', () => {
    const ns = zoned(['a', 'a', 'a', 'b']);
    const r = schedule(ns, tasks('web', 4, spread));
    expect(byZone(ns, r.assignments)).toEqual({ a: 2, b: 2 });
    expect(countByNode(r.assignments)).toEqual({ n1: 1, n2: 1, n4: 2 });
  });

  it('without the preference the same tasks follow the nodes', () => {
    const ns = zoned(['a', 'a', 'a', 'b']);
    expect(byZone(ns, schedule(ns, tasks('web', 4)).assignments)).toEqual({ a: 3, b: 1 });
  });

  it('nodes lacking the label are one more group', () => {
    const ns = zoned(['a', 'a', 'b', undefined, undefined]);
    const r = schedule(ns, tasks('web', 6, spread));
    expect(byZone(ns, r.assignments)).toEqual({ a: 2, b: 2, '(none)': 2 });
  });

  it('counts existing tasks per zone, including on nodes that are full', () => {
    const ns = [
      node({ id: 'n1', labels: { zone: 'a' }, tasksByService: { web: 2 }, reserved: { nanoCpus: 4 * CPU, memoryBytes: 0 } }),
      node({ id: 'n2', labels: { zone: 'a' } }),
      node({ id: 'n3', labels: { zone: 'b' } }),
    ];
    const r = schedule(ns, tasks('web', 4, { ...spread, reservations: { nanoCpus: CPU, memoryBytes: 0 } }));
    // zone a already has 2: b catches up to 2, then one each
    expect(byZone(ns, r.assignments)).toEqual({ a: 1, b: 3 });
  });

  it('a zone that fills up hands over to the others', () => {
    const ns = [node({ id: 'n1', labels: { zone: 'a' } }), ...['n2', 'n3'].map((id) => node({ id, labels: { zone: 'b' } }))];
    const r = schedule(ns, tasks('web', 6, { ...spread, maxReplicasPerNode: 1 }));
    expect(byZone(ns, r.assignments)).toEqual({ a: 1, b: 2 });
    expect([...r.unplaced.values()]).toEqual(Array(3).fill('no suitable node (max replicas per node (1) reached on 3 nodes)'));
  });

  it('nested preferences: zones, then racks within a zone', () => {
    const ns = [
      node({ id: 'n1', labels: { zone: 'a', rack: '1' } }),
      node({ id: 'n2', labels: { zone: 'a', rack: '1' } }),
      node({ id: 'n3', labels: { zone: 'a', rack: '1' } }),
      node({ id: 'n4', labels: { zone: 'a', rack: '2' } }),
      node({ id: 'n5', labels: { zone: 'b', rack: '3' } }),
    ];
    const r = schedule(ns, tasks('web', 4, { preferences: [{ spread: 'node.labels.zone' }, { spread: 'node.labels.rack' }] }));
    // zone a gets 2 (one per rack), zone b gets 2
    expect(countByNode(r.assignments)).toEqual({ n1: 1, n4: 1, n5: 2 });
  });

  it('preferences and constraints together: only zones with eligible nodes count', () => {
    const ns = [
      node({ id: 'n1', labels: { zone: 'a' }, role: 'manager' }),
      node({ id: 'n2', labels: { zone: 'a' } }),
      node({ id: 'n3', labels: { zone: 'b' } }),
      node({ id: 'n4', labels: { zone: 'c' }, role: 'manager' }),
    ];
    const r = schedule(ns, tasks('web', 4, { ...spread, constraints: ['node.role==worker'] }));
    expect(countByNode(r.assignments)).toEqual({ n2: 2, n3: 2 });
  });
});

describe('determinism', () => {
  const ns = Array.from({ length: 40 }, (_, i) =>
    node({ id: `n${String(i).padStart(2, '0')}`, labels: { zone: ['a', 'b', 'c'][i % 3]! }, totalTasks: i % 4 }),
  );
  const ts = [
    ...tasks('web', 50),
    ...tasks('api', 30, { preferences: [{ spread: 'node.labels.zone' }] }),
    ...tasks('db', 7, { constraints: ['node.labels.zone!=c'], reservations: { nanoCpus: 3 * CPU, memoryBytes: 0 } }),
  ];

  it('the same input gives the same output', () => {
    const a = schedule(ns, ts);
    const b = schedule(ns, ts);
    expect([...b.assignments]).toEqual([...a.assignments]);
    expect([...b.unplaced]).toEqual([...a.unplaced]);
  });

  it('the order of nodes does not matter, nor the order of services', () => {
    const a = schedule(ns, ts);
    const b = schedule([...ns].reverse(), [...tasks('db', 7, ts.at(-1)!), ...ts.slice(0, 80)]);
    expect(new Map([...b.assignments].sort())).toEqual(new Map([...a.assignments].sort()));
  });
});

describe('unplaced reasons', () => {
  it.each<{ name: string; nodes: SchedulerNode[]; task: Omit<PendingTask, 'id' | 'serviceId'>; reason: string }>([
    {
      name: 'constraints and resources together',
      nodes: [
        node({ id: 'n1', labels: { zone: 'us' } }),
        node({ id: 'n2', labels: { zone: 'us' } }),
        node({ id: 'n3', labels: { zone: 'us' } }),
        node({ id: 'n4', labels: { zone: 'eu' }, reserved: { nanoCpus: 4 * CPU, memoryBytes: 0 } }),
        node({ id: 'n5', labels: { zone: 'eu' }, reserved: { nanoCpus: 4 * CPU, memoryBytes: 0 } }),
      ],
      task: { constraints: ['node.labels.zone==eu'], reservations: { nanoCpus: CPU, memoryBytes: 0 } },
      reason: 'no suitable node (scheduling constraints not satisfied on 3 nodes; insufficient resources on 2 nodes)',
    },
    {
      name: 'one node of each kind, in pipeline order',
      nodes: [
        node({ id: 'n1', ready: false }),
        node({ id: 'n2', availability: 'drain' }),
        node({ id: 'n3', availability: 'pause' }),
        node({ id: 'n4', role: 'manager' }),
        node({ id: 'n5', reserved: { nanoCpus: 4 * CPU, memoryBytes: 0 } }),
        node({ id: 'n6', platform: { os: 'linux', arch: 'arm64' } }),
        node({ id: 'n7', tasksByService: { web: 1 } }),
      ],
      task: {
        constraints: ['node.role==worker'],
        reservations: { nanoCpus: CPU, memoryBytes: 0 },
        platforms: [{ os: 'linux', arch: 'amd64' }],
        maxReplicasPerNode: 1,
      },
      reason:
        'no suitable node (1 node not ready; 1 node drained; 1 node paused; scheduling constraints not satisfied on 1 node; ' +
        'insufficient resources on 1 node; unsupported platform on 1 node; max replicas per node (1) reached on 1 node)',
    },
    {
      name: 'a node failing several filters counts under the first',
      nodes: [node({ id: 'n1', ready: false, role: 'manager', availability: 'drain' }), node({ id: 'n2', role: 'manager' })],
      task: { constraints: ['node.role==worker'] },
      reason: 'no suitable node (1 node not ready; scheduling constraints not satisfied on 1 node)',
    },
    {
      name: 'resources are checked before platform, as in the pipeline',
      nodes: [node({ id: 'n1', platform: { os: 'linux', arch: 'arm64' }, reserved: { nanoCpus: 4 * CPU, memoryBytes: 0 } })],
      task: { reservations: { nanoCpus: CPU, memoryBytes: 0 }, platforms: [{ os: 'linux', arch: 'amd64' }] },
      reason: 'no suitable node (insufficient resources on 1 node)',
    },
    {
      name: 'several constraints each ruling out some nodes',
      nodes: [node({ id: 'n1', role: 'manager' }), node({ id: 'n2', labels: { zone: 'eu' } }), node({ id: 'n3' })],
      task: { constraints: ['node.labels.zone==eu', 'node.role==manager'] },
      reason:
        'no node satisfies node.labels.zone==eu and node.role==manager: 3 nodes checked ' +
        '(node.labels.zone==eu ruled out 2, node.role==manager ruled out 1)',
    },
    {
      name: 'one node checked',
      nodes: [node({ id: 'n1' })],
      task: { constraints: ['node.hostname==db1'] },
      reason: 'no node satisfies node.hostname==db1: 1 node checked',
    },
    {
      name: 'an empty cluster',
      nodes: [],
      task: {},
      reason: 'no suitable node (no nodes in the cluster)',
    },
    {
      name: 'a constraint that does not parse is the reason, not an exception',
      nodes: [node({ id: 'n1' })],
      task: { constraints: ['node.labels.zone=eu'] },
      reason: 'invalid constraint "node.labels.zone=eu": expected <key>==<value> or <key>!=<value> (the operator must be == or !=)',
    },
    {
      name: 'a bad preference too',
      nodes: [node({ id: 'n1' })],
      task: { preferences: [{ spread: 'zone' }] },
      reason:
        'invalid placement preference "spread=zone": unknown key "zone": expected node.id, node.hostname, node.role, ' +
        'node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>',
    },
  ])('$name', ({ nodes: ns, task, reason }) => {
    const r = schedule(ns, tasks('web', 2, task));
    expect(r.assignments.size).toBe(0);
    expect([...r.unplaced.values()]).toEqual([reason, reason]);
  });

  it('a bad spec of one service does not hold up the others', () => {
    const r = schedule(nodes(2), [...tasks('bad', 1, { constraints: ['x'] }), ...tasks('good', 2)]);
    expect(r.unplaced.size).toBe(1);
    expect(r.assignments.size).toBe(2);
  });
});
