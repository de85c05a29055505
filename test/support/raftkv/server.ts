// raftkv: a tiny replicated key-value server on raft-ts, one OS process per
// member. Used by the real-process crash test and the raft benchmark.
//   node dist/test/support/raftkv/server.js --id 1 --data-dir D --raft-addr 127.0.0.1:P
//     --client-addr 127.0.0.1:Q --peers 1=127.0.0.1:P,2=... --clients 1=127.0.0.1:Q,2=...
//     [--commit-notice-delay-ms N]   (RaftNode commitNoticeDelayMs; 0 = send commit notices at once)
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
    const entries = [...this.map].map(([k, v]) => [k, v.toString('base64')]);
    return Buffer.from(JSON.stringify({ entries, order: this.order }));
  }

  /**
   * The same bytes as snapshot(), made a slice at a time with the event loop
   * free in between: the bench's state reaches ~100 MB of JSON, which took
   * long enough in one go to cost the leader its followers' heartbeats.
   */
  async snapshotAsync(): Promise<Uint8Array> {
    // The capture: later applies replace map values (never mutate them) and
    // only push to order; restore() swaps in new objects.
    const entries = [...this.map];
    const order = this.order;
    const n = order.length;
    const out: Buffer[] = [];
    let parts: string[] = [];
    const cut = async () => {
      out.push(Buffer.from(parts.join('')));
      parts = [];
      await new Promise((r) => setImmediate(r));
    };
    parts.push('{"entries":[');
    for (let i = 0; i < entries.length; i++) {
      if (i > 0 && i % 5000 === 0) await cut();
      parts.push((i > 0 ? ',' : '') + JSON.stringify([entries[i]![0], entries[i]![1].toString('base64')]));
    }
    parts.push('],"order":[');
    for (let i = 0; i < n; i++) {
      if (i > 0 && i % 20000 === 0) await cut();
      parts.push((i > 0 ? ',' : '') + JSON.stringify(order[i]));
    }
    parts.push(']}');
    await cut();
    return Buffer.concat(out);
  }

  restore(data: Uint8Array): void {
    this.map.clear();
    this.order = [];
    if (data.byteLength === 0) return;
    const s = JSON.parse(Buffer.from(data).toString()) as { entries: [string, string][]; order: string[] };
    for (const [k, v] of s.entries) this.map.set(k, Buffer.from(v, 'base64'));
    this.order = s.order;
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
