// What the scheduler reads and returns. The caller (the leader's scheduling loop) builds these
// snapshots from the store; nothing here refers to the store, so the core stays pure and testable.

export type NodeRole = 'manager' | 'worker';
export type NodeAvailability = 'active' | 'pause' | 'drain';

export interface Platform {
  /** e.g. "linux"; empty matches any. */
  os: string;
  /** e.g. "x86_64" or "amd64" (aliases are treated as equal); empty matches any. */
  arch: string;
}

export interface Resources {
  nanoCpus: number;
  memoryBytes: number;
}

export interface SchedulerNode {
  id: string;
  hostname: string;
  role: NodeRole;
  availability: NodeAvailability;
  /** The node's status is READY (heartbeats arriving). */
  ready: boolean;
  platform: Platform;
  /** Node labels set by operators (`node update --label-add`): `node.labels.*`. */
  labels: Readonly<Record<string, string>>;
  /** Labels the node's daemon reports about itself: `engine.labels.*`. */
  engineLabels?: Readonly<Record<string, string>>;
  /** Total capacity of the node. */
  resources: Resources;
  /** Sum of the reservations of tasks already assigned to the node (not yet terminal). */
  reserved: Resources;
  /** Tasks already assigned to the node, per service (not yet terminal). */
  tasksByService: ReadonlyMap<string, number>;
  /** All tasks already assigned to the node (not yet terminal). */
  totalTasks: number;
}

export interface PlacementPreference {
  /** A node attribute to spread over, e.g. "node.labels.zone". */
  spread: string;
}

export interface PendingTask {
  id: string;
  serviceId: string;
  /** Swarm syntax: `node.labels.zone==eu`, `node.role!=manager`, ... All must hold. */
  constraints?: readonly string[];
  /** Applied in order: spread over the first, then within each of its groups over the next. */
  preferences?: readonly PlacementPreference[];
  reservations?: Resources;
  /** Tasks of the same service allowed per node; 0 or absent means no limit. */
  maxReplicasPerNode?: number;
  /** Platforms the image supports; absent or empty means any. */
  platforms?: readonly Platform[];
}

export interface ScheduleResult {
  /** Task id -> node id, for every task that found a node. */
  assignments: Map<string, string>;
  /** Task id -> why it stays pending, in words `service ps` can show. */
  unplaced: Map<string, string>;
}
