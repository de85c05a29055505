// Shared fixtures for store unit tests: two tables with indexes, and a fake
// "raft" that appends each proposal to a log and applies it to every member.
import { defineTable, jsonCodec, Store, type StoreObject } from '../../../manager/store/index.js';

export interface Node extends StoreObject {
  hostname: string;
  role: string;
  labels?: string[];
}

export interface Task extends StoreObject {
  serviceId: string;
  nodeId?: string;
  state: string;
}

export interface Counter extends StoreObject {
  n: number;
}

export const nodes = defineTable<Node>({
  name: 'nodes',
  codec: jsonCodec<Node>(),
  indexes: [
    { name: 'hostname', unique: true, key: (n) => n.hostname },
    { name: 'role', key: (n) => n.role },
    { name: 'label', key: (n) => n.labels },
  ],
});

export const tasks = defineTable<Task>({
  name: 'tasks',
  codec: jsonCodec<Task>(),
  indexes: [
    { name: 'service', key: (t) => t.serviceId },
    { name: 'node', key: (t) => t.nodeId },
  ],
});

export const counters = defineTable<Counter>({ name: 'counters', codec: jsonCodec<Counter>() });

export const allTables = [nodes, tasks, counters];

export class NotLeader extends Error {
  readonly code = 'NOT_LEADER';
  readonly details = { leader: 2, leaderAddr: '10.0.0.2:4377' };
}

/**
 * Stands in for RaftNode. Sync mode applies at once (indexes 2, 3, ...; 1 is
 * raft's bootstrap entry). Async mode queues proposals and applies them in a
 * later macrotask, like a real round trip, so transactions can interleave.
 */
export class FakeRaft {
  index = 1;
  leader = true;
  readonly members: Store[] = [];
  readonly log: Uint8Array[] = [];
  private queue: Array<{ data: Uint8Array; resolve: (v: unknown) => void }> = [];
  private scheduled = false;

  constructor(private readonly mode: 'sync' | 'async' = 'sync') {}

  /** The proposing member first; others are followers applying the same log. */
  attach(...stores: Store[]): this {
    for (const s of stores) {
      this.members.push(s);
      s.setRaft(this);
    }
    return this;
  }

  propose(data: Uint8Array): Promise<unknown> {
    if (!this.leader) return Promise.reject(new NotLeader('not the leader; send this request to the leader, node 2 at 10.0.0.2:4377'));
    if (this.mode === 'sync') return Promise.resolve(this.applyOne(data));
    return new Promise((resolve) => {
      this.queue.push({ data, resolve });
      if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.flush(), 0);
      }
    });
  }

  readBarrier(): Promise<void> {
    return Promise.resolve();
  }

  private flush(): void {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.resolve(this.applyOne(p.data));
  }

  private applyOne(data: Uint8Array): unknown {
    const i = ++this.index;
    this.log.push(data);
    let first: unknown;
    this.members.forEach((s, k) => {
      const r = s.apply(i, data);
      if (k === 0) first = r;
    });
    return first;
  }
}

export function newStore(opts: { clock?: () => number; watchBufferSize?: number } = {}): Store {
  let t = 1_000;
  return new Store({ tables: allTables, clock: opts.clock ?? (() => (t += 1000)), watchBufferSize: opts.watchBufferSize });
}

export function node(id: string, hostname: string, extra: Partial<Node> = {}): Omit<Node, 'meta'> {
  return { id, hostname, role: 'worker', ...extra };
}
