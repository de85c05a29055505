// Snapshot data as RaftNode stores it: the member address book, then the
// application's own bytes. Keeping addresses in the snapshot means a node
// restored from one (or a brand-new member) knows how to reach every peer.
import { RaftError } from '../core/errors.js';

/** Member id -> address ('host:port'). */
export type Peers = Record<number, string>;

export function encodeEnvelope(peers: Peers, app: Uint8Array): Uint8Array {
  const head = Buffer.from(JSON.stringify(peers), 'utf8');
  const out = Buffer.allocUnsafe(4 + head.byteLength + app.byteLength);
  out.writeUInt32LE(head.byteLength, 0);
  head.copy(out, 4);
  out.set(app, 4 + head.byteLength);
  return out;
}

export function decodeEnvelope(data: Uint8Array): { peers: Peers; app: Uint8Array } {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.byteLength < 4) throw new RaftError('CORRUPT', 'snapshot envelope too short');
  const n = b.readUInt32LE(0);
  if (4 + n > b.byteLength) throw new RaftError('CORRUPT', 'snapshot envelope header overruns the data');
  const peers = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as Peers;
  return { peers, app: b.subarray(4 + n) };
}
