// raftkv: a tiny replicated key-value server on raft-ts, one OS process per
// member. Used by the real-process crash test and the raft benchmark.
//   node dist/test/support/raftkv/server.js --id 1 --data-dir D --raft-addr 127.0.0.1:P
//     --client-addr 127.0.0.1:Q --peers 1=127.0.0.1:P,2=... --clients 1=127.0.0.1:Q,2=...
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { RaftError, NONE } from '../../../manager/raft/core/index.js';
import { RaftNode, type StateMachine } from '../../../manager/raft/node/index.js';
import { GrpcTransport } from '../../../manager/raft/transport/index.js';
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

  const fail = (cb: grpc.sendUnaryData<Buffer>, e: unknown) => {
    const md = new grpc.Metadata();
    if (e instanceof RaftError && e.code === 'NOT_LEADER') {
      const lead = node.leader().id;
      if (lead !== NONE && clients[lead]) md.set(LEADER_META, clients[lead]!);
      cb({ code: grpc.status.FAILED_PRECONDITION, details: e.message, metadata: md });
    } else if (e instanceof RaftError && (e.code === 'TIMEOUT' || e.code === 'PROPOSAL_DROPPED')) {
      cb({ code: grpc.status.UNAVAILABLE, details: e.message, metadata: md });
    } else {
      cb({ code: grpc.status.INTERNAL, details: (e as Error).message, metadata: md });
    }
  };

  const server = new grpc.Server();
  server.addService(kvService, {
    put: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      node.propose(call.request).then(() => cb(null, Buffer.alloc(0)), (e) => fail(cb, e));
    },
    get: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const key = call.request.toString('latin1');
      node.readBarrier().then(() => cb(null, sm.map.get(key) ?? Buffer.alloc(0)), (e) => fail(cb, e));
    },
    dump: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      cb(null, Buffer.from(JSON.stringify({ order: sm.order, applied: node.status().applied })));
    },
    status: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const st = node.status();
      const lead = st.lead;
      cb(null, Buffer.from(JSON.stringify({
        id, term: st.term, lead, state: st.state, commit: st.commit, applied: st.applied,
        leaderClientAddr: lead !== NONE ? clients[lead] : undefined, disk: node.diskStats(),
      })));
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(arg('client-addr'), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  process.stdout.write(`READY ${JSON.stringify({ id })}\n`);

  const shutdown = () => {
    node.stop();
    server.forceShutdown();
    void transport.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => {
  process.stderr.write(`raftkv: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
