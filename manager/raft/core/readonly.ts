// ReadIndex bookkeeping (thesis §6.4): a read waits until a heartbeat round
// confirms we are still leader, then may be served at the recorded commit index.
import type { Message, NodeId } from './types.js';

export enum ReadOnlyOption {
  /** Confirm leadership with a heartbeat quorum for every batch of reads. */
  Safe = 0,
  /** Trust the election timeout as a lease (needs CheckQuorum and bounded clock drift). */
  LeaseBased = 1,
}

interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

function key(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('latin1');
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(readonly option: ReadOnlyOption) {}

  addRequest(index: number, m: Message): void {
    const k = key(m.entries[0]!.data);
    if (this.pending.has(k)) return;
    this.pending.set(k, { req: m, index, acks: new Set() });
    this.queue.push(k);
  }

  recvAck(id: NodeId, context: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(key(context));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Requests up to and including the one with this context are confirmed (heartbeats are ordered). */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const k = key(context);
    const i = this.queue.indexOf(k);
    if (i < 0) return [];
    const done = this.queue.splice(0, i + 1);
    const out: ReadIndexStatus[] = [];
    for (const d of done) {
      const rs = this.pending.get(d);
      if (rs) out.push(rs);
      this.pending.delete(d);
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1]!)!.req.entries[0]!.data;
  }

  pendingCount(): number {
    return this.queue.length;
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
