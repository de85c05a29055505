// shoal's side of `bench:raft`: raftkv (test/support/raftkv), a 3-process KV
// on raft-ts with its WAL fsynced, driven by the same lean unary client as etcd.
// Writes go to the leader (a follower answers "not leader"); reads too, so both
// systems serve linearizable reads the same way (ReadIndex on the leader).
import { makeUnaryTransport } from '../lib/grpc-unary.js';
import { KvClient } from '../../support/raftkv/client.js';
import { RaftKvCluster } from '../../support/raftkv/cluster.js';
import { encodePut, kvService } from '../../support/raftkv/protocol.js';
import type { BenchClient, BenchClientOptions, BenchSystem } from './systems.js';

interface ShoalArgs {
  leader: string;
}

let cluster: RaftKvCluster | undefined;
let startTerm = 0;

async function leaderStatus(c: RaftKvCluster) {
  const kc = new KvClient(c.clientAddrs);
  try {
    const leader = await kc.findLeader();
    return { leader, status: await kc.status(leader) };
  } finally {
    kc.close();
  }
}

export const shoalSystem: BenchSystem = {
  name: 'shoal',
  async start(workDir: string) {
    // Snapshot every 100,000 entries (etcd 3.4's default --snapshot-count), and, as LogCabin
    // does, only once the log since the last snapshot outweighs it: etcd's snapshot refers to
    // its bbolt file and costs next to nothing, while raftkv's copies its whole state, which
    // grows with every distinct key the bench writes (past 100 MB in a long run).
    cluster = await RaftKvCluster.create({ size: 3, baseDir: workDir, snapshotEntries: 100_000, compactionMargin: 5_000, snapshotLogRatio: 1 });
    const kc = new KvClient(cluster.clientAddrs);
    try {
      await kc.findLeader();
      await kc.put(Buffer.from('bench/warm'), Buffer.alloc(256, 1));
    } finally {
      kc.close();
    }
    const { leader, status } = await leaderStatus(cluster);
    startTerm = status.term;
    return {
      clientArgs: { leader } satisfies ShoalArgs,
      notes: [`shoal: raftkv on raft-ts, 3 processes, leader n${status.id} at ${leader}, term ${status.term}, tick 100 ms, election 1-2 s, snapshot every 100k entries once the log since the last outweighs it`],
    };
  },
  async stop() {
    if (!cluster) return;
    try {
      const { status } = await leaderStatus(cluster);
      // Any election under load would show as a term change.
      console.error(`shoal: term at start ${startTerm}, at end ${status.term}: ${status.term - startTerm} elections during the run`);
      if (status.term !== startTerm || process.env.RAFTKV_LOG) {
        // What the members logged says why (warnings; with RAFTKV_LOG=info, more, and always shown).
        for (const m of cluster.members) console.error(`--- member ${m.id}, last log lines:\n${m.stderr.join('').split('\n').slice(-40).join('\n')}`);
      }
    } catch (e) {
      console.error(`shoal: could not read the final term: ${(e as Error).message}`);
    }
    await cluster.stop();
    cluster = undefined;
  },
};

export function makeShoalClient(clientArgs: unknown, opts?: BenchClientOptions): BenchClient {
  const { leader } = clientArgs as ShoalArgs;
  const rpc = makeUnaryTransport(opts?.transport ?? 'h2', leader, { timeoutMs: 10_000 });
  return {
    async put(key: Buffer, value: Buffer) {
      await rpc.call(kvService.put.path, encodePut(key, value));
    },
    async get(key: Buffer) {
      await rpc.call(kvService.get.path, key);
    },
    async getValue(key: Buffer) {
      const v = await rpc.call(kvService.get.path, key);
      return v.length > 0 ? v : undefined;
    },
    close: () => rpc.close(),
  };
}
