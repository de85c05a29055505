// Synthetic clusters and pending tasks for the scheduler bench: seeded, so every run schedules the
// same thing, with the mix a real cluster has (a few managers, drained/paused/down nodes, zones,
// existing load, constraints, reservations, spread preferences, max replicas per node).

import type { PendingTask, SchedulerNode } from '../../../manager/scheduler/index.js';
import { mulberry32 } from '../../support/random.js';

export const ZONES = ['eu-1', 'eu-2', 'us-1'];
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const CPU = 1e9;
/** Replicas per generated service: 10,000 tasks are 200 services, 100,000 are 2,000. */
export const REPLICAS_PER_SERVICE = 50;

export const rng = mulberry32;

export function makeNodes(count: number, seed = 1): SchedulerNode[] {
  const r = rng(seed);
  const nodes: SchedulerNode[] = [];
  const pad = String(count).length;
  for (let i = 0; i < count; i++) {
    const labels: Record<string, string> = {};
    if (r() >= 0.05) labels.zone = ZONES[i % ZONES.length]!; // some nodes were never labelled
    if (r() < 0.3) labels.disk = 'ssd';
    const existing = Math.floor(r() * 5);
    const tasksByService = new Map<string, number>();
    for (let k = 0; k < existing; k++) {
      const svc = `existing-${Math.floor(r() * 20)}`;
      tasksByService.set(svc, (tasksByService.get(svc) ?? 0) + 1);
    }
    const x = r();
    nodes.push({
      id: `node-${String(i).padStart(pad, '0')}`,
      hostname: `host-${i}`,
      role: i < Math.max(3, Math.ceil(count / 100)) ? 'manager' : 'worker',
      availability: x < 0.02 ? 'drain' : x < 0.03 ? 'pause' : 'active',
      ready: r() >= 0.02,
      platform: r() < 0.05 ? { os: 'linux', arch: 'aarch64' } : { os: 'linux', arch: 'x86_64' },
      labels,
      resources: { nanoCpus: 8 * CPU, memoryBytes: 16 * GIB },
      reserved: { nanoCpus: existing * 0.25 * CPU, memoryBytes: existing * 256 * MIB },
      tasksByService,
      totalTasks: existing,
    });
  }
  return nodes;
}

export type ServiceKind = 'plain' | 'worker-only' | 'ssd' | 'spread' | 'max2' | 'platform' | 'spread-not-us';

/** The share of each kind, by service index modulo 10. */
const KINDS: ServiceKind[] = ['plain', 'plain', 'plain', 'plain', 'worker-only', 'ssd', 'spread', 'max2', 'platform', 'spread-not-us'];

export interface Workload {
  tasks: PendingTask[];
  kindOf: Map<string, ServiceKind | 'impossible'>;
}

export function makeTasks(count: number): Workload {
  const tasks: PendingTask[] = [];
  const kindOf = new Map<string, ServiceKind | 'impossible'>();
  // One small service nobody can run, so the bench also walks the unplaced path.
  const impossible = 5;
  kindOf.set('svc-impossible', 'impossible');
  for (let i = 0; i < impossible; i++) {
    tasks.push({ id: `svc-impossible.${i}`, serviceId: 'svc-impossible', constraints: ['node.labels.zone==mars'] });
  }
  for (let s = 0; tasks.length < count; s++) {
    const serviceId = `svc-${s}`;
    const kind = KINDS[s % KINDS.length]!;
    kindOf.set(serviceId, kind);
    const n = Math.min(REPLICAS_PER_SERVICE, count - tasks.length);
    for (let k = 0; k < n; k++) tasks.push(taskOf(kind, serviceId, k));
  }
  return { tasks, kindOf };
}

// Each task gets its own arrays, as tasks decoded from the store would: grouping must compare
// contents, not identities.
function taskOf(kind: ServiceKind, serviceId: string, slot: number): PendingTask {
  const id = `${serviceId}.${slot}`;
  switch (kind) {
    case 'plain':
      return { id, serviceId };
    case 'worker-only':
      return { id, serviceId, constraints: ['node.role==worker'] };
    case 'ssd':
      return {
        id,
        serviceId,
        constraints: ['node.labels.disk==ssd'],
        reservations: { nanoCpus: 0.5 * CPU, memoryBytes: 512 * MIB },
      };
    case 'spread':
      return {
        id,
        serviceId,
        preferences: [{ spread: 'node.labels.zone' }],
        reservations: { nanoCpus: 0.1 * CPU, memoryBytes: 128 * MIB },
      };
    case 'max2':
      return { id, serviceId, maxReplicasPerNode: 2, reservations: { nanoCpus: 0.25 * CPU, memoryBytes: 256 * MIB } };
    case 'platform':
      return {
        id,
        serviceId,
        constraints: ['node.platform.os==linux'],
        platforms: [{ os: 'linux', arch: 'amd64' }],
      };
    case 'spread-not-us':
      return { id, serviceId, constraints: ['node.labels.zone!=us-1'], preferences: [{ spread: 'node.labels.zone' }] };
  }
}
