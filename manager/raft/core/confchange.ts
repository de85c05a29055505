// Binary form of a ConfChange inside an entry: type (1 byte), node id (8), context.
import { RaftError } from './errors.js';
import { ConfChangeType, type ConfChange } from './types.js';

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = Buffer.allocUnsafe(9 + cc.context.byteLength);
  out.writeUInt8(cc.type, 0);
  out.writeDoubleLE(cc.nodeId, 1); // safe integers are exact in a double
  out.set(cc.context, 9);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.byteLength < 9) throw new RaftError('CORRUPT', `conf change entry too short (${data.byteLength} bytes)`);
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const type = b.readUInt8(0);
  if (!(type in ConfChangeType)) throw new RaftError('CORRUPT', `unknown conf change type ${type}`);
  return { type, nodeId: b.readDoubleLE(1), context: b.subarray(9) };
}
