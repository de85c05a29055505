// Conversion between core raft messages and their wire form (proto/raft.proto).
//
// The proto mirrors core/types.ts field for field (camel-cased names, identical enum values), so
// encoding hands core objects straight to the generated encoder: no intermediate objects, and
// entry payloads are copied exactly once, into the output buffer. Decoding builds plain core
// objects (fixed shape, every field an own property) from the generated decoder's instances,
// whose defaults live on prototypes and would vanish under `{...m}`. Byte fields stay views into
// the received buffer (protobufjs slices Buffers without copying).

import {
  EMPTY_BYTES,
  type ConfState,
  type Entry,
  type EntryType,
  type Message,
  type MessageType,
  type SnapshotMetadata,
} from '../core/types.js';
import { shoal } from '../../../proto/gen/raft.js';

const pb = shoal.raft;
export type WireMessage = shoal.raft.Message.$Properties;
export type WireBatch = shoal.raft.MessageBatch.$Properties;
export type WireChunk = shoal.raft.SnapshotChunk.$Properties;
type DecodedMessage = shoal.raft.Message;
type DecodedEntry = shoal.raft.Entry.$Properties;

/**
 * Core message → wire message. Without a snapshot the core object already has the wire shape
 * and is returned as is. With one, only its metadata goes on the wire: the payload travels in
 * SnapshotChunk.data.
 */
export function toWire(m: Message): WireMessage {
  if (m.snapshot === undefined) return m as unknown as WireMessage;
  return {
    type: m.type as number as shoal.raft.MessageType,
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries as unknown as DecodedEntry[],
    commit: m.commit,
    snapshot: m.snapshot.metadata,
    reject: m.reject,
    rejectHint: m.rejectHint,
    context: m.context,
  };
}

/** Wire message (as decoded) → core message. A snapshot comes back with empty data. */
export function fromWire(p: DecodedMessage): Message {
  const m: Message = {
    type: p.type as number as MessageType,
    to: p.to,
    from: p.from,
    term: p.term,
    logTerm: p.logTerm,
    index: p.index,
    entries: p.entries.length === 0 ? [] : entriesFromWire(p.entries),
    commit: p.commit,
    reject: p.reject,
    rejectHint: p.rejectHint,
    // An absent field decodes to a Buffer shared through the prototype; hand out the core's own
    // empty constant instead so nothing aliases protobufjs internals.
    context: p.context.length === 0 ? EMPTY_BYTES : p.context,
  };
  if (p.snapshot) m.snapshot = { metadata: metadataFromWire(p.snapshot), data: EMPTY_BYTES };
  return m;
}

function entriesFromWire(list: DecodedEntry[]): Entry[] {
  const out = new Array<Entry>(list.length);
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    // Decoded instances always carry values (own or prototype defaults), never null.
    out[i] = {
      term: e.term!,
      index: e.index!,
      type: e.type! as number as EntryType,
      data: e.data!.length === 0 ? EMPTY_BYTES : e.data!,
    };
  }
  return out;
}

function metadataFromWire(s: shoal.raft.SnapshotMetadata.$Properties): SnapshotMetadata {
  const cs = s.confState;
  const confState: ConfState = {
    // Copies: absent repeated fields decode to a frozen array shared by all instances.
    voters: cs?.voters ? cs.voters.slice() : [],
    learners: cs?.learners ? cs.learners.slice() : [],
  };
  return { index: s.index ?? 0, term: s.term ?? 0, confState };
}

/**
 * Rough encoded size, for splitting batches and bounding queues. Over-estimates the fixed part
 * (varints of large numbers) rather than walking every field.
 */
export function estimateSize(m: Message): number {
  let n = 64 + m.context.byteLength;
  const es = m.entries;
  for (let i = 0; i < es.length; i++) n += es[i]!.data.byteLength + 24;
  return n;
}

/** Buffer view of encoder output without copying (grpc-js wants Buffers). */
function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function encodeBatch(from: number, to: number, messages: Message[]): Buffer {
  // Core messages without snapshots are wire messages already (see toWire); Snap messages never
  // travel in batches, but convert defensively rather than silently dropping the metadata.
  let wire: WireMessage[] = messages as unknown as WireMessage[];
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.snapshot !== undefined) {
      wire = messages.map(toWire);
      break;
    }
  }
  return asBuffer(pb.MessageBatch.encode({ from, to, messages: wire }).finish());
}

export interface DecodedBatch {
  from: number;
  to: number;
  messages: Message[];
}

export function decodeBatch(buf: Uint8Array): DecodedBatch {
  const b = pb.MessageBatch.decode(buf);
  const list = b.messages as DecodedMessage[];
  const messages = new Array<Message>(list.length);
  for (let i = 0; i < list.length; i++) messages[i] = fromWire(list[i]!);
  return { from: b.from, to: b.to, messages };
}

export interface SnapshotChunk {
  /** First chunk only: the Snap message with snapshot metadata (data empty). */
  header?: Message;
  /** First chunk only: total payload size. */
  totalSize: number;
  offset: number;
  data: Uint8Array;
}

export function encodeChunk(c: SnapshotChunk): Buffer {
  const w: WireChunk = { offset: c.offset, data: c.data };
  if (c.header) {
    w.header = toWire(c.header);
    w.totalSize = c.totalSize;
  }
  return asBuffer(pb.SnapshotChunk.encode(w).finish());
}

export function decodeChunk(buf: Uint8Array): SnapshotChunk {
  const c = pb.SnapshotChunk.decode(buf);
  const out: SnapshotChunk = { totalSize: c.totalSize, offset: c.offset, data: c.data };
  if (c.header) out.header = fromWire(c.header as DecodedMessage);
  return out;
}

export function encodeAck(received: number): Buffer {
  return asBuffer(pb.SnapshotAck.encode({ received }).finish());
}

export function decodeAck(buf: Uint8Array): number {
  return pb.SnapshotAck.decode(buf).received;
}

const EMPTY_BUFFER = Buffer.alloc(0);
/** StreamAck has no fields: its encoding is the empty message. */
export function encodeEmpty(): Buffer {
  return EMPTY_BUFFER;
}
