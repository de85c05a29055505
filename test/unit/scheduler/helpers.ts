// Builders for scheduler tests: a node or task with sensible defaults and only what a case changes.
import type { PendingTask, SchedulerNode } from '../../../manager/scheduler/index.js';

export const CPU = 1e9;
export const GIB = 1024 ** 3;

export type NodeInit = Partial<Omit<SchedulerNode, 'tasksByService'>> & {
  id: string;
  tasksByService?: Record<string, number>;
};

/** A ready, active linux/x86_64 worker with 4 CPUs and 8 GiB, empty unless told otherwise. */
export function node(init: NodeInit): SchedulerNode {
  const byService = new Map(Object.entries(init.tasksByService ?? {}));
  const existing = [...byService.values()].reduce((a, b) => a + b, 0);
  return {
    hostname: init.id.replace(/^n/, 'host'),
    role: 'worker',
    availability: 'active',
    ready: true,
    platform: { os: 'linux', arch: 'x86_64' },
    labels: {},
    resources: { nanoCpus: 4 * CPU, memoryBytes: 8 * GIB },
    reserved: { nanoCpus: 0, memoryBytes: 0 },
    totalTasks: existing,
    ...init,
    tasksByService: byService,
  };
}

export function nodes(count: number, init: Partial<NodeInit> = {}): SchedulerNode[] {
  return Array.from({ length: count }, (_, i) => node({ ...init, id: `n${i + 1}` }));
}

/** `count` tasks of one service with the same placement: ids "<service>.1", "<service>.2", ... */
export function tasks(serviceId: string, count: number, spec: Omit<PendingTask, 'id' | 'serviceId'> = {}): PendingTask[] {
  return Array.from({ length: count }, (_, i) => ({ ...spec, id: `${serviceId}.${i + 1}`, serviceId }));
}

/** Tasks per node id from a result's assignments (nodes with none are absent). */
export function countByNode(assignments: Map<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of assignments.values()) out[n] = (out[n] ?? 0) + 1;
  return out;
}
