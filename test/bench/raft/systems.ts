// The two halves a replicated KV must provide to take part in `bench:raft`.
//
// The bench's main process calls BenchSystem.start() to bring up a 3-node
// cluster, then spawns one client process per load level
// (dist/test/bench/raft/client.js). That process gets the `clientArgs`
// returned by start() (so they must survive JSON.stringify), builds a
// BenchClient from them through the system's client factory, and drives it.
// Servers and load generator thus never share a process or an event loop.

import type { TransportKind } from '../lib/grpc-unary.js';

export interface BenchSystem {
  name: string;
  /**
   * Bring up a 3-node cluster with its data under workDir (an empty
   * directory on the disk being measured) and return once it accepts writes.
   * Throw if the system cannot run here; the bench then skips it with a note.
   * `notes` (optional) are printed under the results, e.g. version, leader.
   */
  start(workDir: string): Promise<{ clientArgs: unknown; notes?: string[] }>;
  /** Stop every process started by start() (by pid) and wait for them to exit. */
  stop(): Promise<void>;
}

/**
 * Client side, used inside the load-generator process. Calls are made with
 * up to 256 in flight on one instance, so it should multiplex them over one
 * connection and allocate little per call. put must resolve only once the
 * write is committed (durable on a majority); get must be a linearizable read.
 * Neither needs to return data: the bench checks a put/get round trip once
 * before measuring (via `check`) and does not decode replies in the hot path.
 */
export interface BenchClient {
  put(key: Buffer, value: Buffer): Promise<void>;
  get(key: Buffer): Promise<void>;
  close(): void;
  /** Optional: return the stored value, for the one-off round-trip check. */
  getValue?(key: Buffer): Promise<Buffer | undefined>;
}

/** How the load generator wants clients built (same for every system in a run). */
export interface BenchClientOptions {
  /**
   * gRPC transport: 'h2' (default) = raw node:http2, 'grpc-js' = @grpc/grpc-js.
   * A gRPC-speaking client should build its calls on
   * makeUnaryTransport(opts.transport, endpoint) from ../lib/grpc-unary.ts so
   * that every system is driven by the same client code.
   */
  transport: TransportKind;
}

/** Builds a client from the clientArgs that BenchSystem.start() returned. */
export type BenchClientFactory = (
  clientArgs: unknown,
  opts: BenchClientOptions,
) => BenchClient | Promise<BenchClient>;
