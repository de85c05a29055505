// The scheduler's view of the cluster's nodes, built from the store: what
// each node offers and what its live tasks already hold.
import { api } from '../../proto/services.js';
import type { SchedulerNode } from '../scheduler/index.js';
import type { NodeObject, TaskObject } from '../cluster/tables.js';
import { holdsNode } from './states.js';

const AVAILABILITY = ['active', 'pause', 'drain'] as const;

export function toSchedulerNodes(nodes: readonly NodeObject[], tasks: readonly TaskObject[]): SchedulerNode[] {
  const load = new Map<string, { cpu: number; mem: number; total: number; bySvc: Map<string, number> }>();
  for (const t of tasks) {
    if (!holdsNode(t)) continue;
    let l = load.get(t.nodeId);
    if (!l) load.set(t.nodeId, (l = { cpu: 0, mem: 0, total: 0, bySvc: new Map() }));
    const r = t.spec?.resources?.reservations;
    l.cpu += Number(r?.nanoCpus ?? 0);
    l.mem += Number(r?.memoryBytes ?? 0);
    l.total++;
    l.bySvc.set(t.serviceId, (l.bySvc.get(t.serviceId) ?? 0) + 1);
  }
  return nodes.map((n) => {
    const l = load.get(n.id);
    return {
      id: n.id,
      hostname: n.description?.hostname ?? '',
      role: n.role === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker',
      availability: AVAILABILITY[Number(n.spec?.availability ?? 0)] ?? 'active',
      ready: n.status?.state === api.NodeState.NODE_READY,
      platform: { os: n.description?.platform?.os ?? '', arch: n.description?.platform?.architecture ?? '' },
      labels: n.spec?.labels ?? {},
      engineLabels: n.description?.engineLabels ?? {},
      resources: { nanoCpus: Number(n.description?.resources?.nanoCpus ?? 0), memoryBytes: Number(n.description?.resources?.memoryBytes ?? 0) },
      reserved: { nanoCpus: l?.cpu ?? 0, memoryBytes: l?.mem ?? 0 },
      tasksByService: l?.bySvc ?? new Map(),
      totalTasks: l?.total ?? 0,
    } satisfies SchedulerNode;
  });
}
