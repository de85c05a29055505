// shoal's side of `bench:raft`: a 3-process raft KV (manager/raft) behind the
// BenchSystem / BenchClient interfaces of ./systems.ts. Not wired yet: both
// entry points throw, and the bench skips the shoal column with a note.
//
// To plug in (see test/bench/README.md):
//  - shoalSystem.start(workDir): spawn 3 server processes (node, one per
//    raft member, data under workDir/<member>, fsync on), wait until a put is
//    committed, return { clientArgs } as plain JSON (e.g. the leader's
//    address); stop(): SIGTERM each pid, SIGKILL after 5 s, await exit.
//  - makeShoalClient(clientArgs, opts): a BenchClient over one connection
//    to the leader: put resolves once committed, get is a linearizable read.
//    Build its calls on makeUnaryTransport(opts.transport, endpoint) from
//    ../lib/grpc-unary.ts (as etcd-client.ts does) so both systems are
//    driven by the same client code; optionally implement getValue for the
//    one-off round-trip check.

import type { BenchClient, BenchClientOptions, BenchSystem } from './systems.js';

const notWired = (): Error => new Error('shoal raft server not wired yet');

export const shoalSystem: BenchSystem = {
  name: 'shoal',
  async start(_workDir: string): Promise<{ clientArgs: unknown }> {
    throw notWired();
  },
  async stop(): Promise<void> {},
};

export function makeShoalClient(_clientArgs: unknown, _opts?: BenchClientOptions): BenchClient {
  throw notWired();
}
