// raftkv: a tiny replicated key-value server on raft-ts, one OS process per
// member. Used by the real-process crash test and the raft benchmark.
//   node dist/test/support/raftkv/server.js --id 1 --data-dir D --raft-addr 127.0.0.1:P
//     --client-addr 127.0.0.1:Q --peers 1=127.0.0.1:P,2=... --clients 1=127.0.0.1:Q,2=...
//     [--commit-notice-delay-ms N]   (RaftNode commitNoticeDelayMs; 0 = send commit notices at once)
//     [--snapshot-log-ratio R]       (RaftNode snapshotLogRatio; default 0)
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { RaftError, NONE } from '../../../manager/raft/core/index.js';
import { RaftNode, type StateMachine } from '../../../manager/raft/node/index.js';
import { GrpcTransport } from '../../../manager/raft/transport/index.js';
import { H2GrpcServer, RpcError } from './h2server.js';
import { decodePut, kvService, LEADER_META } from './protocol.js';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`missing --${name}`);
  return v;
}

function parseMap(s: string): Record<number, string> {
  const out: Record<number, string> = {};
  for (const part of s.split(',').filter(Boolean)) {
    const [id, addr] = part.split('=');
    out[Number(id)] = addr!;
  }
  return out;
}

/**
 * The state's bytes, built a slice at a time: a generator that yields between
 * slices, so snapshotAsync can give the event loop back and snapshot() can run
 * it straight through. Layout: u32 n, n x (u32 key length, key, u32 value
 * length, value); u32 m, m x (u32 key length, key): the map, then the order.
 */
function* encodeState(entries: [string, Buffer][], order: readonly string[], m: number): Generator<void, Buffer> {
  const SLICE = 20_000;
  const keys = new Map<string, Buffer>();
  const keyBytes = (k: string) => {
    let b = keys.get(k);
    if (!b) keys.set(k, (b = Buffer.from(k)));
    return b;
  };
  let size = 8;
  for (let i = 0; i < entries.length; i++) {
    if (i > 0 && i % SLICE === 0) yield;
    size += 8 + keyBytes(entries[i]![0]).length + entries[i]![1].length;
  }
  for (let i = 0; i < m; i++) {
    if (i > 0 && i % SLICE === 0) yield;
    size += 4 + keyBytes(order[i]!).length;
  }
  const out = Buffer.allocUnsafe(size);
  let p = out.writeUInt32LE(entries.length, 0);
  for (let i = 0; i < entries.length; i++) {
    if (i > 0 && i % SLICE === 0) yield;
    const k = keyBytes(entries[i]![0]);
    const v = entries[i]![1];
    p = out.writeUInt32LE(k.length, p);
    p += k.copy(out, p);
    p = out.writeUInt32LE(v.length, p);
    p += v.copy(out, p);
  }
  p = out.writeUInt32LE(m, p);
  for (let i = 0; i < m; i++) {
    if (i > 0 && i % SLICE === 0) yield;
    const k = keyBytes(order[i]!);
    p = out.writeUInt32LE(k.length, p);
    p += k.copy(out, p);
  }
  return out;
}

/** Keys and values, plus every applied key in order (what the crash test checks). */
class KvStateMachine implements StateMachine {
  map = new Map<string, Buffer>();
  order: string[] = [];

  apply(_index: number, data: Uint8Array): unknown {
    const { key, value } = decodePut(data);
    this.map.set(key, Buffer.from(value));
    this.order.push(key);
    return undefined;
  }

  snapshot(): Uint8Array {
    const g = encodeState([...this.map], this.order, this.order.length);
    for (;;) {
      const r = g.next();
      if (r.done) return r.value;
    }
  }

  /**
   * snapshot()'s bytes with the event loop free between slices: the bench's
   * state passes 100 MB, which made in one go stalled a member for a second.
   */
  async snapshotAsync(): Promise<Uint8Array> {
    // The capture: later applies replace map values (never mutate them) and
    // only push to order; restore() swaps in new objects.
    const g = encodeState([...this.map], this.order, this.order.length);
    for (;;) {
      const r = g.next();
      if (r.done) return r.value;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  restore(data: Uint8Array): void {
    this.map.clear();
    this.order = [];
    if (data.byteLength === 0) return;
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let p = 0;
    const chunk = (): Buffer => {
      const len = b.readUInt32LE(p);
      const out = b.subarray(p + 4, p + 4 + len);
      p += 4 + len;
      return out;
    };
    const n = b.readUInt32LE(p);
    p += 4;
    for (let i = 0; i < n; i++) {
      const k = chunk().toString();
      this.map.set(k, Buffer.from(chunk()));
    }
    const m = b.readUInt32LE(p);
    p += 4;
    for (let i = 0; i < m; i++) this.order.push(chunk().toString());
  }
}

async function main(): Promise<void> {
  const id = Number(arg('id'));
  const peers = parseMap(arg('peers'));
  const clients = parseMap(arg('clients'));
  const log = pino({ level: process.env.RAFTKV_LOG ?? 'warn' }, pino.destination(2));
  // A blocked event loop is what makes followers miss heartbeats: say when it happens.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  setInterval(() => {
    const maxMs = loopDelay.max / 1e6;
    if (maxMs > 100) log.warn({ maxMs: Math.round(maxMs) }, 'event loop stalled');
    loopDelay.reset();
  }, 1000).unref();
  const sm = new KvStateMachine();
  const node = RaftNode.open({
    id,
    dataDir: arg('data-dir'),
    stateMachine: sm,
    advertiseAddr: arg('raft-addr'),
    bootstrap: peers,
    tickMs: Number(arg('tick-ms', '100')),
    snapshotEntries: Number(arg('snapshot-entries', '10000')),
    compactionMargin: Number(arg('compaction-margin', '5000')),
    snapshotLogRatio: Number(arg('snapshot-log-ratio', '0')),
    logger: log,
    commitNoticeDelayMs: Number(arg('commit-notice-delay-ms', '5')),
  });
  const transport = new GrpcTransport({
    id,
    listen: arg('raft-addr'),
    onMessage: (m) => node.step(m),
    onUnreachable: (p) => node.reportUnreachable(p),
    onSnapshotStatus: (p, failed) => node.reportSnapshot(p, failed),
    logger: log,
  });
  await transport.start();
  node.start(transport);

  const toRpcError = (e: unknown): RpcError => {
    if (e instanceof RaftError && e.code === 'NOT_LEADER') {
      const lead = node.leader().id;
      return new RpcError(9 /* FAILED_PRECONDITION */, e.message, lead !== NONE && clients[lead] ? { [LEADER_META]: clients[lead]! } : {});
    }
    if (e instanceof RaftError && (e.code === 'TIMEOUT' || e.code === 'PROPOSAL_DROPPED')) return new RpcError(14 /* UNAVAILABLE */, e.message);
    return new RpcError(13 /* INTERNAL */, (e as Error).message);
  };
  const EMPTY = Buffer.alloc(0);
  const server = new H2GrpcServer({
    [kvService.put.path]: (body) => node.propose(body).then(() => EMPTY, (e) => { throw toRpcError(e); }),
    [kvService.get.path]: (body) => {
      const key = body.toString('latin1');
      return node.readBarrier().then(() => sm.map.get(key) ?? EMPTY, (e) => { throw toRpcError(e); });
    },
    [kvService.dump.path]: () => Buffer.from(JSON.stringify({ order: sm.order, applied: node.status().applied })),
    [kvService.status.path]: () => {
      const st = node.status();
      const lead = st.lead;
      return Buffer.from(JSON.stringify({
        id, term: st.term, lead, state: st.state, commit: st.commit, applied: st.applied,
        leaderClientAddr: lead !== NONE ? clients[lead] : undefined, disk: node.diskStats(),
      }));
    },
  });
  await server.listen(arg('client-addr'));
  process.stdout.write(`READY ${JSON.stringify({ id })}\n`);

  const shutdown = () => {
    node.stop();
    server.close();
    void transport.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => {
  process.stderr.write(`raftkv: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
