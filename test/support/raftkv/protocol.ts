// The raftkv client protocol: gRPC unary calls with hand-framed binary bodies.
// A lean protocol keeps the benchmark measuring raft, not the client.
import * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer) => b;

function unary(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path, requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity,
    responseSerialize: identity, responseDeserialize: identity,
  };
}

export const kvService = {
  put: unary('/raftkv.KV/Put'),
  get: unary('/raftkv.KV/Get'),
  dump: unary('/raftkv.KV/Dump'),
  status: unary('/raftkv.KV/Status'),
};

/** Put body: u16 key length, key, value. */
export function encodePut(key: Buffer, value: Buffer): Buffer {
  const b = Buffer.allocUnsafe(2 + key.byteLength + value.byteLength);
  b.writeUInt16LE(key.byteLength, 0);
  key.copy(b, 2);
  value.copy(b, 2 + key.byteLength);
  return b;
}

export function decodePut(b: Uint8Array): { key: string; value: Buffer } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const n = buf.readUInt16LE(0);
  return { key: buf.subarray(2, 2 + n).toString('latin1'), value: buf.subarray(2 + n) };
}

/** Metadata key carrying the leader's client address on a NOT_LEADER error. */
export const LEADER_META = 'x-raftkv-leader';
