// A lean raftkv client: one channel per server, follows the leader on redirects.
import * as grpc from '@grpc/grpc-js';
import { encodePut, kvService, LEADER_META } from './protocol.js';

type Unary = (path: string, req: Buffer) => Promise<Buffer>;

function channelTo(addr: string): { call: Unary; close: () => void } {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure(), {
    'grpc.enable_retries': 0,
  });
  const identity = (b: Buffer) => b;
  const call: Unary = (path, req) => new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, req, (err, res) => (err ? reject(err) : resolve(res!)));
  });
  return { call, close: () => client.close() };
}

export class KvClient {
  private readonly channels = new Map<string, ReturnType<typeof channelTo>>();
  private target: string;

  constructor(private readonly addrs: string[], initial?: string) {
    this.target = initial ?? addrs[0]!;
  }

  private ch(addr: string) {
    let c = this.channels.get(addr);
    if (!c) this.channels.set(addr, (c = channelTo(addr)));
    return c;
  }

  /** One attempt against the current target; on a redirect, switch target and throw. */
  private async once(path: string, req: Buffer): Promise<Buffer> {
    try {
      return await this.ch(this.target).call(path, req);
    } catch (e) {
      const err = e as grpc.ServiceError;
      const leader = err.metadata?.get(LEADER_META)?.[0];
      if (typeof leader === 'string' && leader !== this.target) this.target = leader;
      throw err;
    }
  }

  /** Retry across redirects, elections and dead servers until the deadline. */
  private async withRetry(path: string, req: Buffer, deadlineMs: number): Promise<Buffer> {
    const deadline = Date.now() + deadlineMs;
    let i = 0;
    for (;;) {
      try {
        return await this.once(path, req);
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (Date.now() > deadline) throw err;
        if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
          // The server is down or gave up: try the next one.
          this.target = this.addrs[(this.addrs.indexOf(this.target) + 1) % this.addrs.length]!;
        }
        if (err.code !== grpc.status.FAILED_PRECONDITION || !err.metadata?.get(LEADER_META)?.length) {
          await new Promise((r) => setTimeout(r, Math.min(200, 10 * ++i)));
        }
      }
    }
  }

  /** Write once: no retry, so an error means "maybe applied" and success means applied. */
  putOnce(key: Buffer, value: Buffer): Promise<Buffer> {
    return this.once(kvService.put.path, encodePut(key, value));
  }

  put(key: Buffer, value: Buffer, deadlineMs = 15_000): Promise<Buffer> {
    return this.withRetry(kvService.put.path, encodePut(key, value), deadlineMs);
  }

  get(key: Buffer, deadlineMs = 15_000): Promise<Buffer> {
    return this.withRetry(kvService.get.path, key, deadlineMs);
  }

  async dump(addr: string): Promise<{ order: string[]; applied: number }> {
    return JSON.parse((await this.ch(addr).call(kvService.dump.path, Buffer.alloc(0))).toString());
  }

  async status(addr: string): Promise<{ id: number; term: number; lead: number; state: number; commit: number; applied: number; leaderClientAddr?: string }> {
    return JSON.parse((await this.ch(addr).call(kvService.status.path, Buffer.alloc(0))).toString());
  }

  /** Point at the current leader (asks each server until one knows). */
  async findLeader(deadlineMs = 15_000): Promise<string> {
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      for (const a of this.addrs) {
        try {
          const s = await this.status(a);
          if (s.leaderClientAddr) {
            this.target = s.leaderClientAddr;
            return s.leaderClientAddr;
          }
        } catch { /* down */ }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no raftkv leader within ${deadlineMs} ms`);
  }

  get leaderAddr(): string {
    return this.target;
  }

  close(): void {
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
  }
}
