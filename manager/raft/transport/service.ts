// gRPC service definition for shoal.raft.RaftTransport, built by hand: the generated code is
// static protobufjs (no reflection), so grpc-js gets our codec functions as (de)serializers.
// Requests decode straight into core messages, skipping any intermediate representation.

import type * as grpc from '@grpc/grpc-js';
import {
  decodeAck,
  decodeBatch,
  decodeChunk,
  encodeAck,
  encodeBatch,
  encodeChunk,
  encodeEmpty,
  type DecodedBatch,
  type SnapshotChunk,
} from './codec.js';
import type { Message } from '../core/types.js';

export interface OutgoingBatch {
  from: number;
  to: number;
  messages: Message[];
}

export const STREAM_PATH = '/shoal.raft.RaftTransport/Stream';
export const INSTALL_SNAPSHOT_PATH = '/shoal.raft.RaftTransport/InstallSnapshot';

export const serializeBatch = (b: OutgoingBatch): Buffer => encodeBatch(b.from, b.to, b.messages);
export const deserializeBatch = (buf: Buffer): DecodedBatch => decodeBatch(buf);
export const serializeChunk = (c: SnapshotChunk): Buffer => encodeChunk(c);
export const deserializeChunk = (buf: Buffer): SnapshotChunk => decodeChunk(buf);
export const serializeStreamAck = (_: Record<string, never>): Buffer => encodeEmpty();
// The client ignores StreamAck's (empty) content; decoding would only allocate.
export const deserializeStreamAck = (_: Buffer): Record<string, never> => ({});
export const serializeSnapshotAck = (received: number): Buffer => encodeAck(received);
export const deserializeSnapshotAck = (buf: Buffer): number => decodeAck(buf);

export const raftTransportService = {
  Stream: {
    path: STREAM_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: serializeBatch,
    requestDeserialize: deserializeBatch,
    responseSerialize: serializeStreamAck,
    responseDeserialize: deserializeStreamAck,
  },
  InstallSnapshot: {
    path: INSTALL_SNAPSHOT_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: serializeChunk,
    requestDeserialize: deserializeChunk,
    responseSerialize: serializeSnapshotAck,
    responseDeserialize: deserializeSnapshotAck,
  },
} satisfies grpc.ServiceDefinition;

/** Server-side handlers, typed against the definition above. */
export interface RaftTransportHandlers extends grpc.UntypedServiceImplementation {
  Stream: grpc.handleClientStreamingCall<DecodedBatch, Record<string, never>>;
  InstallSnapshot: grpc.handleClientStreamingCall<SnapshotChunk, number>;
}
