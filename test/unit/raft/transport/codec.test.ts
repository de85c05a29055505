import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_BYTES,
  EntryType,
  MessageType,
  emptyMessage,
  type Entry,
  type Message,
} from '../../../../manager/raft/core/types.js';
import {
  decodeBatch,
  decodeChunk,
  encodeBatch,
  encodeChunk,
  toWire,
} from '../../../../manager/raft/transport/codec.js';

const BIG = 2 ** 40 + 12345; // > 2^32: would be truncated by any 32-bit path
const MAX = Number.MAX_SAFE_INTEGER;

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function entry(index: number, term: number, data: Uint8Array, type = EntryType.Normal): Entry {
  return { term, index, type, data };
}

function msg(type: MessageType, over: Partial<Message> = {}): Message {
  return { ...emptyMessage(type, 2, 1), ...over };
}

const allTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');

function roundTrip(ms: Message[]): Message[] {
  const batch = decodeBatch(encodeBatch(1, 2, ms));
  expect(batch.from).toBe(1);
  expect(batch.to).toBe(2);
  return batch.messages;
}

/** Byte fields as digests: decoded bytes are Buffers, and diffs of megabytes are unreadable. */
function digest(b: Uint8Array): string {
  return `${b.byteLength}:${createHash('sha256').update(b).digest('hex')}`;
}
function norm(ms: Message[]): unknown[] {
  return ms.map((m) => ({
    ...m,
    context: digest(m.context),
    entries: m.entries.map((e) => ({ ...e, data: digest(e.data) })),
    ...(m.snapshot ? { snapshot: { ...m.snapshot, data: digest(m.snapshot.data) } } : {}),
  }));
}
function expectSame(got: Message[], want: Message[]): void {
  expect(norm(got)).toEqual(norm(want));
}

describe('raft transport codec', () => {
  it('round-trips every message type', () => {
    expect(allTypes.length).toBe(19);
    for (const t of allTypes) {
      const m = msg(t, { term: 7, logTerm: 6, index: 5, commit: 4 });
      expectSame(roundTrip([m]), [m]);
    }
  });

  const cases: Array<[string, Message]> = [
    ['zero values', msg(MessageType.Heartbeat)],
    ['large numbers', msg(MessageType.App, {
      to: BIG, from: MAX, term: BIG + 1, logTerm: 2 ** 32, index: 2 ** 32 - 1, commit: MAX, rejectHint: BIG,
    })],
    ['entries with indexes beyond 2^32', msg(MessageType.App, {
      index: BIG - 1,
      entries: [
        entry(BIG, 3, bytes(10)),
        entry(BIG + 1, 3, EMPTY_BYTES),
        entry(MAX, 2 ** 33, bytes(3), EntryType.ConfChange),
      ],
    })],
    ['empty entry data', msg(MessageType.App, { entries: [entry(1, 1, EMPTY_BYTES)] })],
    ['big entry data', msg(MessageType.App, { entries: [entry(9, 2, bytes(3 << 20, 7))] })],
    ['reject with hint', msg(MessageType.AppResp, { reject: true, rejectHint: BIG, index: 2 ** 35 })],
    ['reject vote', msg(MessageType.PreVoteResp, { reject: true, term: 4 })],
    ['granted vote', msg(MessageType.VoteResp, { reject: false, term: 4 })],
    ['context bytes', msg(MessageType.ReadIndexResp, { context: bytes(16), index: 12 })],
  ];
  it.each(cases)('round-trips %s', (_name, m) => {
    expectSame(roundTrip([m]), [m]);
  });

  it('keeps order and content in a mixed batch', () => {
    const ms = cases.map(([, m]) => m);
    expectSame(roundTrip(ms), ms);
    expect(roundTrip([])).toEqual([]);
  });

  it('decodes to plain objects with every field own and numeric', () => {
    const [m] = roundTrip([msg(MessageType.App, { index: BIG, entries: [entry(BIG + 1, 2, EMPTY_BYTES)] })]);
    // Spreading must not lose defaults (prototype-held values would vanish).
    const copy = { ...m! };
    expect(copy.type).toBe(MessageType.App);
    expect(copy.reject).toBe(false);
    expect(copy.commit).toBe(0);
    expect(copy.context).toBe(EMPTY_BYTES);
    expect(typeof copy.index).toBe('number');
    expect({ ...copy.entries[0]! }).toEqual({ term: 2, index: BIG + 1, type: EntryType.Normal, data: EMPTY_BYTES });
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
  });

  it('passes entry data through as views of the received buffer', () => {
    const buf = encodeBatch(1, 2, [msg(MessageType.App, { entries: [entry(1, 1, bytes(1000))] })]);
    const [m] = decodeBatch(buf).messages;
    expect(m!.entries[0]!.data.buffer).toBe(buf.buffer);
  });

  it('sends core messages without snapshots to the encoder as they are', () => {
    const m = msg(MessageType.App);
    expect(toWire(m)).toBe(m);
  });

  it('carries only snapshot metadata in a message; chunks carry the payload', () => {
    const snap = msg(MessageType.Snap, {
      term: 5,
      snapshot: { metadata: { index: BIG, term: 5, confState: { voters: [1, 2, BIG], learners: [4] } }, data: bytes(100) },
    });
    // In a batch the payload is not on the wire.
    const [viaBatch] = roundTrip([snap]);
    expectSame([viaBatch!], [{ ...snap, snapshot: { metadata: snap.snapshot!.metadata, data: EMPTY_BYTES } }]);

    const first = decodeChunk(encodeChunk({ header: snap, totalSize: 100, offset: 0, data: snap.snapshot!.data.subarray(0, 60) }));
    expect(first.totalSize).toBe(100);
    expect(first.offset).toBe(0);
    expect(Buffer.from(first.data)).toEqual(Buffer.from(snap.snapshot!.data.subarray(0, 60)));
    expect(first.header!.snapshot!.metadata).toEqual(snap.snapshot!.metadata);
    expect(first.header!.snapshot!.data.byteLength).toBe(0);

    const rest = decodeChunk(encodeChunk({ totalSize: 100, offset: 60, data: snap.snapshot!.data.subarray(60) }));
    expect(rest.header).toBeUndefined();
    expect(rest.offset).toBe(60);
    expect(rest.data.byteLength).toBe(40);
  });

  it('decodes a snapshot with an empty conf state to fresh arrays', () => {
    const snap = msg(MessageType.Snap, {
      snapshot: { metadata: { index: 3, term: 1, confState: { voters: [], learners: [] } }, data: EMPTY_BYTES },
    });
    const c = decodeChunk(encodeChunk({ header: snap, totalSize: 0, offset: 0, data: EMPTY_BYTES }));
    const cs = c.header!.snapshot!.metadata.confState;
    expect(cs).toEqual({ voters: [], learners: [] });
    cs.voters.push(1); // not the frozen array protobufjs shares between instances
    expect(cs.voters).toEqual([1]);
  });
});
