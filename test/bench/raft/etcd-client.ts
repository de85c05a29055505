// A lean etcd v3 client for the bench: one HTTP/2 connection to one member,
// unary calls through ../lib/grpc-unary.ts (raw node:http2 by default, or
// grpc-js's makeUnaryRequest), messages from our own slice of etcd's API
// (etcd-kv.proto) through protobufjs reflection.
//
// Hot path (put/get): encode the request, send it, resolve on the reply
// without decoding it. A call rejects on any gRPC error, so a resolved put is
// a committed write and a resolved get a served linearizable read; content
// is checked once, outside the hot path, through the decoding calls
// (putHeader/getValue/status).

import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { makeUnaryTransport, type TransportKind, type UnaryTransport } from '../lib/grpc-unary.js';
import { repoRoot } from '../lib/proc.js';
import type { BenchClient, BenchClientOptions } from './systems.js';

/** The .proto lives in the source tree; found from dist/ through the repo root. */
export const ETCD_PROTO = path.join(repoRoot(), 'test', 'bench', 'raft', 'etcd-kv.proto');

interface EtcdTypes {
  PutRequest: protobuf.Type;
  PutResponse: protobuf.Type;
  RangeRequest: protobuf.Type;
  RangeResponse: protobuf.Type;
  StatusRequest: protobuf.Type;
  StatusResponse: protobuf.Type;
}

let types: EtcdTypes | undefined;

function loadTypes(): EtcdTypes {
  if (types) return types;
  const { root } = protobuf.parse(fs.readFileSync(ETCD_PROTO, 'utf8'));
  const t = (name: string): protobuf.Type => root.lookupType('etcdserverpb.' + name);
  types = {
    PutRequest: t('PutRequest'),
    PutResponse: t('PutResponse'),
    RangeRequest: t('RangeRequest'),
    RangeResponse: t('RangeResponse'),
    StatusRequest: t('StatusRequest'),
    StatusResponse: t('StatusResponse'),
  };
  return types;
}

const PUT = '/etcdserverpb.KV/Put';
const RANGE = '/etcdserverpb.KV/Range';
const STATUS = '/etcdserverpb.Maintenance/Status';

const asBuffer = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** uint64/int64 fields come back as Long, number or string; normalise to a decimal string. */
const idString = (v: unknown): string => (v === undefined || v === null ? '0' : String(v));

export interface EtcdHeader {
  clusterId: string;
  memberId: string;
  revision: string;
  raftTerm: string;
}

export interface EtcdStatus {
  header: EtcdHeader;
  version: string;
  leader: string;
  raftIndex: string;
  raftTerm: string;
}

export interface EtcdClientOptions {
  transport?: TransportKind;
  /** Per-call deadline in ms (default 10 s). */
  timeoutMs?: number;
}

export class EtcdClient implements BenchClient {
  private readonly rpc: UnaryTransport;
  private readonly t = loadTypes();

  constructor(
    /** host:port of the member's client URL. */
    readonly endpoint: string,
    opts: EtcdClientOptions = {},
  ) {
    this.rpc = makeUnaryTransport(opts.transport ?? 'h2', endpoint, { timeoutMs: opts.timeoutMs ?? 10_000 });
  }

  encodePut(key: Buffer, value: Buffer): Buffer {
    return asBuffer(this.t.PutRequest.encode({ key, value }).finish());
  }

  encodeGet(key: Buffer, serializable = false): Buffer {
    return asBuffer(this.t.RangeRequest.encode(serializable ? { key, serializable } : { key }).finish());
  }

  async put(key: Buffer, value: Buffer): Promise<void> {
    await this.rpc.call(PUT, this.encodePut(key, value));
  }

  /** Linearizable single-key Range (etcd's default). */
  async get(key: Buffer): Promise<void> {
    await this.rpc.call(RANGE, this.encodeGet(key));
  }

  async putHeader(key: Buffer, value: Buffer): Promise<EtcdHeader> {
    const reply = await this.rpc.call(PUT, this.encodePut(key, value));
    const msg = this.t.PutResponse.toObject(this.t.PutResponse.decode(reply), { longs: String, defaults: true });
    return header(msg.header);
  }

  async getValue(key: Buffer, serializable = false): Promise<Buffer | undefined> {
    const reply = await this.rpc.call(RANGE, this.encodeGet(key, serializable));
    const msg = this.t.RangeResponse.decode(reply) as unknown as { kvs?: Array<{ value?: Uint8Array }> };
    const v = msg.kvs?.[0]?.value;
    return v === undefined ? undefined : Buffer.from(v);
  }

  async status(): Promise<EtcdStatus> {
    const reply = await this.rpc.call(STATUS, asBuffer(this.t.StatusRequest.encode({}).finish()));
    const m = this.t.StatusResponse.toObject(this.t.StatusResponse.decode(reply), { longs: String, defaults: true });
    return {
      header: header(m.header),
      version: String(m.version ?? ''),
      leader: idString(m.leader),
      raftIndex: idString(m.raftIndex),
      raftTerm: idString(m.raftTerm),
    };
  }

  close(): void {
    this.rpc.close();
  }
}

function header(h: unknown): EtcdHeader {
  const o = (h ?? {}) as Record<string, unknown>;
  return {
    clusterId: idString(o.clusterId),
    memberId: idString(o.memberId),
    revision: idString(o.revision),
    raftTerm: idString(o.raftTerm),
  };
}

/** clientArgs of the etcd system: the member the load goes to. */
export interface EtcdClientArgs {
  endpoint: string;
}

export function makeEtcdClient(args: unknown, opts?: BenchClientOptions): BenchClient {
  const a = args as Partial<EtcdClientArgs>;
  if (typeof a?.endpoint !== 'string') throw new Error('etcd clientArgs: endpoint missing');
  return new EtcdClient(a.endpoint, { transport: opts?.transport ?? 'h2' });
}
